//! A RabbitMQ consumer: its own channel with a prefetch window and manual acks, plus the adapter's
//! bookkeeping, done before anything reaches the caller. An early (delayed) message hops to its
//! next delay tier; a redelivery is counted into the attempt header by republishing it; a message
//! delivered more than `max_attempts` times is parked in the dead-letter queue.
//!
//! When its channel dies (connection lost, queue deleted), `receive` subscribes again at once on
//! the current connection, reconnecting if needed; if the broker cannot be reached it returns
//! `Unavailable`, and the next call tries again. Deliveries from the dead channel are redelivered
//! by the broker; acks for them are ignored.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::join_all;
use futures_util::{FutureExt, StreamExt};
use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio::time::Instant;

use super::Shared;
use super::age::Seen;
use super::link::unavailable;
use super::message::{Message, Meta, delivery_id, ready_ms, split};
use super::topology::{Target, millis, short, tier_for};
use crate::domain::time::Timestamp;
use crate::ports::queue::MAX_PRIORITY;
use crate::ports::{Consumer, Delivery, DeliveryId, QueueError};

/// Set-aside deliveries are republished together once this many have piled up.
const MOVE_BATCH: usize = 200;

/// How long a dropped consumer may spend handing back its unseen prefetch before its channel
/// is closed anyway.
const RETIRE_TIMEOUT: Duration = Duration::from_secs(10);

const TOO_MANY: &str = "delivered too many times without an ack";

pub struct RabbitConsumer {
    shared: Arc<Shared>,
    queue: String,
    /// Told when each message handed out became ready, for the queue's age.
    seen: Arc<Seen>,
    prefetch: u16,
    /// Bumped whenever the channel is dropped; part of every `DeliveryId` handed out.
    generation: u16,
    live: Option<Live>,
    /// Tags taken off the current channel and not yet acked, whether handed to the caller or set
    /// aside in `moves`. A multiple-ack never reaches past the smallest of them.
    unacked: BTreeSet<u64>,
    /// Deliveries to republish elsewhere (next delay tier, counted attempt, dead letters) and
    /// then ack.
    moves: Vec<Move>,
}

struct Live {
    channel: Channel,
    stream: lapin::Consumer,
}

struct Move {
    tag: u64,
    target: Target,
    payload: Vec<u8>,
    priority: u8,
    meta: Meta,
}

fn now_ms() -> i64 {
    Timestamp::now().millis()
}

impl RabbitConsumer {
    pub(super) async fn open(
        shared: Arc<Shared>,
        queue: &str,
        prefetch: u16,
    ) -> Result<RabbitConsumer, QueueError> {
        let mut c = RabbitConsumer {
            seen: shared.ages.of(queue),
            shared,
            queue: queue.to_owned(),
            prefetch: prefetch.max(1),
            generation: 0,
            live: None,
            unacked: BTreeSet::new(),
            moves: Vec::new(),
        };
        c.subscribe().await?;
        Ok(c)
    }

    async fn subscribe(&mut self) -> Result<(), QueueError> {
        self.drop_channel();
        let link = self.shared.consume.link().await?;
        let topology = &self.shared.topology;
        let name = topology.name(&self.queue, Target::Work);
        // Declared every time rather than from the connection's cache: a consumer resubscribes
        // after the broker cancelled it, which is what deleting its queue does.
        link.declare(&name, topology.args(&self.queue, Target::Work))
            .await?;
        let channel = link.channel().await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| unavailable("basic.qos", e))?;
        let stream = channel
            .basic_consume(
                short(&name)?,
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| unavailable("basic.consume", e))?;
        self.live = Some(Live { channel, stream });
        Ok(())
    }

    /// Forgets the channel: dropping its last handle makes lapin close it, and the broker
    /// requeues whatever it held unacked.
    fn drop_channel(&mut self) {
        self.unacked.clear();
        self.moves.clear();
        if self.live.take().is_some() {
            self.generation = self.generation.wrapping_add(1);
        }
    }

    fn lost(&mut self) {
        tracing::warn!(
            queue = %self.queue,
            "RabbitMQ consumer lost its channel; subscribing again"
        );
        self.drop_channel();
    }

    fn stream(&mut self) -> Option<&mut lapin::Consumer> {
        self.live.as_mut().map(|l| &mut l.stream)
    }

    /// Hands a delivery to the caller, or sets it aside in `moves` when the caller must not see
    /// it (yet).
    fn triage(&mut self, d: lapin::message::Delivery) -> Option<Delivery> {
        let tag = d.delivery_tag;
        self.unacked.insert(tag);
        let meta = Meta::read(&d.properties);
        let priority = d.properties.priority().unwrap_or(0).min(MAX_PRIORITY);
        let aside = self.set_aside(&meta, d.redelivered);
        match aside {
            Some((target, meta)) => {
                self.moves.push(Move {
                    tag,
                    target,
                    payload: d.data,
                    priority,
                    meta,
                });
                None
            }
            None => {
                if let Some(ready) = ready_ms(&d.properties) {
                    self.seen.received(ready);
                }
                Some(Delivery {
                    id: delivery_id(self.generation, tag),
                    payload: Bytes::from(d.data),
                    priority,
                    attempt: meta.attempt,
                })
            }
        }
    }

    /// Where a delivery goes instead of to the caller, if anywhere.
    fn set_aside(&self, meta: &Meta, redelivered: bool) -> Option<(Target, Meta)> {
        let now = now_ms();
        if let Some(due) = meta.due_ms.filter(|due| *due > now) {
            // Out of a shorter tier, or redelivered mid-hop; the caller never saw it, so no
            // attempt is counted.
            let left = Duration::from_millis(u64::try_from(due - now).unwrap_or(0));
            return Some((Target::Delay(tier_for(left)), meta.clone()));
        }
        let attempt = if redelivered {
            meta.attempt.saturating_add(1)
        } else {
            meta.attempt
        };
        if attempt > self.shared.max_attempts {
            let parked = Meta {
                attempt,
                due_ms: None,
                reason: Some(TOO_MANY.into()),
            };
            return Some((Target::Dead, parked));
        }
        // Classic queues only flag a redelivery; the count survives only in a new copy.
        redelivered.then(|| (Target::Work, Meta::attempt(attempt)))
    }

    /// Republishes the set-aside deliveries (confirmed) and acks their originals.
    async fn flush(&mut self) -> Result<(), QueueError> {
        if self.moves.is_empty() {
            return Ok(());
        }
        let moves = std::mem::take(&mut self.moves);
        let messages: Vec<Message> = moves
            .iter()
            .map(|m| Message {
                target: m.target,
                payload: &m.payload,
                priority: m.priority,
                meta: m.meta.clone(),
            })
            .collect();
        if let Err(e) = self.shared.send(&self.queue, &messages).await {
            // Closing the channel hands the originals back to the broker; acking would lose them.
            self.drop_channel();
            return Err(e);
        }
        self.settle(moves.iter().map(|m| m.tag).collect()).await;
        Ok(())
    }

    /// Acks these tags of the current channel (others are ignored), with one multiple-ack for
    /// the run below the smallest tag still unacked.
    async fn settle(&mut self, mut tags: Vec<u64>) {
        tags.retain(|t| self.unacked.remove(t));
        let Some(live) = &self.live else { return };
        if tags.is_empty() {
            return;
        }
        tags.sort_unstable();
        let floor = self.unacked.first().copied().unwrap_or(u64::MAX);
        let below = tags.partition_point(|t| *t < floor);
        let mut results = Vec::new();
        if below > 0 {
            let multiple = below > 1;
            results.push(
                live.channel
                    .basic_ack(tags[below - 1], BasicAckOptions { multiple })
                    .await,
            );
        }
        let singles = tags[below..].iter().map(|t| {
            live.channel
                .basic_ack(*t, BasicAckOptions { multiple: false })
        });
        results.extend(join_all(singles).await);
        if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
            // The channel is gone; the broker requeued what it held and will deliver it again.
            tracing::debug!(queue = %self.queue, error = %e, "ack on a dead channel ignored");
            self.drop_channel();
        }
    }

    /// Waits until `deadline` for a first delivery for the caller, then takes what else is
    /// buffered, up to `max`; set-aside deliveries are settled before it returns.
    async fn collect(
        &mut self,
        max: usize,
        deadline: Option<Instant>,
    ) -> Result<Vec<Delivery>, QueueError> {
        let mut out = Vec::new();
        loop {
            if self.live.is_none() {
                self.subscribe().await?;
            }
            let buffered = self.stream().and_then(|s| s.next().now_or_never());
            let next = match buffered {
                Some(next) => next,
                None if !out.is_empty() => break,
                None => {
                    // About to block: settle what was set aside first, so it does not wait for
                    // more traffic.
                    self.flush().await?;
                    let Some(stream) = self.stream() else {
                        continue;
                    };
                    match deadline {
                        None => stream.next().await,
                        Some(d) => match tokio::time::timeout_at(d, stream.next()).await {
                            Ok(next) => next,
                            Err(_) => break,
                        },
                    }
                }
            };
            match next {
                Some(Ok(d)) => {
                    if let Some(d) = self.triage(d) {
                        out.push(d);
                        if out.len() >= max {
                            break;
                        }
                    }
                }
                Some(Err(_)) | None => {
                    // Channel or connection lost, or the broker cancelled the consumer. The
                    // broker requeues everything unacked, so what this call collected comes
                    // back anyway: drop it and subscribe again (at the top of the loop).
                    out.clear();
                    self.lost();
                }
            }
            if self.moves.len() >= MOVE_BATCH {
                self.flush().await?;
            }
        }
        self.flush().await?;
        Ok(out)
    }

    /// The tag of a delivery that is still ours to settle on the current channel.
    fn current_tag(&self, id: DeliveryId) -> Option<u64> {
        let (generation, tag) = split(id);
        (generation == self.generation && self.unacked.contains(&tag)).then_some(tag)
    }

    /// Publishes a copy of `d` to `target`, then acks the original. A delivery from a channel
    /// that has since died is left alone: the broker delivers it again.
    async fn replace(
        &mut self,
        d: &Delivery,
        target: Target,
        meta: Meta,
    ) -> Result<(), QueueError> {
        let Some(tag) = self.current_tag(d.id) else {
            return Ok(());
        };
        let copy = Message {
            target,
            payload: &d.payload,
            priority: d.priority,
            meta,
        };
        self.shared.send(&self.queue, &[copy]).await?;
        self.settle(vec![tag]).await;
        Ok(())
    }
}

#[async_trait]
impl Consumer for RabbitConsumer {
    async fn receive(
        &mut self,
        max: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = wait.map(|w| Instant::now() + w);
        loop {
            let out = self.collect(max, deadline).await?;
            if out.is_empty()
                || self
                    .live
                    .as_ref()
                    .is_some_and(|l| l.channel.status().connected())
            {
                return Ok(out);
            }
            // The channel died while these sat in lapin's buffer: the broker has requeued them
            // and acks for them would be ignored, so keep waiting on a new channel instead.
            self.lost();
        }
    }

    async fn ack(&mut self, ids: &[DeliveryId]) -> Result<(), QueueError> {
        let tags = ids.iter().filter_map(|id| self.current_tag(*id)).collect();
        self.settle(tags).await;
        Ok(())
    }

    async fn retry(&mut self, d: &Delivery, delay: Duration) -> Result<(), QueueError> {
        let (target, due_ms) = if delay.is_zero() {
            (Target::Work, None)
        } else {
            (
                Target::Delay(tier_for(delay)),
                Some(now_ms().saturating_add(millis(delay))),
            )
        };
        let meta = Meta {
            attempt: d.attempt.saturating_add(1),
            due_ms,
            reason: None,
        };
        self.replace(d, target, meta).await
    }

    async fn dead_letter(&mut self, d: &Delivery, reason: &str) -> Result<(), QueueError> {
        let meta = Meta {
            attempt: d.attempt,
            due_ms: None,
            reason: Some(reason.to_owned()),
        };
        self.replace(d, Target::Dead, meta).await
    }
}

impl Drop for RabbitConsumer {
    fn drop(&mut self) {
        let Some(live) = self.live.take() else { return };
        // Without a runtime, dropping `live` still closes the channel (lapin does it).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(retire(
                self.shared.clone(),
                std::mem::take(&mut self.queue),
                live,
            ));
        }
    }
}

/// Ends a dropped consumer: stops its deliveries, gives back the ones it buffered but never
/// handed out, and closes its channel so the broker redelivers the rest (those the caller saw
/// and did not ack) at once.
async fn retire(shared: Arc<Shared>, queue: String, mut live: Live) {
    // Bounded, because a broker blocking publishes would otherwise keep this channel, and the
    // deliveries it holds, open for as long as the block lasts.
    let _ =
        tokio::time::timeout(RETIRE_TIMEOUT, hand_back_unseen(&shared, &queue, &mut live)).await;
    let _ = live.channel.close(200, "consumer dropped".into()).await;
}

async fn hand_back_unseen(shared: &Shared, queue: &str, live: &mut Live) {
    let cancel = live
        .channel
        .basic_cancel(live.stream.tag(), BasicCancelOptions::default())
        .await;
    if cancel.is_err() {
        return;
    }
    let mut unseen = Vec::new();
    while let Some(Some(Ok(d))) = live.stream.next().now_or_never() {
        unseen.push(d);
    }
    // Requeued by the close they would come back flagged as redelivered, and the next consumer
    // would count an attempt nobody made; a copy with unchanged headers avoids that. Those
    // already flagged stay, so their earlier crash is still counted.
    unseen.retain(|d| !d.redelivered);
    if unseen.is_empty() {
        return;
    }
    let messages: Vec<Message> = unseen
        .iter()
        .map(|d| Message {
            target: Target::Work,
            payload: &d.data,
            priority: d.properties.priority().unwrap_or(0),
            meta: Meta::read(&d.properties),
        })
        .collect();
    if shared.send(queue, &messages).await.is_ok() {
        let acks = unseen.iter().map(|d| {
            live.channel
                .basic_ack(d.delivery_tag, BasicAckOptions { multiple: false })
        });
        join_all(acks).await;
    }
}
