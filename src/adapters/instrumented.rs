//! A `Store` decorator that times every call into `wagate_store_operation_seconds{op}`.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::domain::apply::Plan;
use crate::domain::phone::PhoneNumber;
use crate::domain::project::{ApiKeyHash, BusinessNumber, NewProject, Project, ProjectId};
use crate::domain::time::Timestamp;
use crate::metrics::{Metrics, OpLabel};
use crate::ports::store::{
    Applied, InboundView, MessageQuery, MessageView, ProjectStats, QuarantineFilter,
    QuarantineView, Quarantined,
};
use crate::ports::{Store, StoreError};

pub struct Instrumented {
    inner: Arc<dyn Store>,
    metrics: Metrics,
}

impl Instrumented {
    pub fn wrap(inner: Arc<dyn Store>, metrics: Metrics) -> Arc<dyn Store> {
        Arc::new(Instrumented { inner, metrics })
    }

    async fn timed<T>(&self, op: &'static str, f: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = f.await;
        self.metrics
            .store_seconds
            .get_or_create(&OpLabel { op })
            .observe(started.elapsed().as_secs_f64());
        out
    }
}

#[async_trait]
impl Store for Instrumented {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.timed("ping", self.inner.ping()).await
    }
    async fn create_project(
        &self,
        p: &NewProject,
        k: &ApiKeyHash,
        now: Timestamp,
    ) -> Result<Project, StoreError> {
        self.timed("create_project", self.inner.create_project(p, k, now))
            .await
    }
    async fn project_by_key(&self, k: &ApiKeyHash) -> Result<Option<ProjectId>, StoreError> {
        self.timed("project_by_key", self.inner.project_by_key(k))
            .await
    }
    async fn number_by_meta_id(
        &self,
        id: &str,
    ) -> Result<Option<(ProjectId, PhoneNumber)>, StoreError> {
        self.timed("number_by_meta_id", self.inner.number_by_meta_id(id))
            .await
    }
    async fn project_by_number(&self, n: &PhoneNumber) -> Result<Option<ProjectId>, StoreError> {
        self.timed("project_by_number", self.inner.project_by_number(n))
            .await
    }
    async fn apply(&self, plan: &Plan<'_>) -> Result<Applied, StoreError> {
        self.timed("apply", self.inner.apply(plan)).await
    }
    async fn message(&self, p: &ProjectId, wamid: &str) -> Result<Option<MessageView>, StoreError> {
        self.timed("message", self.inner.message(p, wamid)).await
    }
    async fn messages(
        &self,
        p: &ProjectId,
        q: &MessageQuery,
    ) -> Result<Vec<MessageView>, StoreError> {
        self.timed("messages", self.inner.messages(p, q)).await
    }
    async fn inbound(
        &self,
        p: &ProjectId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InboundView>, StoreError> {
        self.timed("inbound", self.inner.inbound(p, after, limit))
            .await
    }
    async fn stats(&self, p: &ProjectId) -> Result<ProjectStats, StoreError> {
        self.timed("stats", self.inner.stats(p)).await
    }
    async fn quarantine(&self, items: &[Quarantined]) -> Result<(), StoreError> {
        self.timed("quarantine", self.inner.quarantine(items)).await
    }
    async fn quarantined(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<QuarantineView>, StoreError> {
        self.timed("quarantined", self.inner.quarantined(before, limit))
            .await
    }
    async fn project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        self.timed("project", self.inner.project(id)).await
    }
    async fn projects(
        &self,
        after: Option<&ProjectId>,
        limit: u32,
    ) -> Result<Vec<Project>, StoreError> {
        self.timed("projects", self.inner.projects(after, limit))
            .await
    }
    async fn add_number(&self, id: &ProjectId, n: &BusinessNumber) -> Result<bool, StoreError> {
        self.timed("add_number", self.inner.add_number(id, n)).await
    }
    async fn remove_number(&self, id: &ProjectId, n: &PhoneNumber) -> Result<bool, StoreError> {
        self.timed("remove_number", self.inner.remove_number(id, n))
            .await
    }
    async fn rotate_key(
        &self,
        id: &ProjectId,
        new: &ApiKeyHash,
    ) -> Result<Option<ApiKeyHash>, StoreError> {
        self.timed("rotate_key", self.inner.rotate_key(id, new))
            .await
    }
    async fn claim_quarantined(
        &self,
        f: &QuarantineFilter,
        token: &str,
        limit: u32,
    ) -> Result<Vec<QuarantineView>, StoreError> {
        self.timed(
            "claim_quarantined",
            self.inner.claim_quarantined(f, token, limit),
        )
        .await
    }
    async fn prune_raw(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.timed("prune_raw", self.inner.prune_raw(before, limit))
            .await
    }
    async fn release_quarantined(&self, ids: &[i64], token: &str) -> Result<u64, StoreError> {
        self.timed(
            "release_quarantined",
            self.inner.release_quarantined(ids, token),
        )
        .await
    }
}
