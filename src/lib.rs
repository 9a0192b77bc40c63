//! wagate: a WhatsApp Business messaging gateway.
//!
//! BSP webhooks come in over HTTP, are made durable on a queue, and a processor merges them into
//! each message's status and history, writing in the same transaction one delivery row per
//! subscribed webhook endpoint (the outbox), which the forwarder sends, signed. The crate is
//! laid out as ports and adapters:
//!
//! - [`domain`]: pure types and rules: statuses and their merge, providers' payload formats,
//!   phone numbers, projects, webhook endpoints, forwarding rules (signing, retry schedule,
//!   request body, the outbox rows), the circuit breaker, queue payloads. No IO.
//! - [`ports`]: the `Store`, `Endpoints`, `Deliveries`, `Campaigns`, `Queue` and `Cache` traits
//!   the rest of the crate talks through.
//! - [`adapters`]: SQLite store + local queue + memory cache (embedded default) and
//!   PostgreSQL + RabbitMQ + Redis; the webhook HTTP client (rustls, no redirects, the
//!   connect-time address guard); [`adapters::build`] picks them from the config.
//! - [`services`]: logic shared by several roles on top of the ports (project lookup, dedupe,
//!   quarantine replay, retention, the shared circuit breakers, the endpoint config cache).
//! - [`http`]: axum routers: ops probes, BSP ingress, the project API, webhook endpoints and
//!   their deliveries (test ping, retry, redrive).
//! - [`workers`]: the ingress micro-batcher, the processor, the forwarder with its attempt
//!   recorder, and the sweeper that queues due deliveries.
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
