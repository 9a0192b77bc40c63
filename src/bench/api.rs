//! The slice of wagate's HTTP API the bench drives, as a small typed client.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, StatusCode, Url};
use serde::Deserialize;
use serde_json::json;

/// Long enough for a server that is queueing hard, short enough that a hung request shows up as
/// an error instead of stalling the run.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Api {
    client: Client,
    base: Url,
}

#[derive(Debug, Deserialize)]
pub struct CreatedProject {
    pub id: String,
    pub api_key: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Stats {
    pub messages: MessageCounts,
    pub history_events: u64,
    pub inbound_messages: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MessageCounts {
    pub total: u64,
    pub sent: u64,
    pub failed: u64,
    pub delivered: u64,
    pub read: u64,
}

/// One message as `GET /v1/messages` lists it; fields the bench does not check are skipped.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageOut {
    pub wamid: String,
    pub status: String,
    #[serde(default)]
    pub events: Vec<HistoryOut>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HistoryOut {
    pub status: String,
}

#[derive(Debug, Deserialize)]
pub struct Page {
    pub data: Vec<MessageOut>,
    pub next_cursor: Option<String>,
}

impl Api {
    /// One client for the whole run: HTTP/1.1 keep-alive with an idle pool as large as the
    /// concurrency, so every worker reuses its connection instead of reconnecting.
    pub fn new(target: &str, concurrency: usize) -> anyhow::Result<Api> {
        let base =
            Url::parse(target).with_context(|| format!("--target `{target}` is not a URL"))?;
        let client = crate::adapters::outbound::client_builder()
            .http1_only()
            .pool_max_idle_per_host(concurrency)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        Ok(Api { client, base })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{prefix}{path}"));
        url
    }

    /// The server's resident memory, as its `/metrics` reports it (`None` if it does not).
    pub async fn server_rss(&self) -> Option<u64> {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        crate::metrics::process::rss_from_metrics(&text)
    }

    pub async fn healthz(&self) -> anyhow::Result<()> {
        let url = self.url("/healthz");
        let resp = self.client.get(url.clone()).send().await;
        let resp = resp.with_context(|| format!("server unreachable at {url}"))?;
        if !resp.status().is_success() {
            bail!("{url} answered {}", resp.status());
        }
        Ok(())
    }

    pub async fn create_project(
        &self,
        admin_token: Option<&str>,
        id: &str,
        business_number: &str,
    ) -> anyhow::Result<CreatedProject> {
        let body = json!({ "id": id, "name": format!("wagate bench {id}"), "phone_numbers": [business_number] });
        let mut req = self.client.post(self.url("/v1/projects")).json(&body);
        if let Some(token) = admin_token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.context("POST /v1/projects")?;
        let status = resp.status();
        if status != StatusCode::CREATED {
            let text = resp.text().await.unwrap_or_default();
            let hint = match (status, admin_token) {
                (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, None) => {
                    " (no admin token given: set WAGATE_ADMIN_TOKEN or --admin-token)"
                }
                _ => "",
            };
            bail!("creating project {id} failed: {status}{hint}: {text}");
        }
        resp.json().await.context("reading the created project")
    }

    pub async fn stats(&self, api_key: &str) -> anyhow::Result<Stats> {
        let resp = self
            .client
            .get(self.url("/v1/stats"))
            .bearer_auth(api_key)
            .send()
            .await?;
        ok_json(resp, "GET /v1/stats").await
    }

    pub async fn messages(&self, api_key: &str, after: Option<&str>) -> anyhow::Result<Page> {
        let mut url = self.url("/v1/messages");
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", "500");
            if let Some(cursor) = after {
                query.append_pair("after", cursor);
            }
        }
        let resp = self.client.get(url).bearer_auth(api_key).send().await?;
        ok_json(resp, "GET /v1/messages").await
    }

    /// A webhook body as a BSP posts it.
    pub fn ingest(&self, url: Url, body: bytes::Bytes) -> reqwest::RequestBuilder {
        self.client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
    }
}

async fn ok_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
) -> anyhow::Result<T> {
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        bail!("{what} answered {status}: {text}");
    }
    resp.json()
        .await
        .with_context(|| format!("{what}: unexpected body"))
}
