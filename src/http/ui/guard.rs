//! What stands between a browser and the dashboard's handlers: security headers on every
//! answer, the Origin check on every form post, the session (checked against the current key
//! and the sign-outs on each request), and the CSRF token of each post.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::Ui;
use super::page::{Chrome, error_page};
use super::session::{COOKIE, Session, Who, key_hash};
use crate::domain::project::ApiKeyHash;
use crate::domain::signing::constant_time_eq;

/// No inline script or style anywhere (`'self'` only), no framing, no sniffing; pages are
/// never cached, since they show one project's data.
pub async fn headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
         object-src 'none'",
    );
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "same-origin");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    resp
}

/// A post from another site is refused before it reaches a handler: browsers say where a
/// request comes from in `Sec-Fetch-Site` and `Origin`. Clients that send neither (not a
/// browser) still need the CSRF token.
pub async fn same_origin(req: Request, next: Next) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return next.run(req).await;
    }
    let h = req.headers();
    let site = h.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let cross_site = matches!(site, Some(s) if s != "same-origin" && s != "none");
    let origin = h.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
    let foreign_origin = match (origin, host) {
        (Some(o), Some(host)) => {
            let bare = o
                .strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                .unwrap_or("");
            bare != host
        }
        (Some(_), None) => true,
        _ => false,
    };
    if cross_site || foreign_origin {
        return error_page(
            StatusCode::FORBIDDEN,
            None,
            "This form was sent from another site, so it was refused. Open the dashboard and try again.",
        );
    }
    next.run(req).await
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A signed-in session whose key is still the current one.
pub struct Signed(pub Session);

impl Signed {
    pub fn chrome(&self, ui: &Ui) -> Chrome {
        Chrome::of(&self.0, ui)
    }
    pub fn who(&self) -> &Who {
        &self.0.who
    }
}

/// Not signed in (or no longer): to the sign-in page.
pub fn to_sign_in() -> Response {
    let mut r = Redirect::to("/ui/sign-in").into_response();
    // A cookie that no longer opens a session is dropped.
    r.headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_static(clear_cookie()));
    r
}

pub const fn clear_cookie() -> &'static str {
    "wagate_ui=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"
}

pub async fn session_of(headers: &HeaderMap, ui: &Ui) -> Option<Session> {
    let value = cookie_value(headers, COOKIE)?;
    let now = crate::domain::time::Timestamp::now().millis() / 1000;
    let session = Session::decode(value, &ui.key, now)?;
    if ui.signed_out.contains(&session).await {
        return None;
    }
    let current = match &session.who {
        Who::Admin => constant_time_eq(
            session.key_hash.as_bytes(),
            key_hash(&ui.app.admin_token).as_bytes(),
        ),
        Who::Project(p) => {
            let hash = ApiKeyHash::from_stored(session.key_hash.clone());
            matches!(ui.app.lookup.by_key(&hash).await, Ok(Some(owner)) if &owner == p)
        }
    };
    current.then_some(session)
}

impl FromRequestParts<Ui> for Signed {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, ui: &Ui) -> Result<Self, Response> {
        session_of(&parts.headers, ui)
            .await
            .map(Signed)
            .ok_or_else(to_sign_in)
    }
}

/// The admin's session; a project's is sent to its own pages.
pub struct AdminSigned(pub Signed);

impl FromRequestParts<Ui> for AdminSigned {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, ui: &Ui) -> Result<Self, Response> {
        let s = Signed::from_request_parts(parts, ui).await?;
        match s.0.who {
            Who::Admin => Ok(AdminSigned(s)),
            Who::Project(_) => Err(error_page(
                StatusCode::FORBIDDEN,
                Some(s.chrome(ui)),
                "The admin pages need the admin token. Sign out and sign in with it.",
            )),
        }
    }
}

/// A project's session; the admin is sent to the admin pages.
pub struct ProjectSigned(pub Signed);

impl FromRequestParts<Ui> for ProjectSigned {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, ui: &Ui) -> Result<Self, Response> {
        let s = Signed::from_request_parts(parts, ui).await?;
        match s.0.who {
            Who::Project(_) => Ok(ProjectSigned(s)),
            Who::Admin => Err(Redirect::to("/ui/admin").into_response()),
        }
    }
}

/// A form post by a project's session, its CSRF token checked (the `csrf` field, or the
/// `X-CSRF-Token` header for the dashboard's scripts).
pub struct Posted {
    pub signed: Signed,
    pub fields: Vec<(String, String)>,
}

impl Posted {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
    pub fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

pub fn csrf_refused(chrome: Option<Chrome>) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        chrome,
        "This form has expired or did not come from this dashboard. Go back, reload the page and try again.",
    )
}

impl FromRequest<Ui> for Posted {
    type Rejection = Response;
    async fn from_request(req: Request, ui: &Ui) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, ui).await?;
        let header_token = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let req = Request::from_parts(parts, body);
        let axum::Form(fields) = axum::Form::<Vec<(String, String)>>::from_request(req, ui)
            .await
            .map_err(|e| {
                error_page(
                    StatusCode::BAD_REQUEST,
                    Some(signed.chrome(ui)),
                    &format!("The form could not be read: {}", e.body_text()),
                )
            })?;
        let token = header_token.or_else(|| {
            fields
                .iter()
                .find(|(k, _)| k == "csrf")
                .map(|(_, v)| v.clone())
        });
        match token {
            Some(t) if signed.0.csrf_ok(&ui.key, &t) => Ok(Posted { signed, fields }),
            _ => Err(csrf_refused(Some(signed.chrome(ui)))),
        }
    }
}
