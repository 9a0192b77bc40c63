//! The RabbitMQ queue (3.10, no plugins): the `Queue` port on classic durable priority queues.
//!
//! Per logical queue `q` it declares, lazily and once per connection:
//! - `{prefix}.q`: the work queue (`x-max-priority` 9); messages persistent, publishes confirmed;
//! - `{prefix}.q.delay.{ms}`: fixed-TTL queues ([`DELAY_TIERS`]) that dead-letter back into
//!   the work queue; a message's due time rides in a header, and a consumer sends a message that
//!   arrives early on to its next tier, so a delay is never cut short;
//! - `{prefix}.q.dead`: parked messages, with the reason in a header; `redrive` moves them back.
//!
//! Classic queues flag a redelivery but do not count it, so the attempt lives in a header and a
//! consumer that receives a redelivery republishes it with the count raised (see `consumer`).
//! Publishing and consuming use two connections, so the broker's flow control on a busy
//! publisher never holds back consumers' acks. Both reconnect by themselves (see `link`).

mod age;
mod consumer;
mod link;
mod message;
mod publish;
mod topology;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicAckOptions, BasicGetOptions};

pub use topology::TIERS as DELAY_TIERS;

use self::consumer::RabbitConsumer;
use self::link::{Slot, unavailable};
use self::message::{Message, Meta};
use self::topology::{Target, Topology, millis, short, tier_for};
use crate::domain::time::Timestamp;
use crate::ports::{Consumer, Outgoing, Queue, QueueError};

/// Dead letters moved per confirmed batch by `redrive`.
const REDRIVE_BATCH: u64 = 100;

#[derive(Debug, Clone)]
pub struct RabbitOptions {
    /// Every queue name starts with `{prefix}.`; processes sharing a prefix share the queues.
    pub prefix: String,
    /// A message delivered (or retried) more often than this is parked as a dead letter.
    pub max_attempts: u32,
    /// `x-expires` on every declared queue: it is deleted, messages and all, after being unused
    /// this long. For tests; leave `None` in production.
    pub queue_expires: Option<Duration>,
    /// Shown by `rabbitmqctl list_connections name`, with " publish" / " consume" appended.
    pub connection_name: String,
}

impl Default for RabbitOptions {
    fn default() -> RabbitOptions {
        RabbitOptions {
            prefix: "wagate".into(),
            max_attempts: 5,
            queue_expires: None,
            connection_name: "wagate".into(),
        }
    }
}

/// State shared by the queue handle and its consumers.
struct Shared {
    topology: Topology,
    /// What counts and consumers saw, for the queues' ages.
    ages: age::Ages,
    max_attempts: u32,
    /// Publishes, declares, counts and redrives.
    publish: Slot,
    /// Consumers' channels.
    consume: Slot,
}

impl Shared {
    /// Publishes messages for the logical `queue`, confirmed.
    async fn send(&self, queue: &str, messages: &[Message<'_>]) -> Result<(), QueueError> {
        let link = self.publish.link().await?;
        publish::publish(&link, &self.topology, queue, messages).await
    }
}

#[derive(Clone)]
pub struct RabbitQueue {
    shared: Arc<Shared>,
}

impl RabbitQueue {
    /// Connects (both connections) now, so a bad URL or a broker that is down fails startup.
    pub async fn connect(url: &str, options: RabbitOptions) -> Result<RabbitQueue, QueueError> {
        let name = &options.connection_name;
        let publish = Slot::open(url, format!("{name} publish")).await?;
        let consume = Slot::open(url, format!("{name} consume")).await?;
        Ok(RabbitQueue {
            shared: Arc::new(Shared {
                topology: Topology::new(options.prefix, options.queue_expires),
                ages: age::Ages::default(),
                max_attempts: options.max_attempts,
                publish,
                consume,
            }),
        })
    }

    /// Closes both connections; consumers still open lose their channels.
    pub async fn close(&self) {
        self.shared.publish.close().await;
        self.shared.consume.close().await;
    }

    async fn count(&self, queue: &str, target: Target) -> Result<u64, QueueError> {
        let topology = &self.shared.topology;
        topology.check(queue)?;
        let link = self.shared.publish.link().await?;
        link.declare(&topology.name(queue, target), topology.args(queue, target))
            .await
    }
}

#[async_trait]
impl Queue for RabbitQueue {
    fn backend(&self) -> &'static str {
        "rabbitmq"
    }

    async fn publish(&self, queue: &str, messages: &[Outgoing]) -> Result<(), QueueError> {
        self.shared.topology.check(queue)?;
        let now = Timestamp::now().millis();
        let messages: Vec<Message> = messages
            .iter()
            .map(|m| {
                let (target, due_ms) = if m.delay.is_zero() {
                    (Target::Work, None)
                } else {
                    (
                        Target::Delay(tier_for(m.delay)),
                        Some(now.saturating_add(millis(m.delay))),
                    )
                };
                Message {
                    target,
                    payload: &m.payload,
                    priority: m.priority,
                    meta: Meta {
                        due_ms,
                        ..Meta::first()
                    },
                }
            })
            .collect();
        self.shared.send(queue, &messages).await
    }

    async fn consumer(&self, queue: &str, prefetch: u16) -> Result<Box<dyn Consumer>, QueueError> {
        self.shared.topology.check(queue)?;
        let c = RabbitConsumer::open(self.shared.clone(), queue, prefetch).await?;
        Ok(Box::new(c))
    }

    /// Ready messages in the work queue: not those in flight to consumers or waiting in delay
    /// queues (the broker counts neither in a declare).
    async fn depth(&self, queue: &str) -> Result<u64, QueueError> {
        let ready = self.count(queue, Target::Work).await?;
        let now = Timestamp::now().millis();
        self.shared.ages.of(queue).counted(ready, now);
        Ok(ready)
    }

    /// An upper bound from this process's counts and consumers (see `age`).
    async fn oldest_ready(&self, queue: &str) -> Result<Option<Duration>, QueueError> {
        let ready = self.depth(queue).await?;
        let now = Timestamp::now().millis();
        Ok(self.shared.ages.of(queue).oldest(ready, now))
    }

    async fn dead_count(&self, queue: &str) -> Result<u64, QueueError> {
        self.count(queue, Target::Dead).await
    }

    async fn redrive(&self, queue: &str, limit: u64) -> Result<u64, QueueError> {
        let topology = &self.shared.topology;
        topology.check(queue)?;
        let link = self.shared.publish.link().await?;
        let dead = topology.name(queue, Target::Dead);
        link.ensure(&dead, || topology.args(queue, Target::Dead))
            .await?;
        let dead = short(&dead)?;
        // A channel of its own: the dead letters it takes stay unacked on it until their copies
        // are confirmed, and on any failure it is dropped (closed), which puts them back.
        let channel = link.channel().await?;
        let mut moved = 0;
        while moved < limit {
            let mut taken = Vec::new();
            while moved + (taken.len() as u64) < limit && (taken.len() as u64) < REDRIVE_BATCH {
                match channel
                    .basic_get(dead.clone(), BasicGetOptions { no_ack: false })
                    .await
                {
                    Ok(Some(m)) => taken.push(m.delivery),
                    Ok(None) => break,
                    Err(e) => return Err(unavailable("basic.get", e)),
                }
            }
            let Some(last) = taken.last().map(|d| d.delivery_tag) else {
                break;
            };
            let messages: Vec<Message> = taken
                .iter()
                .map(|d| Message {
                    target: Target::Work,
                    payload: &d.data,
                    priority: d.properties.priority().unwrap_or(0),
                    meta: Meta::first(),
                })
                .collect();
            self.shared.send(queue, &messages).await?;
            channel
                .basic_ack(last, BasicAckOptions { multiple: true })
                .await
                .map_err(|e| unavailable("basic.ack", e))?;
            moved += taken.len() as u64;
        }
        // Waits for close-ok, so the acks are applied before a following count.
        let _ = channel.close(200, "redrive done".into()).await;
        Ok(moved)
    }

    async fn ping(&self) -> Result<(), QueueError> {
        let link = self.shared.publish.link().await?;
        if link.blocked() {
            return Err(QueueError::Unavailable(
                "RabbitMQ is refusing publishes (resource alarm)".into(),
            ));
        }
        self.shared.consume.link().await.map(|_| ())
    }
}
