//! The distributed store on PostgreSQL: one `PgStore` implementing the `Store`, `Endpoints`,
//! `Deliveries`, `Campaigns` and `SealedSecrets` ports, one file each; batches go in as arrays through `unnest`.

mod campaigns;
mod deliveries;
mod endpoints;
mod secrets;
mod store;

pub use store::PgStore;
