//! The dashboard at `/ui/`: server-rendered pages (askama templates in `templates/ui/`, compiled
//! into the binary) and one small script, signed in with a project API key or the admin token.
//! Every page acts through the API in-process (`api`), as the signed-in project.

mod admin;
mod api;
mod assets;
mod campaign_new;
mod campaigns;
mod chart;
mod guard;
mod messages;
mod page;
mod session;
mod signed_out;
mod signin;
mod view;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::response::Redirect;
use axum::routing::{get, post};

use super::AppState;
use super::limits::{self, HttpLimits};
use api::Api;
use session::SessionKey;
use signed_out::SignedOut;

/// What the dashboard's handlers share.
#[derive(Clone)]
pub struct Ui {
    app: AppState,
    api: Api,
    key: SessionKey,
    signed_out: Arc<SignedOut>,
}

/// `GET /` and `GET /ui/`: the dashboard (a router nested at `/ui` answers `/ui` itself).
pub async fn to_dashboard() -> Redirect {
    Redirect::to("/ui")
}

/// The dashboard's routes; `api` is the API router its pages call in-process. A recipients CSV
/// up or down takes the bulk time limit (see `limits::apply_ui`).
pub fn router(app: AppState, api: Router, limits: &HttpLimits) -> Router {
    let metrics = app.metrics.clone();
    let key = SessionKey::new(app.secret_key.as_deref());
    let ui = Ui {
        signed_out: Arc::new(SignedOut::new(app.shared_cache.clone())),
        app,
        api: Api::new(api),
        key,
    };
    let pages = Router::new()
        .route("/", get(signin::home))
        .route("/sign-in", get(signin::form).post(signin::sign_in))
        .route("/sign-out", post(signin::sign_out))
        .route("/static/{file}", get(assets::file))
        .route("/campaigns", get(campaigns::list))
        .route(
            "/campaigns/new",
            get(campaign_new::form).post(campaign_new::create),
        )
        .route("/campaigns/{id}", get(campaigns::one))
        .route("/campaigns/{id}/progress", get(campaigns::progress))
        .route("/campaigns/{id}/do/{action}", post(campaigns::act))
        .route("/messages", get(messages::search))
        .route("/messages/{wamid}", get(messages::one))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/{id}", get(webhooks::one).post(webhooks::edit))
        .route("/webhooks/{id}/do/{action}", post(webhooks::act))
        .route("/deliveries/{id}", get(webhooks::delivery))
        .route("/admin", get(admin::overview))
        .route("/admin/do/{action}", post(admin::act));
    let bulk = Router::new()
        .route("/campaigns/{id}/recipients", post(campaign_new::upload))
        .route("/campaigns/{id}/results.csv", get(campaigns::results));
    let guarded = |r: Router<Ui>| {
        r.layer(middleware::from_fn(guard::same_origin))
            .layer(middleware::from_fn(guard::headers))
            .with_state(ui.clone())
    };
    limits::apply_ui(guarded(pages), guarded(bulk), limits, metrics)
}
