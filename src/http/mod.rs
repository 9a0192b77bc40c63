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
pub mod openapi;
mod ops;
mod page;
mod projects;
mod providers;
pub mod serve;
mod ui;
mod webhooks;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Extension, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

/// Every route of a process with these roles, as served and as documented: each is registered
/// through `routes!`, which takes the handler's `#[utoipa::path]` for its path and methods, so
/// no route exists without its entry in the document (`tests/it/openapi.rs` holds the rest of
/// `src/http` to that). The second router holds the bulk routes, which get their own limits.
pub fn documented(roles: &BTreeSet<Role>) -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let mut app = OpenApiRouter::new()
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(openapi::docs));
    if roles.contains(&Role::Ingress) {
        app = app
            .routes(routes!(ingress::datagen))
            .routes(routes!(ingress::datagen_v1))
            .routes(routes!(ingress::meta, ingress::meta_handshake))
            .routes(routes!(ingress::unknown_provider));
    }
    if roles.contains(&Role::Api) {
        app = app
            .routes(routes!(projects::create, projects::list))
            .routes(routes!(projects::one))
            .routes(routes!(projects::add_number))
            .routes(routes!(projects::remove_number))
            .routes(routes!(projects::rotate_key))
            .routes(routes!(projects::me))
            .routes(routes!(messages::list))
            .routes(routes!(messages::one))
            .routes(routes!(messages::stats))
            .routes(routes!(messages::inbound))
            .routes(routes!(admin::quarantine))
            .routes(routes!(admin::replay))
            .routes(routes!(admin::queue))
            .routes(routes!(admin::redrive))
            .routes(routes!(webhooks::create, webhooks::list))
            .routes(routes!(webhooks::one, webhooks::update, webhooks::remove))
            .routes(routes!(webhooks::rotate_secret))
            .routes(routes!(forwarding::test))
            .routes(routes!(forwarding::redrive))
            .routes(routes!(forwarding::replay))
            .routes(routes!(forwarding::reset_breaker))
            .routes(routes!(webhooks::deliveries))
            .routes(routes!(webhooks::delivery))
            .routes(routes!(forwarding::retry))
            .routes(routes!(campaigns::create, campaigns::list))
            .routes(routes!(campaigns::one))
            .routes(routes!(campaigns::pause))
            .routes(routes!(campaigns::resume))
            .routes(routes!(campaigns::cancel))
            .routes(routes!(campaigns::retry_unknown))
            .routes(routes!(campaigns::retry_failed))
            .routes(routes!(campaigns::recipients))
            .routes(routes!(providers::get, providers::put));
    }
    // Recipients CSVs go up and down in bulk: their own size limit (checked while streaming)
    // and a longer time limit. The one-shot send may fetch a `csv_url` too, so it has the bulk
    // time limit, but its body is a small JSON object.
    let mut bulk = OpenApiRouter::new();
    if roles.contains(&Role::Api) {
        let (schemas, paths, send) = routes!(campaigns::send);
        bulk = bulk
            .routes(routes!(campaign_import::upload))
            .routes(routes!(campaign_import::export))
            .routes((
                schemas,
                paths,
                send.layer(DefaultBodyLimit::max(limits::BULK_JSON_BODY_BYTES)),
            ));
    }
    (app, bulk)
}

/// The OpenAPI document of a process with these roles, as `/openapi.json` serves it.
pub fn document(roles: &BTreeSet<Role>) -> serde_json::Value {
    let (app, bulk) = documented(roles);
    let mut doc = app.into_openapi();
    doc.merge(bulk.into_openapi());
    openapi::finish(doc)
}

pub fn router(state: AppState, roles: &BTreeSet<Role>, limits: &HttpLimits) -> Router {
    let (app, bulk) = documented(roles);
    let (app, mut doc) = app.split_for_parts();
    let (bulk, bulk_doc) = bulk.split_for_parts();
    doc.merge(bulk_doc);
    let published = Extension(openapi::Published::new(doc));
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
    let api = limits::apply(app, bulk, limits, metrics).layer(published);
    if !roles.contains(&Role::Api) {
        return api;
    }
    api.clone()
        .nest("/ui", ui::router(state_for_ui, api, limits))
        .route("/", get(ui::to_dashboard))
        .route("/ui/", get(ui::to_dashboard))
}
