//! Adapters behind the ports: embedded (SQLite, local queue, memory cache) and distributed
//! (PostgreSQL, RabbitMQ, Redis); and the allocator's trimmer.

pub mod allocator;
pub mod build;
pub mod guarded_cache;
pub mod instrumented;
pub mod memory_cache;
pub mod outbound;
pub mod postgres;
pub mod rabbitmq;
pub mod redis_cache;
pub mod sql;
pub mod sqlite;

pub use build::{Backends, build};
