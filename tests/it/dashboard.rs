//! The dashboard at `/ui/`: sign-in into a signed, `HttpOnly`, `SameSite=Strict` cookie,
//! sign-out (which ends copies of the cookie too), CSRF refusal, another project's campaign is
//! a 404, hostile data is escaped, and every page carries the security headers; a webhook
//! page's actions (the breaker reset among them) reach only the project's own endpoints; its
//! requests are counted, logged and bounded at the edge as the API's are.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::support::app::{ADMIN, TestApp, on_both_backends};

on_both_backends!(
    sign_in_and_out,
    csrf_and_foreign_origin_are_refused,
    another_projects_campaign_is_not_found,
    hostile_data_is_escaped,
    a_rotated_key_ends_the_session,
    admin_token_opens_the_admin_page,
    webhook_actions_reach_only_the_projects_own_endpoints,
    dashboard_requests_are_counted_and_bounded_like_the_apis,
);

/// A browser-like client that shows redirects rather than following them.
fn client() -> reqwest::Client {
    wagate::adapters::outbound::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

const FORM: &str = "application/x-www-form-urlencoded";

/// A form body, as a browser encodes it.
fn form_body(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Signs in with `key`; the session cookie (`name=value`) and the sign-in answer's headers.
async fn sign_in(app: &TestApp, key: &str) -> (String, HeaderMap) {
    let resp = client()
        .post(app.url("/ui/sign-in"))
        .header("content-type", FORM)
        .body(form_body(&[("key", key)]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let headers = resp.headers().clone();
    let cookie = headers[SET_COOKIE].to_str().unwrap();
    let pair = cookie.split(';').next().unwrap().to_owned();
    (pair, headers)
}

async fn page(app: &TestApp, path: &str, cookie: &str) -> (StatusCode, HeaderMap, String) {
    let resp = client()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.text().await.unwrap())
}

fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

async fn post(
    app: &TestApp,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
    origin: Option<&str>,
) -> reqwest::Response {
    let mut req = client()
        .post(app.url(path))
        .header("cookie", cookie)
        .header("content-type", FORM)
        .body(form_body(form));
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req.send().await.unwrap()
}

async fn campaign(app: &TestApp, key: &str, name: &str) -> String {
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            "/project/campaign",
            key,
            Some(
                json!({"name": name, "template_id": "t", "provider": "datagen",
                        "sender": "+15550001111"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

fn assert_security_headers(h: &HeaderMap) {
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.contains_key("referrer-policy"));
}

async fn sign_in_and_out(app: &TestApp) {
    let key = app.create_project("acme", &["+15550001111"]).await;
    // Not signed in: to the sign-in page, which has the security headers.
    let (status, headers, _) = page(app, "/ui/campaigns", "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/ui/sign-in");
    let (status, headers, html) = page(app, "/ui/sign-in", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_security_headers(&headers);
    assert!(html.contains("<label for=\"key\">"), "{html}");

    // A wrong key is refused in words, with no cookie.
    let resp = client()
        .post(app.url("/ui/sign-in"))
        .header("content-type", FORM)
        .body(form_body(&[("key", "not-a-key")]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(!resp.headers().contains_key(SET_COOKIE));

    let (cookie, headers) = sign_in(app, &key).await;
    let set = headers[SET_COOKIE].to_str().unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains(&key), "the cookie never holds the key");
    assert_eq!(headers[LOCATION], "/ui/campaigns");
    let (status, headers, html) = page(app, "/ui/campaigns", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert_security_headers(&headers);
    assert!(html.contains("project acme"), "{html}");
    assert!(html.contains("No campaigns yet"), "{html}");

    // A forged cookie is no session.
    let (status, ..) = page(app, "/ui/campaigns", &format!("{cookie}x")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let resp = post(
        app,
        "/ui/sign-out",
        &cookie,
        &[("csrf", &csrf_of(&html))],
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cleared = resp.headers()[SET_COOKIE].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // A copy of the cookie kept from before (a shared machine, a proxy's log) is no session
    // either: before, it stayed valid for its 8 hours.
    let (status, headers, _) = page(app, "/ui/campaigns", &cookie).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/ui/sign-in");
    // Another session of the same key is not ended by it.
    let (other, _) = sign_in(app, &key).await;
    let (status, ..) = page(app, "/ui/campaigns", &other).await;
    assert_eq!(status, StatusCode::OK);
}

async fn csrf_and_foreign_origin_are_refused(app: &TestApp) {
    let key = app.create_project("acme", &["+15550001111"]).await;
    let id = campaign(app, &key, "Spring").await;
    let (cookie, _) = sign_in(app, &key).await;
    let path = format!("/ui/campaigns/{id}");
    let (_, _, html) = page(app, &path, &cookie).await;
    let csrf = csrf_of(&html);
    let cancel = format!("/ui/campaigns/{id}/do/cancel");

    let resp = post(app, &cancel, &cookie, &[], None).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = post(app, &cancel, &cookie, &[("csrf", "forged")], None).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = post(
        app,
        &cancel,
        &cookie,
        &[("csrf", &csrf)],
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (_, c) = app.get(&format!("/project/campaign/{id}"), &key).await;
    assert_eq!(c["state"], "draft", "nothing refused changed the campaign");

    let origin = format!("http://{}", app.addr);
    let resp = post(app, &cancel, &cookie, &[("csrf", &csrf)], Some(&origin)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, c) = app.get(&format!("/project/campaign/{id}"), &key).await;
    assert_eq!(c["state"], "cancelled");
}

async fn another_projects_campaign_is_not_found(app: &TestApp) {
    let acme = app.create_project("acme", &["+15550001111"]).await;
    let other = app.create_project("other", &["+15550002222"]).await;
    let id = campaign(app, &acme, "Acme only").await;
    let (cookie, _) = sign_in(app, &other).await;
    for path in [
        format!("/ui/campaigns/{id}"),
        format!("/ui/campaigns/{id}/progress"),
        format!("/ui/campaigns/{id}/results.csv"),
    ] {
        let (status, _, body) = page(app, &path, &cookie).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(!body.contains("Acme only"), "{path}: {body}");
    }
    let (_, _, html) = page(app, "/ui/campaigns", &cookie).await;
    let resp = post(
        app,
        &format!("/ui/campaigns/{id}/do/cancel"),
        &cookie,
        &[("csrf", &csrf_of(&html))],
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let (_, c) = app.get(&format!("/project/campaign/{id}"), &acme).await;
    assert_eq!(c["state"], "draft");
}

async fn hostile_data_is_escaped(app: &TestApp) {
    let key = app.create_project("acme", &["+15550001111"]).await;
    let hostile = "<img src=x onerror=alert(1)> \"quoted' name";
    let id = campaign(app, &key, hostile).await;
    let (cookie, _) = sign_in(app, &key).await;
    for path in ["/ui/campaigns".to_owned(), format!("/ui/campaigns/{id}")] {
        let (status, _, html) = page(app, &path, &cookie).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!html.contains("<img"), "{path}: {html}");
        assert!(
            html.contains("&#60;img src=x onerror=alert(1)&#62;"),
            "{path}: {html}"
        );
        assert!(!html.contains("\"quoted'"), "{path}");
    }
    // A search term comes back as text too.
    let (_, _, html) = page(app, "/ui/messages?q=%3Cscript%3Ex%3C%2Fscript%3E", &cookie).await;
    assert!(!html.contains("<script>x"), "{html}");
}

async fn a_rotated_key_ends_the_session(app: &TestApp) {
    let key = app.create_project("acme", &["+15550001111"]).await;
    let (cookie, _) = sign_in(app, &key).await;
    assert_eq!(page(app, "/ui/campaigns", &cookie).await.0, StatusCode::OK);
    let (status, _) = app
        .call(
            reqwest::Method::POST,
            "/v1/projects/acme/rotate-key",
            ADMIN,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, _) = page(app, "/ui/campaigns", &cookie).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/ui/sign-in");
}

async fn admin_token_opens_the_admin_page(app: &TestApp) {
    let key = app.create_project("acme", &["+15550001111"]).await;
    let (cookie, headers) = sign_in(app, ADMIN).await;
    assert_eq!(headers[LOCATION], "/ui/admin");
    let (status, _, html) = page(app, "/ui/admin", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("+15550001111"), "{html}");
    // A project's session does not open it.
    let (cookie, _) = sign_in(app, &key).await;
    assert_eq!(
        page(app, "/ui/admin", &cookie).await.0,
        StatusCode::FORBIDDEN
    );
}

async fn webhook_actions_reach_only_the_projects_own_endpoints(app: &TestApp) {
    let acme = app.create_project("acme", &["+15550001111"]).await;
    let other = app.create_project("other", &["+15550002222"]).await;
    let created = app
        .create_endpoint(&acme, "http://127.0.0.1:9/acme-only")
        .await;
    let id = created["id"].as_str().unwrap().to_owned();

    // The owner closes the breaker from the page and is told so.
    let (cookie, _) = sign_in(app, &acme).await;
    let (status, _, html) = page(app, &format!("/ui/webhooks/{id}"), &cookie).await;
    assert_eq!(status, StatusCode::OK);
    let resp = post(
        app,
        &format!("/ui/webhooks/{id}/do/reset-breaker"),
        &cookie,
        &[("csrf", &csrf_of(&html))],
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = resp.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(to.contains("done=Circuit%20breaker%20closed"), "{to}");

    // Another project sees nothing of it and cannot act on it.
    let (cookie, _) = sign_in(app, &other).await;
    let (status, _, body) = page(app, &format!("/ui/webhooks/{id}"), &cookie).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!body.contains("acme-only"), "{body}");
    let (_, _, html) = page(app, "/ui/webhooks", &cookie).await;
    assert!(!html.contains("acme-only"), "{html}");
    for action in ["reset-breaker", "delete", "disable"] {
        let resp = post(
            app,
            &format!("/ui/webhooks/{id}/do/{action}"),
            &cookie,
            &[("csrf", &csrf_of(&html))],
            None,
        )
        .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{action}");
    }
    let (status, still) = app.get(&format!("/webhook/config/{id}"), &acme).await;
    assert_eq!(status, StatusCode::OK, "{still}");
    assert_eq!(still["enabled"], true, "{still}");
}

/// Dashboard requests pass the edge the API's do (its cap on requests at once aside): counted
/// by route in `/metrics` (so a flood of sign-in attempts shows), and a request target over
/// 8 KiB refused with the API's JSON 414. Before, `/ui` was outside that edge: no metrics, no
/// access log line, no time limit.
async fn dashboard_requests_are_counted_and_bounded_like_the_apis(app: &TestApp) {
    let key = app.create_project("acme", &["+15550001111"]).await;
    let (cookie, _) = sign_in(app, &key).await;
    let (status, _, _) = page(app, "/ui/campaigns", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    let resp = client()
        .post(app.url("/ui/sign-in"))
        .header("content-type", FORM)
        .body(form_body(&[("key", "wg_live_wrong")]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let metrics = app.metrics().await;
    let count = |route: &str, status: u16| {
        let line = format!("wagate_http_requests_total{{route=\"{route}\",status=\"{status}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .map(|n| n.trim().to_owned())
    };
    assert_eq!(
        count("/ui/campaigns", 200).as_deref(),
        Some("1"),
        "{metrics}"
    );
    assert_eq!(count("/ui/sign-in", 303).as_deref(), Some("1"), "{metrics}");
    assert_eq!(
        count("/ui/sign-in", 401).as_deref(),
        Some("1"),
        "a refused sign-in is counted too"
    );

    let long = format!("/ui/campaigns?q={}", "x".repeat(9000));
    let resp = client()
        .get(app.url(&long))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::URI_TOO_LONG);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "uri_too_long");
}

/// On the distributed set a sign-out is kept in Redis: after a restart (or on another process
/// of the set, which shares `WAGATE_SECRET_KEY`), the signed-out cookie is still refused while
/// one that was not signed out still works. (On the embedded set the record is the process's,
/// and a restart forgets it: the README says so.)
#[tokio::test]
async fn a_sign_out_outlives_a_restart_on_the_distributed_set() {
    use crate::support::app::Backend;
    let secret = "d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5";
    let Some(app) = TestApp::spawn_with(Backend::Distributed, |c| {
        c.secret_key = Some(secret.into());
    })
    .await
    else {
        return;
    };
    let key = app.create_project("acme", &["+15550001111"]).await;
    let (ended, _) = sign_in(&app, &key).await;
    let (kept, _) = sign_in(&app, &key).await;
    let (_, _, html) = page(&app, "/ui/campaigns", &ended).await;
    let resp = post(
        &app,
        "/ui/sign-out",
        &ended,
        &[("csrf", &csrf_of(&html))],
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    let app = app.restart().await;
    let (status, ..) = page(&app, "/ui/campaigns", &kept).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the key and session key survive the restart"
    );
    let (status, headers, _) = page(&app, "/ui/campaigns", &ended).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/ui/sign-in");
    app.stop().await;
}
