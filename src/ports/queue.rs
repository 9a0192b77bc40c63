//! The queue port: durable publish, batched receive, ack, delayed retry and a dead-letter path.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// The broker (or the queue's database) cannot take or give messages right now.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    #[error("queue closed")]
    Closed,
}

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub payload: Vec<u8>,
    /// 0 (normal) to 9; higher is delivered first.
    pub priority: u8,
    /// Not delivered before this much time has passed.
    pub delay: Duration,
}

impl Outgoing {
    pub fn new(payload: Vec<u8>, priority: u8) -> Outgoing {
        Outgoing {
            payload,
            priority: priority.min(MAX_PRIORITY),
            delay: Duration::ZERO,
        }
    }
}

pub const MAX_PRIORITY: u8 = 9;

/// Identifies a delivery to its consumer for ack/retry/dead-letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryId(pub u64);

/// A received message, owned by its consumer until acked, retried or dead-lettered. If the
/// consumer goes away first, the message is delivered again.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: DeliveryId,
    pub payload: Bytes,
    pub priority: u8,
    /// 1 on first delivery; counts redeliveries, including those after a consumer crashed.
    pub attempt: u32,
}

#[async_trait]
pub trait Queue: Send + Sync + 'static {
    fn backend(&self) -> &'static str;

    /// Returns once every message is durable (committed, or confirmed by the broker).
    async fn publish(&self, queue: &str, messages: &[Outgoing]) -> Result<(), QueueError>;

    /// A consumer that holds at most `prefetch` unacknowledged deliveries.
    async fn consumer(&self, queue: &str, prefetch: u16) -> Result<Box<dyn Consumer>, QueueError>;

    /// Messages ready or in flight (not counting dead letters); for metrics, may be approximate.
    async fn depth(&self, queue: &str) -> Result<u64, QueueError>;

    /// How long the oldest message ready for a consumer has waited since it became ready
    /// (published, or due); zero for an empty queue. The local queue knows it exactly; RabbitMQ
    /// cannot show its head, so its adapter gives an upper bound from what this process saw, or
    /// `None` before it saw anything that bounds it.
    async fn oldest_ready(&self, queue: &str) -> Result<Option<Duration>, QueueError>;

    /// Messages in the queue's dead-letter store.
    async fn dead_count(&self, queue: &str) -> Result<u64, QueueError>;

    /// Moves up to `limit` dead letters back onto the queue; returns how many moved.
    async fn redrive(&self, queue: &str, limit: u64) -> Result<u64, QueueError>;

    async fn ping(&self) -> Result<(), QueueError>;
}

#[async_trait]
pub trait Consumer: Send {
    /// Waits up to `wait` (forever if `None`) for a first delivery, then returns it with whatever
    /// else is ready, up to `max` in all. An empty result means the wait ran out.
    async fn receive(
        &mut self,
        max: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<Delivery>, QueueError>;

    /// Done with these: they will not be delivered again.
    async fn ack(&mut self, ids: &[DeliveryId]) -> Result<(), QueueError>;

    /// Deliver again after `delay`, with `attempt` one higher.
    async fn retry(&mut self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError>;

    /// Park it in the dead-letter store with a reason; `redrive` brings it back.
    async fn dead_letter(&mut self, delivery: &Delivery, reason: &str) -> Result<(), QueueError>;
}
