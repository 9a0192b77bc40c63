//! The HTTP surface: ops probes on every process, then ingress and API routes by role.

mod admin;
mod campaign_import;
mod campaigns;
mod error;
mod extract;
mod forwarding;
mod ingress;
pub mod limits;
mod messages;
mod observe;
mod ops;
mod page;
mod projects;
mod providers;
pub mod serve;
mod ui;
mod webhooks;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

pub use error::ApiError;
pub use limits::HttpLimits;

use crate::config::Role;
use crate::domain::providers::send::{ProviderSettings, SendProvider};
use crate::metrics::Metrics;
use crate::ports::Outbound;
use crate::ports::{Cache, Campaigns, Deliveries, Endpoints, Queue, Store};
use crate::services::{Breakers, EndpointCache, ProjectLookup};
use crate::workers::publisher::Publisher;

/// What handlers share, behind one `Arc`: axum clones the state for every request, and cloning
/// the fields one by one (the metrics alone hold dozens of `Arc`s) showed up in profiles at ~7%
/// of the server's CPU under load.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub endpoints: Arc<dyn Endpoints>,
    pub queue: Arc<dyn Queue>,
    pub shared_cache: Option<Arc<dyn Cache>>,
    pub lookup: Arc<ProjectLookup>,
    /// Present when this process runs the ingress role.
    pub publisher: Option<Publisher>,
    pub metrics: Metrics,
    pub admin_token: Arc<str>,
    pub ingress_token: Option<Arc<str>>,
    pub meta_app_secret: Option<Arc<str>>,
    pub meta_verify_token: Option<Arc<str>>,
    /// Webhook URLs may target internal addresses (`allow_private_targets`).
    pub allow_private_targets: bool,
    pub forwarding: Forwarding,
    pub campaigning: Campaigning,
    /// `WAGATE_SECRET_KEY`, from which the dashboard derives its session-signing key.
    pub secret_key: Option<Arc<str>>,
}

/// What the campaign API needs beyond the store: the campaigns port, the client that fetches
/// `csv_url`s (with the webhook address guard), and the import rules.
#[derive(Clone)]
pub struct Campaigning {
    pub campaigns: Arc<dyn Campaigns>,
    pub csv_client: Arc<dyn Outbound>,
    pub default_country_code: Option<String>,
    pub csv_max_bytes: u64,
    /// The server's settings per BSP: a project's base URL other than the server's needs the
    /// project's own credential.
    pub provider_defaults: Arc<HashMap<SendProvider, ProviderSettings>>,
}

/// What the webhook API shares with the forwarder: the deliveries, the endpoint cache it must
/// invalidate on every change, the breakers whose state it shows, the client its test ping
/// goes through.
#[derive(Clone)]
pub struct Forwarding {
    pub deliveries: Arc<dyn Deliveries>,
    pub cache: Arc<EndpointCache>,
    pub breakers: Arc<Breakers>,
    pub client: Arc<dyn Outbound>,
}

pub fn router(state: AppState, roles: &BTreeSet<Role>, limits: &HttpLimits) -> Router {
    let mut app = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics));
    if roles.contains(&Role::Ingress) {
        app = app
            .route("/datagen-webhook", post(ingress::datagen))
            .route("/v1/ingest/datagen", post(ingress::datagen))
            .route(
                "/v1/ingest/meta",
                post(ingress::meta).get(ingress::meta_handshake),
            )
            .route("/v1/ingest/{provider}", post(ingress::unknown_provider));
    }
    if roles.contains(&Role::Api) {
        app = app
            .route("/v1/projects", post(projects::create).get(projects::list))
            .route("/v1/projects/{id}", get(projects::one))
            .route("/v1/projects/{id}/numbers", post(projects::add_number))
            .route(
                "/v1/projects/{id}/numbers/{number}",
                delete(projects::remove_number),
            )
            .route("/v1/projects/{id}/rotate-key", post(projects::rotate_key))
            .route("/v1/project", get(projects::me))
            .route("/v1/messages", get(messages::list))
            .route("/v1/messages/{wamid}", get(messages::one))
            .route("/v1/stats", get(messages::stats))
            .route("/v1/inbound", get(messages::inbound))
            .route("/v1/admin/quarantine", get(admin::quarantine))
            .route("/v1/admin/quarantine/replay", post(admin::replay))
            .route("/v1/admin/queues/{queue}", get(admin::queue))
            .route("/v1/admin/queues/{queue}/redrive", post(admin::redrive))
            .route(
                "/webhook/config",
                post(webhooks::create).get(webhooks::list),
            )
            .route(
                "/webhook/config/{id}",
                get(webhooks::one)
                    .put(webhooks::update)
                    .delete(webhooks::remove),
            )
            .route(
                "/webhook/config/{id}/rotate-secret",
                post(webhooks::rotate_secret),
            )
            .route("/webhook/config/{id}/test", post(forwarding::test))
            .route("/webhook/config/{id}/redrive", post(forwarding::redrive))
            .route("/webhook/config/{id}/deliveries", get(webhooks::deliveries))
            .route("/webhook/deliveries/{id}", get(webhooks::delivery))
            .route("/webhook/deliveries/{id}/retry", post(forwarding::retry))
            .route(
                "/project/campaign",
                post(campaigns::create).get(campaigns::list),
            )
            .route("/project/campaign/{id}", get(campaigns::one))
            .route("/project/campaign/{id}/pause", post(campaigns::pause))
            .route("/project/campaign/{id}/resume", post(campaigns::resume))
            .route("/project/campaign/{id}/cancel", post(campaigns::cancel))
            .route(
                "/project/campaign/{id}/retry-unknown",
                post(campaigns::retry_unknown),
            )
            .route(
                "/project/campaign/{id}/retry-failed",
                post(campaigns::retry_failed),
            )
            .route(
                "/project/campaign/{id}/recipients",
                get(campaigns::recipients),
            )
            .route(
                "/v1/providers/{provider}",
                get(providers::get).put(providers::put),
            );
    }
    // Recipients CSVs go up and down in bulk: their own size limit (checked while streaming)
    // and a longer time limit. The one-shot send may fetch a `csv_url` too, so it has the bulk
    // time limit, but its body is a small JSON object.
    let mut bulk = Router::new();
    if roles.contains(&Role::Api) {
        bulk = bulk
            .route(
                "/project/campaign/{id}/recipients",
                post(campaign_import::upload),
            )
            .route(
                "/project/campaign/{id}/messages.csv",
                get(campaign_import::export),
            )
            .route(
                "/project/campaign/event/send",
                post(campaigns::send).layer(DefaultBodyLimit::max(limits::BULK_JSON_BODY_BYTES)),
            );
    }
    let bulk = bulk
        .layer(DefaultBodyLimit::disable())
        .with_state(state.clone());
    let metrics = state.metrics.clone();
    let state_for_ui = state.clone();
    let app = app
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .with_state(state);
    let api = limits::apply(app, bulk, limits, metrics);
    if !roles.contains(&Role::Api) {
        return api;
    }
    api.clone()
        .nest("/ui", ui::router(state_for_ui, api))
        .route("/", get(ui::to_dashboard))
        .route("/ui/", get(ui::to_dashboard))
}
