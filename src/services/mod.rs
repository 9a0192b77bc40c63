//! Logic shared by several roles, built on the ports: cached lookups, event dedupe (recent marks as fingerprints), quarantine replay, payload retention, the forwarder's shared circuit breakers and endpoint cache, the sender's rate limits, the sealer of stored secrets, the gauges read from the store.

pub mod breakers;
pub mod dedupe;
pub mod endpoint_cache;
pub mod lookup;
pub mod recent_marks;
pub mod replay;
pub mod retention;
pub mod sealer;
pub mod send_limits;
pub mod store_gauges;
mod tiers;

pub use breakers::{BreakerConfig, BreakerView, Breakers};
pub use dedupe::Dedupe;
pub use endpoint_cache::{EndpointCache, EndpointCacheConfig};
pub use lookup::ProjectLookup;
pub use recent_marks::RecentMarks;
pub use replay::Replayer;
pub use sealer::Sealer;
pub use send_limits::SendLimits;
pub use tiers::Tiers;
