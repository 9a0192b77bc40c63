//! Adapters behind the ports: embedded (SQLite, local queue, memory cache) and distributed
//! (PostgreSQL, RabbitMQ, Redis).

pub mod postgres;
pub mod rabbitmq;
pub mod sql;
pub mod sqlite;
