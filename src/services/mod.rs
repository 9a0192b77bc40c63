//! Logic shared by several roles, built on the ports: cached lookups and event dedupe.

pub mod dedupe;
pub mod lookup;
mod tiers;

pub use dedupe::Dedupe;
pub use lookup::ProjectLookup;
pub use tiers::Tiers;
