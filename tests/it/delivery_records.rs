//! Attempt records, on both backend sets: a receiver's untrusted answer is stored cleaned and
//! recorded once; a record the store refuses never fails its batch-mates; a delivery whose
//! endpoint was deleted while its event was applied ends `dead`, not pending for ever.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::task::TaskTracker;
use wagate::domain::endpoint::{DeliveryStatus, Endpoint, EndpointId, WebhookDeliveryId};
use wagate::domain::project::ProjectId;
use wagate::domain::time::Timestamp;
use wagate::ports::StoreError;
use wagate::ports::deliveries::{
    AttemptRecord, Deliveries, FollowUp, Pending, ReplayWindow, Replayed,
};
use wagate::ports::endpoints::DeliveryView;
use wagate::workers::recorder::Recorder;

use crate::deliveries_conformance::{self as conformance, Ports, attempt, detail, seed};
use crate::forwarding::{
    NUMBER, deliveries, endpoint, fast, first_delivery_is, post_event, spawn, until,
};
use crate::support::app::{Backend, TestApp};
use crate::support::receiver::Receiver;

crate::support::app::backend_cases!(
    a_receiver_answering_a_nul_is_recorded_once_and_not_resent,
    a_delivery_of_an_endpoint_deleted_meanwhile_goes_dead,
    a_refused_record_is_rewritten_and_its_batch_mates_recorded,
    a_record_refused_even_rewritten_fails_only_its_own_waiter,
);

async fn a_receiver_answering_a_nul_is_recorded_once_and_not_resent(backend: Backend) {
    let Some(app) = spawn(backend, |_| {}).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer_body("nul", b"200 ok\0\x1b[2J");
    let key = app.create_project("acme", &[NUMBER]).await;
    let (id, _) = endpoint(&app, &key, &rx.url("nul"), &["*"]).await;
    post_event(&app, "wamid.N1", "delivered").await;
    let log = first_delivery_is(&app, &key, &id, "succeeded").await;
    let dl = log["data"][0]["id"].as_str().unwrap();
    let (status, detail) = app.get(&format!("/webhook/deliveries/{dl}"), &key).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["attempt_count"], 1, "{detail}");
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{detail}");
    assert_eq!(attempts[0]["status_code"], 200);
    assert_eq!(
        attempts[0]["response_snippet"], "200 ok\u{FFFD}\u{FFFD}[2J",
        "the NUL and the escape are stored as replacement characters"
    );
    assert_eq!(rx.received("nul").len(), 1, "recorded once, so sent once");
    app.stop().await;
}

async fn a_delivery_of_an_endpoint_deleted_meanwhile_goes_dead(backend: Backend) {
    // API and ingress only: the delivery is written and nothing forwards it yet.
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let key = app.create_project("acme", &[NUMBER]).await;
    let (id, _) = endpoint(&app, &key, &rx.url("gone"), &["*"]).await;
    post_event(&app, "wamid.G1", "delivered").await;
    assert_eq!(app.process().await, 1);
    let dl = deliveries(&app, &key, &id).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // What a delete committed while the event was being applied leaves behind: the delivery
    // without its endpoint (deleting through the API removes an endpoint's deliveries).
    crate::security::sql(&app, format!("DELETE FROM endpoints WHERE id = '{id}'")).await;
    let app = app.restart_with(fast).await;
    let path = format!("/webhook/deliveries/{dl}");
    let detail = until(&app, &path, &key, |d| d["status"] == "dead").await;
    assert_eq!(detail["last_error"], "endpoint_deleted", "{detail}");
    assert_eq!(detail["attempt_count"], 1, "{detail}");
    let attempts: &Vec<Value> = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{detail}");
    assert_eq!(attempts[0]["error"], "endpoint_deleted");
    assert!(rx.all().is_empty(), "nothing was sent anywhere");
    app.stop().await;
}

/// A store that refuses (as PostgreSQL refuses a value it cannot take) every batch holding a
/// record `refuse` picks, and is the real store otherwise.
struct Refusing {
    inner: Arc<dyn Deliveries>,
    refuse: Box<dyn Fn(&AttemptRecord) -> bool + Send + Sync>,
}

#[async_trait]
impl Deliveries for Refusing {
    async fn load(&self, ids: &[WebhookDeliveryId]) -> Result<Vec<Pending>, StoreError> {
        self.inner.load(ids).await
    }
    async fn record(
        &self,
        attempts: &[AttemptRecord],
    ) -> Result<Vec<WebhookDeliveryId>, StoreError> {
        if attempts.iter().any(|r| (self.refuse)(r)) {
            return Err(StoreError::Rejected("invalid byte sequence (22021)".into()));
        }
        self.inner.record(attempts).await
    }
    async fn defer(&self, ids: &[WebhookDeliveryId], at: Timestamp) -> Result<(), StoreError> {
        self.inner.defer(ids, at).await
    }
    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<WebhookDeliveryId>, StoreError> {
        self.inner.claim_due(now, lease_until, limit).await
    }
    async fn retry(
        &self,
        project: &ProjectId,
        id: &WebhookDeliveryId,
        now: Timestamp,
    ) -> Result<Option<DeliveryView>, StoreError> {
        self.inner.retry(project, id, now).await
    }
    async fn redrive(
        &self,
        project: &ProjectId,
        endpoint: &EndpointId,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.inner.redrive(project, endpoint, now).await
    }
    async fn replay(
        &self,
        endpoint: &Endpoint,
        window: &ReplayWindow,
        now: Timestamp,
    ) -> Result<Replayed, StoreError> {
        self.inner.replay(endpoint, window, now).await
    }
    async fn hasten(&self, endpoint: &EndpointId, now: Timestamp) -> Result<u64, StoreError> {
        self.inner.hasten(endpoint, now).await
    }
    async fn dead_count(&self) -> Result<u64, StoreError> {
        self.inner.dead_count().await
    }
    async fn pending_count(&self) -> Result<u64, StoreError> {
        self.inner.pending_count().await
    }
    async fn prune(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.inner.prune(before, limit).await
    }
}

/// The ports of `backend`'s store, and what keeps its database alive.
async fn ports(backend: Backend) -> Option<(Ports, Box<dyn std::any::Any>)> {
    match backend {
        Backend::Embedded => {
            let (ports, dir) = conformance::sqlite().await;
            Some((ports, Box::new(dir)))
        }
        Backend::Distributed => {
            let (ports, db) = conformance::postgres().await?;
            Some((ports, Box::new(db)))
        }
    }
}

/// Five deliveries' first attempts, all succeeded and each with a snippet, the third one's
/// `poison`, handed to a recorder over `store` at once (so in one batch); returns the
/// deliveries and what each waiter was told.
async fn record_five(
    ports: &Ports,
    refuse: impl Fn(&AttemptRecord) -> bool + Send + Sync + 'static,
) -> (Vec<WebhookDeliveryId>, Vec<Result<bool, StoreError>>) {
    let (_, ids) = seed(ports, 5).await;
    let store = Arc::new(Refusing {
        inner: ports.deliveries.clone(),
        refuse: Box::new(refuse),
    });
    let tracker = TaskTracker::new();
    let recorder = Recorder::spawn(store, &tracker, 16, Duration::from_millis(200));
    let records = ids.iter().enumerate().map(|(i, id)| {
        let mut r = attempt(id, 1, Some(200), FollowUp::Succeeded);
        r.response_snippet = Some(if i == 2 { "poison".into() } else { "ok".into() });
        r.error = (i == 2).then(|| "poison too".into());
        r
    });
    let told = futures_util::future::join_all(records.map(|r| recorder.record(r))).await;
    (ids, told)
}

async fn a_refused_record_is_rewritten_and_its_batch_mates_recorded(backend: Backend) {
    let Some((ports, _keep)) = ports(backend).await else {
        return;
    };
    let (ids, told) =
        record_five(&ports, |r| r.response_snippet.as_deref() == Some("poison")).await;
    for (id, t) in ids.iter().zip(&told) {
        assert!(matches!(t, Ok(true)), "{id}: {t:?}");
        assert_eq!(
            detail(&ports, id).await.delivery.status,
            DeliveryStatus::Succeeded
        );
    }
    let poisoned = detail(&ports, &ids[2]).await;
    let a = &poisoned.attempts[0];
    assert_eq!(a.status_code, Some(200));
    assert_eq!(a.response_snippet, None, "the receiver's words are dropped");
    let note = a.error.as_deref().unwrap();
    assert!(note.starts_with("REFUSED"), "{note}");
    assert!(!note.contains("poison"), "{note}");
}

async fn a_record_refused_even_rewritten_fails_only_its_own_waiter(backend: Backend) {
    let Some((ports, _keep)) = ports(backend).await else {
        return;
    };
    let (ids, told) = {
        let poisoned = std::sync::OnceLock::<WebhookDeliveryId>::new();
        let p = Arc::new(poisoned);
        let p2 = p.clone();
        // The third delivery is refused whatever its record says.
        let (ids, told) = record_five(&ports, move |r| {
            if r.response_snippet.as_deref() == Some("poison") {
                let _ = p2.set(r.delivery.clone());
            }
            p2.get() == Some(&r.delivery)
        })
        .await;
        assert_eq!(p.get(), Some(&ids[2]));
        (ids, told)
    };
    for (i, (id, t)) in ids.iter().zip(&told).enumerate() {
        let status = detail(&ports, id).await.delivery.status;
        if i == 2 {
            assert!(matches!(t, Err(StoreError::Rejected(_))), "{t:?}");
            assert_eq!(status, DeliveryStatus::Pending);
        } else {
            assert!(matches!(t, Ok(true)), "{id}: {t:?}");
            assert_eq!(status, DeliveryStatus::Succeeded);
        }
    }
}
