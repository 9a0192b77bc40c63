//! The ports the core talks through; each has an embedded and a distributed adapter, but
//! `Outbound` (HTTP to other hosts), which has one.

pub mod cache;
pub mod campaigns;
pub mod deliveries;
pub mod endpoints;
pub mod outbound;
pub mod queue;
pub mod secrets;
pub mod store;

pub use cache::{Cache, CacheError};
pub use campaigns::Campaigns;
pub use deliveries::Deliveries;
pub use endpoints::Endpoints;
pub use outbound::Outbound;
pub use queue::{Consumer, Delivery, DeliveryId, Outgoing, Queue, QueueError};
pub use secrets::SealedSecrets;
pub use store::{Store, StoreError};
