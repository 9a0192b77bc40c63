//! Adapters behind the ports: embedded (SQLite, local queue, memory cache) and distributed
//! (PostgreSQL, RabbitMQ, Redis); and the allocator's trimmer.

pub mod allocator;
pub mod build;
pub mod campaign_queries;
pub mod delivery_queries;
pub mod endpoint_queries;
pub mod guarded_cache;
pub mod instrumented;
pub mod memory_cache;
pub mod postgres;
pub mod postgres_campaigns;
pub mod postgres_deliveries;
pub mod postgres_endpoints;
pub mod queries;
pub mod rabbitmq;
pub mod redis_cache;
pub mod sql;
pub mod sqlite;
pub mod webhook_client;

pub use build::{Backends, build};
