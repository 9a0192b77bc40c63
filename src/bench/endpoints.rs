//! The forward bench's setup: one project per endpoint, each with its own business number and
//! ONE webhook endpoint subscribed to everything, so that every event is exactly one forward.

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinSet;

use super::api::Api;
use crate::domain::signing::SigningSecret;

/// Projects created at once: enough to make setup of hundreds quick, few enough not to be a
/// load test of the admin API.
const SETUP_CONCURRENCY: usize = 8;

#[derive(Deserialize)]
struct CreatedEndpoint {
    shared_secret: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorFields,
}

#[derive(Deserialize)]
struct ErrorFields {
    code: String,
}

/// Creates project `{run}-{e}` for business number `+{numbers[e]}` and its endpoint at
/// `urls[e]`, for every `e`; the endpoints' secrets come back in that order.
pub async fn create_all(
    api: &Api,
    admin_token: Option<&str>,
    run: &str,
    numbers: &[String],
    urls: &[String],
) -> anyhow::Result<Vec<SigningSecret>> {
    let mut out: Vec<Option<SigningSecret>> = (0..numbers.len()).map(|_| None).collect();
    let mut next = 0;
    let mut running = JoinSet::new();
    loop {
        while next < numbers.len() && running.len() < SETUP_CONCURRENCY {
            let (api, token) = (api.clone(), admin_token.map(str::to_owned));
            let (id, number, url) = (
                format!("{run}-{next}"),
                numbers[next].clone(),
                urls[next].clone(),
            );
            let e = next;
            running.spawn(async move {
                (
                    e,
                    create_one(&api, token.as_deref(), &id, &number, &url).await,
                )
            });
            next += 1;
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (e, secret) = joined.context("a setup task died")?;
        out[e] = Some(secret?);
    }
    Ok(out
        .into_iter()
        .map(|s| s.expect("every secret set"))
        .collect())
}

async fn create_one(
    api: &Api,
    admin_token: Option<&str>,
    id: &str,
    business_number: &str,
    url: &str,
) -> anyhow::Result<SigningSecret> {
    let project = api
        .create_project(admin_token, id, &format!("+{business_number}"))
        .await?;
    let body = json!({
        "webhook_url": url,
        "topics": ["*"],
        "description": "wagate bench forward",
    });
    let resp = api
        .client()
        .post(api.url("/webhook/config"))
        .bearer_auth(&project.api_key)
        .json(&body)
        .send()
        .await
        .context("POST /webhook/config")?;
    let status = resp.status();
    let bytes = resp.bytes().await.context("reading POST /webhook/config")?;
    if status != StatusCode::CREATED {
        let code = serde_json::from_slice::<ErrorBody>(&bytes).map(|b| b.error.code);
        if code.as_deref().ok() == Some("url_not_allowed") {
            bail!(
                "the gateway refused the receiver's URL {url} (url_not_allowed): run it with \
                 WAGATE_ALLOW_PRIVATE_TARGETS=true so it may deliver to this machine"
            );
        }
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
        bail!("creating the endpoint of project {id} failed: {status}: {text}");
    }
    let created: CreatedEndpoint =
        serde_json::from_slice(&bytes).context("reading the created endpoint")?;
    Ok(SigningSecret::new(created.shared_secret))
}
