//! The one integration-test binary: port conformance suites, HTTP end-to-end tests, crash tests.
//!
//! Tests needing PostgreSQL, RabbitMQ or Redis find them through `WAGATE_TEST_*_URL` (defaults:
//! the local services). When one is unreachable they skip, unless
//! `WAGATE_TEST_REQUIRE_SERVICES=1` (set by `.ci/run`), which turns the skip into a failure.

mod api_findings;
mod breakers;
mod cache_conformance;
mod cache_recovery;
mod campaign_crash;
mod campaign_recovery;
mod campaigns;
mod campaigns_conformance;
mod contract;
mod crash;
mod dashboard;
mod deliveries_conformance;
mod delivery_records;
mod edges;
mod endpoint_cache;
mod endpoints_conformance;
mod forwarding;
mod forwarding_breaker;
mod forwarding_crash;
mod forwarding_fairness;
mod http;
mod lists;
mod monitoring;
mod observability;
mod openapi;
mod projects;
mod queue_conformance;
mod rabbitmq;
mod replay;
mod resilience;
mod roles;
mod secrets_at_rest;
mod security;
mod startup;
mod statuses;
mod store_conformance;
mod support;
mod webhooks_api;
