//! One AMQP connection that reopens itself: lazily, on the first use after it died, and no more
//! often than a capped exponential backoff allows, so while the broker is away callers get a fast
//! `Unavailable` instead of each waiting out a connect timeout.
//!
//! Everything opened on a connection (channels, what has been declared) lives in its [`Link`],
//! so a new connection starts clean and declares again on first use.

use std::collections::HashSet;
use std::fmt::Display;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::topology::short;
use crate::ports::QueueError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Used when the URL names none: a broker that vanished without closing the socket is noticed
/// after two missed heartbeats, not the server's default of minutes.
const HEARTBEAT_SECS: u16 = 10;
/// Used when the URL names none. lapin gives each connection a send and a receive buffer of 32
/// frames, filled in at connect: at RabbitMQ's default 128 KiB frames that is 8 MiB resident
/// per connection, most of an idle server's memory. At 16 KiB it is 1 MiB; a larger message is
/// sent as more frames, 8 bytes of overhead each.
const FRAME_MAX: u32 = 16 * 1024;
/// Batches being confirmed at once on one connection; each holds a channel of its own.
const MAX_PUBLISHERS: usize = 64;

pub fn unavailable(what: &str, e: impl Display) -> QueueError {
    QueueError::Unavailable(format!("RabbitMQ {what}: {e}"))
}

/// A named connection slot: holds the current [`Link`] and replaces it once it has died.
pub struct Slot {
    uri: AMQPUri,
    name: String,
    current: Mutex<Option<Arc<Link>>>,
    reconnect: tokio::sync::Mutex<Backoff>,
}

struct Backoff {
    not_before: Option<Instant>,
    delay: Duration,
    last_error: String,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            not_before: None,
            delay: FIRST_BACKOFF,
            last_error: String::new(),
        }
    }
}

impl Slot {
    /// Connects now, so a wrong URL or a broker that is down shows at startup.
    pub async fn open(url: &str, name: String) -> Result<Slot, QueueError> {
        let mut uri: AMQPUri = url
            .parse()
            .map_err(|e: String| QueueError::Unavailable(format!("bad AMQP URL: {e}")))?;
        uri.query.heartbeat.get_or_insert(HEARTBEAT_SECS);
        uri.query.frame_max.get_or_insert(FRAME_MAX);
        let slot = Slot {
            uri,
            name,
            current: Mutex::new(None),
            reconnect: tokio::sync::Mutex::new(Backoff::default()),
        };
        slot.link().await?;
        Ok(slot)
    }

    /// The live connection, reconnecting first if it died (unless the backoff says wait).
    pub async fn link(&self) -> Result<Arc<Link>, QueueError> {
        if let Some(link) = self.live() {
            return Ok(link);
        }
        let mut backoff = self.reconnect.lock().await;
        // Another task may have reconnected while this one waited for the lock.
        if let Some(link) = self.live() {
            return Ok(link);
        }
        let now = Instant::now();
        if let Some(at) = backoff.not_before
            && now < at
        {
            return Err(QueueError::Unavailable(format!(
                "RabbitMQ connection {:?} is down, next attempt in {} ms: {}",
                self.name,
                (at - now).as_millis(),
                backoff.last_error
            )));
        }
        let props = ConnectionProperties::default().with_connection_name(self.name.clone().into());
        let connect = Connection::connect_uri(self.uri.clone(), props);
        let error = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(connection)) => {
                *backoff = Backoff::default();
                let link = Arc::new(Link::new(connection));
                *self.current.lock().expect("link slot lock") = Some(link.clone());
                tracing::info!(connection = %self.name, "connected to RabbitMQ");
                return Ok(link);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {CONNECT_TIMEOUT:?}"),
        };
        tracing::warn!(
            connection = %self.name,
            error = %error,
            retry_in_ms = backoff.delay.as_millis() as u64,
            "RabbitMQ connect failed"
        );
        backoff.not_before = Some(now + backoff.delay);
        backoff.delay = (backoff.delay * 2).min(MAX_BACKOFF);
        backoff.last_error = error.clone();
        Err(unavailable("connect", error))
    }

    fn live(&self) -> Option<Arc<Link>> {
        let current = self.current.lock().expect("link slot lock");
        current
            .as_ref()
            .filter(|l| l.connection.status().connected())
            .cloned()
    }

    /// Closes the connection (on shutdown); a later use reconnects.
    pub async fn close(&self) {
        let link = self.current.lock().expect("link slot lock").take();
        if let Some(link) = link {
            let _ = link.connection.close(200, "shutdown".into()).await;
        }
    }
}

/// One live connection and what has been set up on it.
pub struct Link {
    connection: Connection,
    /// Declares and counts; recreated when an error closed it.
    admin: tokio::sync::Mutex<Option<Channel>>,
    /// Confirm-mode channels between batches.
    idle: Mutex<Vec<Channel>>,
    publishers: Semaphore,
    /// Broker queue names declared on this connection.
    declared: Mutex<HashSet<String>>,
}

impl Link {
    fn new(connection: Connection) -> Link {
        Link {
            connection,
            admin: tokio::sync::Mutex::new(None),
            idle: Mutex::new(Vec::new()),
            publishers: Semaphore::new(MAX_PUBLISHERS),
            declared: Mutex::new(HashSet::new()),
        }
    }

    /// The broker is refusing publishes (a memory or disk alarm); they would hang, not fail.
    pub fn blocked(&self) -> bool {
        self.connection.status().blocked()
    }

    pub async fn channel(&self) -> Result<Channel, QueueError> {
        self.connection
            .create_channel()
            .await
            .map_err(|e| unavailable("open channel", e))
    }

    /// Declares `name` unless this connection already did.
    pub async fn ensure(
        &self,
        name: &str,
        args: impl FnOnce() -> FieldTable,
    ) -> Result<(), QueueError> {
        if self.declared.lock().expect("declared lock").contains(name) {
            return Ok(());
        }
        self.declare(name, args()).await.map(|_| ())
    }

    /// Declares `name` (a no-op if it exists with these arguments) and returns how many messages
    /// are ready in it. A full declare rather than a passive one, because a passive declare of a
    /// missing queue closes the channel instead of answering.
    pub async fn declare(&self, name: &str, args: FieldTable) -> Result<u64, QueueError> {
        let queue = short(name)?;
        let mut admin = self.admin.lock().await;
        let channel = match admin.as_ref().filter(|c| c.status().connected()) {
            Some(c) => c.clone(),
            None => {
                let c = self.channel().await?;
                *admin = Some(c.clone());
                c
            }
        };
        match channel
            .queue_declare(queue, QueueDeclareOptions::durable(), args)
            .await
        {
            Ok(q) => {
                self.declared
                    .lock()
                    .expect("declared lock")
                    .insert(name.to_owned());
                Ok(u64::from(q.message_count()))
            }
            Err(e) => {
                *admin = None;
                Err(unavailable(&format!("declare {name}"), e))
            }
        }
    }

    /// Forgets a declaration, after the broker showed the queue is gone.
    pub fn forget(&self, name: &str) {
        self.declared.lock().expect("declared lock").remove(name);
    }

    /// A confirm-mode channel for one batch, for it alone: lapin matches a `basic.return` to
    /// whichever confirm comes next on the channel, so sharing one between concurrent batches
    /// could blame one batch for another's unroutable message.
    pub async fn publisher(&self) -> Result<Publisher<'_>, QueueError> {
        let permit = self
            .publishers
            .acquire()
            .await
            .map_err(|e| unavailable("publish", e))?;
        let reused = {
            let mut idle = self.idle.lock().expect("idle channels lock");
            idle.retain(|c| c.status().connected());
            idle.pop()
        };
        let channel = match reused {
            Some(c) => c,
            None => {
                let c = self.channel().await?;
                c.confirm_select(ConfirmSelectOptions::default())
                    .await
                    .map_err(|e| unavailable("confirm.select", e))?;
                c
            }
        };
        Ok(Publisher {
            link: self,
            channel: Some(channel),
            _permit: permit,
        })
    }
}

/// A publishing channel checked out of its link. Dropped without [`Publisher::release`] (an error,
/// or the caller gave up waiting) it is closed, so nothing left pending on it reaches a later
/// batch.
pub struct Publisher<'a> {
    link: &'a Link,
    channel: Option<Channel>,
    _permit: SemaphorePermit<'a>,
}

impl Publisher<'_> {
    pub fn channel(&self) -> &Channel {
        self.channel
            .as_ref()
            .expect("publisher channel present until release")
    }

    /// Back to the pool, after a batch whose every confirm came back positive.
    pub fn release(mut self) {
        if let Some(c) = self.channel.take()
            && c.status().connected()
        {
            self.link.idle.lock().expect("idle channels lock").push(c);
        }
    }
}
