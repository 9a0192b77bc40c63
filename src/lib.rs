//! wagate: a WhatsApp Business messaging gateway.
//!
//! BSP webhooks come in over HTTP, are made durable on a queue, and a processor merges them into
//! each message's status and history. The crate is laid out as ports and adapters:
//!
//! - [`domain`]: pure types and rules: statuses and their merge, providers' payload formats,
//!   phone numbers, projects, webhook endpoints, forwarding rules (signing, retry schedule,
//!   request body), the circuit breaker, queue payloads. No IO.
//! - [`ports`]: the `Store`, `Endpoints`, `Queue` and `Cache` traits the rest of the crate
//!   talks through.
//! - [`adapters`]: SQLite store + local queue + memory cache (embedded default) and
//!   PostgreSQL + RabbitMQ + Redis; [`adapters::build`] picks them from the config.
//! - [`services`]: logic shared by several roles on top of the ports (project lookup, dedupe,
//!   quarantine replay).
//! - [`http`]: axum routers: ops probes, BSP ingress, the project API, webhook endpoints.
//! - [`workers`]: the ingress micro-batcher and the processor, each with a `handle_*` step.
//! - [`app`]: builds everything for the configured roles and runs it with graceful shutdown.
//! - [`config`]: layered configuration; [`metrics`]: every exported metric, process and cache
//!   sizes included; [`telemetry`]: logs.
//! - [`bench`]: the `wagate bench` load tool.

pub mod adapters;
pub mod app;
pub mod bench;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod ports;
pub mod services;
pub mod telemetry;
pub mod workers;
