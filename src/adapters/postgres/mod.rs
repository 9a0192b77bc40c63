//! The distributed store on PostgreSQL: one `PgStore` implementing the `Store`, `Endpoints`,
//! `Deliveries` and `Campaigns` ports, one file each; batches go in as arrays through `unnest`.

mod campaigns;
mod deliveries;
mod endpoints;
mod store;

pub use store::PgStore;
