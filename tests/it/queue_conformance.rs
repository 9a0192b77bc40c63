//! One Queue suite, run against the local SQLite queue and RabbitMQ.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use wagate::adapters::rabbitmq::{RabbitOptions, RabbitQueue};
use wagate::adapters::sqlite::{LocalQueue, SqliteDb};
use wagate::ports::{Delivery, Outgoing, Queue};

/// A queue under test, and whatever must live as long as it (a temp dir).
pub struct Subject {
    pub queue: Arc<dyn Queue>,
    pub _guard: Box<dyn std::any::Any + Send>,
}

/// Redeliveries of unacked messages in these tests happen after this long (local queue's
/// visibility timeout; RabbitMQ redelivers when the consumer's channel closes).
pub const VISIBILITY: Duration = Duration::from_millis(300);
pub const MAX_ATTEMPTS: u32 = 3;

pub async fn local() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    let db = SqliteDb::open(&url, false).await.unwrap();
    Subject {
        queue: Arc::new(LocalQueue::new(db, VISIBILITY, MAX_ATTEMPTS)),
        _guard: Box::new(dir),
    }
}

/// A RabbitMQ queue under a fresh prefix, whose queues expire a minute after the test.
pub async fn rabbitmq() -> Option<Subject> {
    let url = crate::support::amqp_url().await?;
    let prefix = crate::support::unique("t");
    let options = RabbitOptions {
        connection_name: format!("wagate-test {prefix}"),
        prefix,
        max_attempts: MAX_ATTEMPTS,
        queue_expires: Some(Duration::from_secs(60)),
    };
    let queue = RabbitQueue::connect(&url, options).await.unwrap();
    Some(Subject {
        queue: Arc::new(queue),
        _guard: Box::new(()),
    })
}

macro_rules! queue_suite {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(#[tokio::test]
            async fn $case() {
                let Some(subject) = super::subject(stringify!($backend)).await else { return };
                super::$case(subject.queue.clone()).await;
            })*
        }
    };
}

async fn subject(backend: &str) -> Option<Subject> {
    match backend {
        "local" => Some(local().await),
        "rabbitmq" => rabbitmq().await,
        other => panic!("unknown backend {other}"),
    }
}

macro_rules! all_cases {
    ($backend:ident) => {
        queue_suite!($backend:
            publish_receive_ack,
            higher_priority_first,
            unacked_is_redelivered,
            retry_waits_its_delay,
            delayed_publish,
            dead_letter_and_redrive,
            repeated_crashes_park_the_message,
            retries_past_max_attempts_are_parked,
            queues_are_separate,
            two_consumers_share_without_duplicates,
            oldest_ready_is_how_long_the_head_has_waited,
        );
    };
}

all_cases!(local);
all_cases!(rabbitmq);

fn msg(body: &str, priority: u8) -> Outgoing {
    Outgoing::new(body.as_bytes().to_vec(), priority)
}

fn bodies(ds: &[Delivery]) -> Vec<String> {
    ds.iter()
        .map(|d| String::from_utf8(d.payload.to_vec()).unwrap())
        .collect()
}

const SHORT: Option<Duration> = Some(Duration::from_millis(100));

/// Receives until `n` deliveries arrived or the wait ran out.
async fn receive_n(c: &mut Box<dyn wagate::ports::Consumer>, n: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < n && tokio::time::Instant::now() < deadline {
        got.extend(
            c.receive(n - got.len(), Some(Duration::from_secs(1)))
                .await
                .unwrap(),
        );
    }
    got
}

async fn publish_receive_ack(q: Arc<dyn Queue>) {
    q.publish(
        "q1",
        &[msg("a", 0), msg("b", 0), msg("\u{0}binary\u{fffd}", 0)],
    )
    .await
    .unwrap();
    let mut c = q.consumer("q1", 10).await.unwrap();
    let got = receive_n(&mut c, 3).await;
    assert_eq!(bodies(&got), ["a", "b", "\u{0}binary\u{fffd}"]);
    assert!(got.iter().all(|d| d.attempt == 1));
    c.ack(&got.iter().map(|d| d.id).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(c.receive(10, SHORT).await.unwrap().is_empty());
    drop(c);
    let mut c = q.consumer("q1", 10).await.unwrap();
    assert!(
        c.receive(10, Some(VISIBILITY * 2))
            .await
            .unwrap()
            .is_empty(),
        "acked is gone for good"
    );
    assert_eq!(q.depth("q1").await.unwrap(), 0);
}

async fn higher_priority_first(q: Arc<dyn Queue>) {
    q.publish("q1", &[msg("low1", 0), msg("low2", 0), msg("high", 5)])
        .await
        .unwrap();
    q.publish("q1", &[msg("higher", 9)]).await.unwrap();
    let mut c = q.consumer("q1", 1).await.unwrap();
    let first = receive_n(&mut c, 1).await;
    assert_eq!(bodies(&first), ["higher"]);
    c.ack(&[first[0].id]).await.unwrap();
    let second = receive_n(&mut c, 1).await;
    assert_eq!(bodies(&second), ["high"]);
}

async fn unacked_is_redelivered(q: Arc<dyn Queue>) {
    q.publish("q1", &[msg("x", 0)]).await.unwrap();
    let mut c = q.consumer("q1", 10).await.unwrap();
    let got = receive_n(&mut c, 1).await;
    assert_eq!(got[0].attempt, 1);
    drop(c); // a consumer that dies without acking
    let mut c = q.consumer("q1", 10).await.unwrap();
    let again = receive_n(&mut c, 1).await;
    assert_eq!(bodies(&again), ["x"]);
    assert_eq!(again[0].attempt, 2);
    c.ack(&[again[0].id]).await.unwrap();
}

async fn retry_waits_its_delay(q: Arc<dyn Queue>) {
    q.publish("q1", &[msg("r", 0)]).await.unwrap();
    let mut c = q.consumer("q1", 10).await.unwrap();
    let got = receive_n(&mut c, 1).await;
    c.retry(&got[0], Duration::from_millis(1500)).await.unwrap();
    let started = std::time::Instant::now();
    let again = receive_n(&mut c, 1).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "came back after {:?}",
        started.elapsed()
    );
    assert_eq!(bodies(&again), ["r"]);
    assert_eq!(again[0].attempt, 2);
    c.ack(&[again[0].id]).await.unwrap();
}

async fn delayed_publish(q: Arc<dyn Queue>) {
    let mut m = msg("later", 0);
    m.delay = Duration::from_millis(1500);
    q.publish("q1", &[m, msg("now", 0)]).await.unwrap();
    let mut c = q.consumer("q1", 10).await.unwrap();
    let first = receive_n(&mut c, 1).await;
    assert_eq!(bodies(&first), ["now"]);
    c.ack(&[first[0].id]).await.unwrap();
    let started = std::time::Instant::now();
    let later = receive_n(&mut c, 1).await;
    assert_eq!(bodies(&later), ["later"]);
    assert!(started.elapsed() >= Duration::from_millis(800));
    c.ack(&[later[0].id]).await.unwrap();
}

/// The queue-age gauge's reading: zero when nothing is ready (a delayed message is not), at least
/// what the head has waited and growing with the clock while nobody takes it, never more than
/// the time since the queue was last seen empty (RabbitMQ's bound), zero again once drained.
async fn oldest_ready_is_how_long_the_head_has_waited(q: Arc<dyn Queue>) {
    let before = std::time::Instant::now();
    assert_eq!(q.oldest_ready("q1").await.unwrap(), Some(Duration::ZERO));
    let mut later = msg("later", 0);
    later.delay = Duration::from_secs(60);
    q.publish("q1", &[later]).await.unwrap();
    assert_eq!(
        q.oldest_ready("q1").await.unwrap(),
        Some(Duration::ZERO),
        "a delayed message is not ready"
    );
    q.publish("q1", &[msg("a", 0), msg("b", 0)]).await.unwrap();
    // Ages are wall-clock time since publishing, so this test waits for real.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let first = q.oldest_ready("q1").await.unwrap().expect("bounded");
    // Stamps are whole milliseconds, read on both sides of the call.
    let slack = Duration::from_millis(5);
    assert!(
        first + slack >= Duration::from_millis(600) && first <= before.elapsed() + slack,
        "{first:?} after waiting 600 ms"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = q.oldest_ready("q1").await.unwrap().expect("bounded");
    assert!(
        second >= first + Duration::from_millis(300) - slack,
        "{first:?} then {second:?}: an untaken head ages with the clock"
    );
    let mut c = q.consumer("q1", 10).await.unwrap();
    let got = receive_n(&mut c, 2).await;
    assert_eq!(bodies(&got), ["a", "b"]);
    c.ack(&got.iter().map(|d| d.id).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(q.oldest_ready("q1").await.unwrap(), Some(Duration::ZERO));
}

async fn dead_letter_and_redrive(q: Arc<dyn Queue>) {
    q.publish("q1", &[msg("poison", 0), msg("fine", 0)])
        .await
        .unwrap();
    let mut c = q.consumer("q1", 10).await.unwrap();
    let got = receive_n(&mut c, 2).await;
    let poison = got.iter().find(|d| &d.payload[..] == b"poison").unwrap();
    let fine = got.iter().find(|d| &d.payload[..] == b"fine").unwrap();
    c.dead_letter(poison, "cannot parse").await.unwrap();
    c.ack(&[fine.id]).await.unwrap();
    assert_eq!(q.dead_count("q1").await.unwrap(), 1);
    assert!(
        c.receive(10, Some(VISIBILITY * 2))
            .await
            .unwrap()
            .is_empty(),
        "parked, not redelivered"
    );
    assert_eq!(q.redrive("q1", 100).await.unwrap(), 1);
    assert_eq!(q.dead_count("q1").await.unwrap(), 0);
    let back = receive_n(&mut c, 1).await;
    assert_eq!(bodies(&back), ["poison"]);
    c.ack(&[back[0].id]).await.unwrap();
}

/// A message whose consumer keeps dying is parked after MAX_ATTEMPTS deliveries rather than
/// blocking the queue forever.
async fn repeated_crashes_park_the_message(q: Arc<dyn Queue>) {
    q.publish("q1", &[msg("crashy", 0)]).await.unwrap();
    for attempt in 1..=MAX_ATTEMPTS {
        let mut c = q.consumer("q1", 10).await.unwrap();
        let got = receive_n(&mut c, 1).await;
        assert_eq!(got.len(), 1, "attempt {attempt}");
        assert_eq!(got[0].attempt, attempt);
    }
    let mut c = q.consumer("q1", 10).await.unwrap();
    assert!(
        c.receive(10, Some(VISIBILITY * 3))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(q.dead_count("q1").await.unwrap(), 1);
}

/// Retries count toward the same limit as crashes: the delivery that would be attempt
/// MAX_ATTEMPTS + 1 is parked instead.
async fn retries_past_max_attempts_are_parked(q: Arc<dyn Queue>) {
    q.publish("q1", &[msg("flaky", 0)]).await.unwrap();
    let mut c = q.consumer("q1", 10).await.unwrap();
    for attempt in 1..=MAX_ATTEMPTS {
        let got = receive_n(&mut c, 1).await;
        assert_eq!(got.len(), 1, "attempt {attempt}");
        assert_eq!(got[0].attempt, attempt);
        c.retry(&got[0], Duration::ZERO).await.unwrap();
    }
    assert!(
        c.receive(10, Some(VISIBILITY * 2))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(q.dead_count("q1").await.unwrap(), 1);
    assert_eq!(q.redrive("q1", 10).await.unwrap(), 1);
    let back = receive_n(&mut c, 1).await;
    assert_eq!(bodies(&back), ["flaky"]);
    assert_eq!(
        back[0].attempt, 1,
        "a redriven message starts counting again"
    );
    c.ack(&[back[0].id]).await.unwrap();
}

async fn queues_are_separate(q: Arc<dyn Queue>) {
    q.publish("qa", &[msg("for-a", 0)]).await.unwrap();
    let mut b = q.consumer("qb", 10).await.unwrap();
    assert!(b.receive(10, SHORT).await.unwrap().is_empty());
    let mut a = q.consumer("qa", 10).await.unwrap();
    assert_eq!(bodies(&receive_n(&mut a, 1).await), ["for-a"]);
}

async fn two_consumers_share_without_duplicates(q: Arc<dyn Queue>) {
    let n = 600;
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let batch: Vec<_> = chunk.iter().map(|i| msg(&i.to_string(), 0)).collect();
        q.publish("q1", &batch).await.unwrap();
    }
    let mut handles = Vec::new();
    for _ in 0..2 {
        let q = q.clone();
        handles.push(tokio::spawn(async move {
            let mut c = q.consumer("q1", 50).await.unwrap();
            let mut seen = Vec::new();
            loop {
                let got = c
                    .receive(50, Some(Duration::from_millis(700)))
                    .await
                    .unwrap();
                if got.is_empty() {
                    return seen;
                }
                c.ack(&got.iter().map(|d| d.id).collect::<Vec<_>>())
                    .await
                    .unwrap();
                seen.extend(bodies(&got));
            }
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let distinct: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), n, "each message delivered once");
    assert_eq!(distinct.len(), n);
}

/// The embedded queue's start-up recovery: claims left by a crashed process are released at
/// once, delayed retries are not.
#[tokio::test]
async fn local_release_claims_frees_held_jobs_only() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    let db = SqliteDb::open(&url, false).await.unwrap();
    let q = LocalQueue::new(db, Duration::from_secs(3600), 5);
    q.publish("q1", &[msg("held", 0), msg("retried", 0)])
        .await
        .unwrap();
    let mut c = q.consumer("q1", 10).await.unwrap();
    let got = receive_n(&mut c, 2).await;
    let retried = got.iter().find(|d| &d.payload[..] == b"retried").unwrap();
    c.retry(retried, Duration::from_secs(3600)).await.unwrap();
    drop(c);
    assert_eq!(q.release_claims().await.unwrap(), 1);
    let mut c = q.consumer("q1", 10).await.unwrap();
    let again = c
        .receive(10, Some(Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(bodies(&again), ["held"]);
    assert_eq!(again[0].attempt, 2);
}

/// The embedded queue's holder rule: once a job's visibility timeout ran out and another
/// consumer claimed it, the first consumer's ack, retry and dead-letter change nothing; the new
/// holder's ack still works. (RabbitMQ delivery tags belong to their channel, so a stale
/// consumer there cannot touch another's delivery in the first place.)
#[tokio::test]
async fn local_only_the_current_holder_acks_or_reschedules() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    let db = SqliteDb::open(&url, false).await.unwrap();
    // Long enough that the holder's job cannot time out again while the stale consumer acts.
    let q = LocalQueue::new(db, Duration::from_secs(1), 5);
    q.publish("q1", &[msg("job", 0)]).await.unwrap();
    let mut stale = q.consumer("q1", 10).await.unwrap();
    let first = receive_n(&mut stale, 1).await;
    assert_eq!(first[0].attempt, 1);
    // The receive waits out the stale consumer's visibility timeout.
    let mut holder = q.consumer("q1", 10).await.unwrap();
    let second = receive_n(&mut holder, 1).await;
    assert_eq!(bodies(&second), ["job"]);
    assert_eq!(second[0].attempt, 2);

    stale.ack(&[first[0].id]).await.unwrap();
    stale.retry(&first[0], Duration::ZERO).await.unwrap();
    stale.dead_letter(&first[0], "stale").await.unwrap();
    assert_eq!(
        q.dead_count("q1").await.unwrap(),
        0,
        "stale dead-letter ignored"
    );
    assert_eq!(q.depth("q1").await.unwrap(), 1, "stale ack ignored");
    assert!(
        holder.receive(10, SHORT).await.unwrap().is_empty(),
        "stale retry did not make the held job visible again"
    );

    holder.ack(&[second[0].id]).await.unwrap();
    assert_eq!(
        q.depth("q1").await.unwrap(),
        0,
        "the holder's ack deletes it"
    );
}
