//! wagate: a WhatsApp Business messaging gateway.
//!
//! Campaigns go out: a CSV of recipients becomes one row each, which a sender claims
//! (`queued → sending`, at most once) and sends through the project's BSP within its number's
//! rate. BSP webhooks come in over HTTP, are made durable on a queue, and a processor merges them into
//! each message's status and history, writing in the same transaction one delivery row per
//! subscribed webhook endpoint (the outbox), which the forwarder sends, signed. The crate is
//! laid out as ports and adapters:
//!
//! - [`domain`]: pure types and rules: statuses and their merge, providers' payload formats,
//!   phone numbers, projects, webhook endpoints, forwarding rules (signing, retry schedule,
//!   request body, the outbox rows), the circuit breaker, queue payloads; campaigns (state
//!   machine, CSV import, template parameters, the send token bucket, opt-out keywords) and the
//!   BSPs' send requests; the sealed form of secrets at rest. No IO.
//! - [`ports`]: the `Store`, `Endpoints`, `Deliveries`, `Campaigns`, `SealedSecrets`, `Queue`,
//!   `Cache` and `Outbound` (HTTP to other hosts) traits the rest of the crate talks through.
//! - [`adapters`]: one folder per backend: `sqlite/` (store + local queue, the embedded
//!   default), `postgres/`, `rabbitmq/`, with the SQL both stores share in `sql/`; the memory
//!   and Redis caches; `outbound` (reqwest on rustls, no redirects, the connect-time address
//!   guard); [`adapters::build()`] picks them from the config.
//! - [`services`]: logic shared by several roles on top of the ports (project lookup, dedupe,
//!   quarantine replay, retention, the shared circuit breakers, the endpoint config cache, the
//!   sender's rate limits, the sealer the stores keep secrets with).
//! - [`http`]: axum routers: ops probes, BSP ingress, the project API, webhook endpoints and
//!   their deliveries (test ping, retry, redrive, replay, breaker reset), campaigns (CSV in,
//!   results out) and the project's BSP settings; the OpenAPI document made from them
//!   (`/openapi.json`, `/docs`) and the `/ui` dashboard that calls them in-process.
//! - [`workers`]: the ingress micro-batcher, the processor, the forwarder with its attempt
//!   recorder, the sweeper that queues due deliveries, the campaign sender, and the campaign
//!   runner (scheduled starts, due recipients, unknown sends, finished campaigns).
//! - [`app`]: builds everything for the configured roles and runs it with graceful shutdown.
//! - [`config`]: layered configuration; [`metrics`]: every exported metric, process and cache
//!   sizes included; [`telemetry`]: logs; [`health_check`]: `wagate health`, the container's
//!   health probe.
//! - [`mod@bench`]: the `wagate bench` load tool and `wagate mock-bsp`, the BSPs' stand-in.

pub mod adapters;
pub mod app;
pub mod bench;
pub mod config;
pub mod domain;
pub mod health_check;
pub mod http;
pub mod metrics;
pub mod ports;
pub mod services;
pub mod telemetry;
pub mod workers;
