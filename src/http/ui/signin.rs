//! Signing in (a project API key, or the admin token) and out.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::Ui;
use super::guard::{Signed, clear_cookie, csrf_refused, session_of};
use super::page::{Chrome, html};
use super::session::{COOKIE, LIFETIME_SECS, Session, Who, key_hash};
use crate::domain::project::ApiKeyHash;
use crate::domain::signing::constant_time_eq;

/// `GET /ui/`: the project's campaigns, the admin's overview, or the sign-in form.
pub async fn home(State(ui): State<Ui>, headers: HeaderMap) -> Redirect {
    match session_of(&headers, &ui).await.map(|s| s.who) {
        Some(Who::Project(_)) => Redirect::to("/ui/campaigns"),
        Some(Who::Admin) => Redirect::to("/ui/admin"),
        None => Redirect::to("/ui/sign-in"),
    }
}

#[derive(Template)]
#[template(path = "ui/signin.html")]
struct SignInPage {
    chrome: Chrome,
    error: Option<String>,
}

pub async fn form() -> Response {
    html(&SignInPage {
        chrome: Chrome::default(),
        error: None,
    })
}

#[derive(serde::Deserialize)]
pub struct SignIn {
    key: String,
}

/// `POST /ui/sign-in`: the key is checked as the API checks it; the session keeps only its
/// hash.
pub async fn sign_in(State(ui): State<Ui>, axum::Form(form): axum::Form<SignIn>) -> Response {
    let key = form.key.trim();
    let now = crate::domain::time::Timestamp::now().millis() / 1000;
    let who = if !key.is_empty() && constant_time_eq(key.as_bytes(), ui.app.admin_token.as_bytes())
    {
        Some(Who::Admin)
    } else if key.is_empty() {
        None
    } else {
        match ui.app.lookup.by_key(&ApiKeyHash::of(key)).await {
            Ok(found) => found.map(Who::Project),
            Err(_) => {
                return super::page::error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    "The gateway could not check your key just now. Try again in a moment.",
                );
            }
        }
    };
    let Some(who) = who else {
        let page = SignInPage {
            chrome: Chrome::default(),
            error: Some(
                "That key was not recognised. Paste the project's API key (or the admin token) exactly as it was shown."
                    .into(),
            ),
        };
        return (StatusCode::UNAUTHORIZED, html(&page)).into_response();
    };
    let to = match who {
        Who::Admin => "/ui/admin",
        Who::Project(_) => "/ui/campaigns",
    };
    let session = Session::new(who, key_hash(key), now);
    let cookie = format!(
        "{COOKIE}={}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={LIFETIME_SECS}",
        session.encode(&ui.key)
    );
    let mut resp = Redirect::to(to).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("base64 and ASCII"),
    );
    resp
}

#[derive(serde::Deserialize)]
pub struct SignOut {
    csrf: String,
}

/// `POST /ui/sign-out`.
pub async fn sign_out(
    State(ui): State<Ui>,
    signed: Signed,
    axum::Form(form): axum::Form<SignOut>,
) -> Response {
    if !signed.0.csrf_ok(&ui.key, &form.csrf) {
        return csrf_refused(Some(signed.chrome(&ui)));
    }
    let now = crate::domain::time::Timestamp::now().millis() / 1000;
    ui.signed_out.record(&signed.0, now).await;
    let mut resp = Redirect::to("/ui/sign-in").into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_static(clear_cookie()));
    resp
}
