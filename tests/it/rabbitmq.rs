//! What only the RabbitMQ queue has to prove: it survives the broker dropping its connections or
//! deleting its queue, delays are never short, a dropped consumer's unseen prefetch is not
//! counted as an attempt; plus an ignored benchmark that prints throughput.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wagate::adapters::rabbitmq::{RabbitOptions, RabbitQueue};
use wagate::ports::{Consumer, Delivery, Outgoing, Queue, QueueError};

use crate::support;
use crate::support::proxy::Proxy;

struct Broker {
    queue: RabbitQueue,
    prefix: String,
    connection_name: String,
}

async fn broker(max_attempts: u32) -> Option<Broker> {
    let url = support::amqp_url().await?;
    let prefix = support::unique("t");
    let connection_name = format!("wagate-test {prefix}");
    let options = RabbitOptions {
        prefix: prefix.clone(),
        max_attempts,
        queue_expires: Some(Duration::from_secs(60)),
        connection_name: connection_name.clone(),
    };
    let queue = RabbitQueue::connect(&url, options).await.unwrap();
    Some(Broker {
        queue,
        prefix,
        connection_name,
    })
}

pub(crate) async fn rabbitmqctl(args: &[&str]) -> String {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .await
        .expect("run rabbitmqctl");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Closes, from the broker's side, every connection whose client-provided name starts with
/// `name`; returns how many. Waits (up to 10 s) for them to be listed first.
async fn kill_connections(name: &str) -> usize {
    // 3.10 lists the client-provided name only inside `client_properties`.
    let needle = format!("{{\"connection_name\",\"{name}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listing = rabbitmqctl(&[
            "list_connections",
            "-q",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .await;
        let pids: Vec<&str> = listing
            .lines()
            .filter(|l| l.contains(&needle))
            .filter_map(|l| l.split_once('\t'))
            .map(|(pid, _)| pid.trim())
            .collect();
        if !pids.is_empty() {
            for pid in &pids {
                rabbitmqctl(&["close_connection", pid, "test kills the connection"]).await;
            }
            return pids.len();
        }
        assert!(
            Instant::now() < deadline,
            "no connection named {name:?} listed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn msgs(tag: &str, n: usize) -> Vec<Outgoing> {
    (0..n)
        .map(|i| Outgoing::new(format!("{tag}-{i}").into_bytes(), 0))
        .collect()
}

fn body(d: &Delivery) -> String {
    String::from_utf8(d.payload.to_vec()).unwrap()
}

/// Publishes, retrying `Unavailable` for up to 30 s; returns how long it took.
async fn publish_until_ok(q: &RabbitQueue, queue: &str, batch: &[Outgoing]) -> Duration {
    let started = Instant::now();
    loop {
        match q.publish(queue, batch).await {
            Ok(()) => return started.elapsed(),
            Err(QueueError::Unavailable(e)) if started.elapsed() < Duration::from_secs(30) => {
                eprintln!("publish failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("publish did not recover within 30 s: {e}"),
        }
    }
}

/// Receives and acks until every body in `want` was seen, tolerating `Unavailable` while the
/// consumer recovers; fails after 30 s.
async fn drain_until(c: &mut Box<dyn Consumer>, want: &BTreeSet<String>) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = BTreeSet::new();
    while !want.is_subset(&seen) {
        assert!(
            Instant::now() < deadline,
            "missing after 30 s: {:?}",
            want.difference(&seen).collect::<Vec<_>>()
        );
        match c.receive(100, Some(Duration::from_millis(500))).await {
            Ok(got) => {
                c.ack(&got.iter().map(|d| d.id).collect::<Vec<_>>())
                    .await
                    .unwrap();
                seen.extend(got.iter().map(body));
            }
            Err(QueueError::Unavailable(e)) => {
                eprintln!("receive failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    seen
}

#[tokio::test]
async fn publish_and_consume_survive_killed_connections() {
    let Some(b) = broker(5).await else { return };
    let q = &b.queue;
    let before = msgs("before", 50);
    q.publish("jobs", &before).await.unwrap();
    let mut c = q.consumer("jobs", 100).await.unwrap();
    let held = c.receive(10, Some(Duration::from_secs(5))).await.unwrap();
    assert!(!held.is_empty());

    assert_eq!(kill_connections(&b.connection_name).await, 2);

    // Deliveries from the dead channel: acking them is harmless, and they come back.
    c.ack(&held.iter().map(|d| d.id).collect::<Vec<_>>())
        .await
        .unwrap();
    let after = msgs("after", 50);
    let took = publish_until_ok(q, "jobs", &after).await;
    eprintln!("publish recovered after {took:?}");
    let want: BTreeSet<String> = before
        .iter()
        .chain(&after)
        .map(|m| String::from_utf8(m.payload.clone()).unwrap())
        .collect();
    let seen = drain_until(&mut c, &want).await;
    assert!(held.iter().all(|d| seen.contains(&body(d))));
    q.ping().await.unwrap();
}

#[tokio::test]
async fn a_receive_in_progress_rides_out_the_kill() {
    let Some(b) = broker(5).await else { return };
    let q = Arc::new(b.queue.clone());
    let mut c = q.consumer("jobs", 50).await.unwrap();
    let waiting = tokio::spawn(async move {
        // Started before the kill; resubscribes inside and returns what is published after.
        let r = c.receive(10, Some(Duration::from_secs(25))).await;
        (c, r)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(kill_connections(&b.connection_name).await, 2);
    let after = msgs("after", 5);
    publish_until_ok(&q, "jobs", &after).await;
    let (mut c, first) = waiting.await.unwrap();
    let mut want: BTreeSet<String> = after
        .iter()
        .map(|m| String::from_utf8(m.payload.clone()).unwrap())
        .collect();
    match first {
        Ok(got) => {
            assert!(!got.is_empty(), "the receive in progress timed out empty");
            c.ack(&got.iter().map(|d| d.id).collect::<Vec<_>>())
                .await
                .unwrap();
            for d in &got {
                want.remove(&body(d));
            }
        }
        // Allowed by the contract (the broker was unreachable at the moment of resubscribing),
        // but then the next call must recover.
        Err(QueueError::Unavailable(e)) => eprintln!("receive in progress failed: {e}"),
        Err(e) => panic!("{e}"),
    }
    drain_until(&mut c, &want).await;
}

/// The broker's port refuses connections for a while (as during a restart): calls fail fast
/// with `Unavailable` meanwhile, and both publishing and a consumer made before recover after.
#[tokio::test]
async fn a_broker_outage_fails_fast_and_recovers() {
    let Some(url) = support::amqp_url().await else {
        return;
    };
    let uri: lapin::uri::AMQPUri = url.parse().unwrap();
    let (host, port) = (uri.authority.host.clone(), uri.authority.port);
    let upstream = tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let mut proxy = Proxy::start(upstream).await;
    let proxied = url.replacen(&format!("{host}:{port}"), &proxy.addr().to_string(), 1);
    assert_ne!(proxied, url, "the test URL names its port");
    let options = RabbitOptions {
        prefix: support::unique("t"),
        max_attempts: 5,
        queue_expires: Some(Duration::from_secs(60)),
        connection_name: support::unique("wagate-test-outage "),
    };
    let q = RabbitQueue::connect(&proxied, options).await.unwrap();
    let before = msgs("before", 20);
    q.publish("jobs", &before).await.unwrap();
    let mut c = q.consumer("jobs", 50).await.unwrap();

    proxy.down();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let started = Instant::now();
        let r = q.publish("jobs", &msgs("lost", 1)).await;
        assert!(matches!(r, Err(QueueError::Unavailable(_))), "{r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "took {:?}",
            started.elapsed()
        );
    }
    assert!(q.ping().await.is_err());
    let started = Instant::now();
    let r = c.receive(10, Some(Duration::from_secs(2))).await;
    eprintln!(
        "receive during the outage: {r:?} after {:?}",
        started.elapsed()
    );
    assert!(!matches!(r, Ok(ref got) if !got.is_empty()));

    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.up().await;
    let after = msgs("after", 20);
    let took = publish_until_ok(&q, "jobs", &after).await;
    eprintln!("publish recovered {took:?} after the broker came back");
    assert!(took < Duration::from_secs(10));
    let want: BTreeSet<String> = before
        .iter()
        .chain(&after)
        .map(|m| String::from_utf8(m.payload.clone()).unwrap())
        .collect();
    drain_until(&mut c, &want).await;
    q.ping().await.unwrap();
}

#[tokio::test]
async fn a_deleted_queue_is_redeclared_and_reconsumed() {
    let Some(b) = broker(5).await else { return };
    let q = &b.queue;
    q.publish("jobs", &msgs("one", 1)).await.unwrap();
    let mut c = q.consumer("jobs", 10).await.unwrap();
    let got = c.receive(1, Some(Duration::from_secs(5))).await.unwrap();
    c.ack(&[got[0].id]).await.unwrap();

    rabbitmqctl(&["delete_queue", &format!("{}.jobs", b.prefix)]).await;

    // The first publish may find the queue gone (returned, so `Unavailable`); the next declares
    // it again.
    publish_until_ok(q, "jobs", &msgs("two", 3)).await;
    let want = ["two-0", "two-1", "two-2"].map(String::from).into();
    drain_until(&mut c, &want).await;
}

#[tokio::test]
async fn delays_are_never_short() {
    let Some(b) = broker(5).await else { return };
    let q = &b.queue;
    let delays = [150u64, 700, 1200, 2300];
    let batch: Vec<Outgoing> = delays
        .iter()
        .map(|ms| {
            let mut m = Outgoing::new(ms.to_string().into_bytes(), 0);
            m.delay = Duration::from_millis(*ms);
            m
        })
        .collect();
    let mut c = q.consumer("later", 10).await.unwrap();
    let started = Instant::now();
    q.publish("later", &batch).await.unwrap();
    let mut left = delays.len();
    while left > 0 {
        let got = c.receive(10, Some(Duration::from_secs(5))).await.unwrap();
        assert!(!got.is_empty(), "{left} delayed messages never came");
        let at = started.elapsed();
        for d in &got {
            let due = Duration::from_millis(body(d).parse().unwrap());
            eprintln!("due {due:?}, came at {at:?}");
            assert!(at >= due, "due {due:?}, came early at {at:?}");
            assert!(
                at < due + Duration::from_secs(1),
                "due {due:?}, came at {at:?}"
            );
            assert_eq!(d.attempt, 1);
        }
        c.ack(&got.iter().map(|d| d.id).collect::<Vec<_>>())
            .await
            .unwrap();
        left -= got.len();
    }
}

#[tokio::test]
async fn unseen_prefetch_of_a_dropped_consumer_is_not_an_attempt() {
    let Some(b) = broker(5).await else { return };
    let q = &b.queue;
    q.publish("jobs", &msgs("m", 10)).await.unwrap();
    let mut c = q.consumer("jobs", 10).await.unwrap();
    // Let the whole prefetch window arrive, then take one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = c.receive(1, Some(Duration::from_secs(5))).await.unwrap();
    assert_eq!(seen.len(), 1);
    drop(c);
    let mut c = q.consumer("jobs", 10).await.unwrap();
    let mut all = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while all.len() < 10 && Instant::now() < deadline {
        all.extend(c.receive(10, Some(Duration::from_secs(1))).await.unwrap());
    }
    assert_eq!(all.len(), 10, "each message once");
    for d in &all {
        let expected = if body(d) == body(&seen[0]) { 2 } else { 1 };
        assert_eq!(d.attempt, expected, "{}", body(d));
    }
}

#[tokio::test]
async fn out_of_order_acks_leave_nothing_behind() {
    let Some(b) = broker(5).await else { return };
    let q = &b.queue;
    q.publish("jobs", &msgs("m", 20)).await.unwrap();
    let mut c = q.consumer("jobs", 20).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 20 {
        got.extend(c.receive(20, Some(Duration::from_secs(5))).await.unwrap());
    }
    // Odd positions first (no contiguous run from the bottom), then the rest, one twice.
    let (odd, even): (Vec<_>, Vec<_>) = got.iter().enumerate().partition(|(i, _)| i % 2 == 1);
    c.ack(&odd.iter().map(|(_, d)| d.id).collect::<Vec<_>>())
        .await
        .unwrap();
    c.retry(even[0].1, Duration::ZERO).await.unwrap();
    c.ack(&even.iter().map(|(_, d)| d.id).collect::<Vec<_>>())
        .await
        .unwrap();
    let back = c.receive(20, Some(Duration::from_secs(2))).await.unwrap();
    assert_eq!(back.iter().map(body).collect::<Vec<_>>(), [body(even[0].1)]);
    assert_eq!(back[0].attempt, 2);
    c.ack(&[back[0].id]).await.unwrap();
    drop(c);
    let mut c = q.consumer("jobs", 20).await.unwrap();
    assert!(
        c.receive(20, Some(Duration::from_millis(500)))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(q.depth("jobs").await.unwrap(), 0);
}

/// Prints publish and consume rates for 20,000 messages of ~2 KB:
/// `cargo test --release --test it rabbitmq::throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints numbers, asserts only that nothing was lost"]
async fn throughput() {
    let Some(b) = broker(5).await else { return };
    let q = Arc::new(b.queue.clone());
    const TOTAL: usize = 20_000;
    const PUBLISHERS: usize = 8;
    const BATCH: usize = 100;
    let filler = "x".repeat(2_000);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let q = q.clone();
        let filler = filler.clone();
        tasks.push(tokio::spawn(async move {
            for b in 0..TOTAL / PUBLISHERS / BATCH {
                let batch: Vec<Outgoing> = (0..BATCH)
                    .map(|i| Outgoing::new(format!("{p}-{b}-{i}-{filler}").into_bytes(), 0))
                    .collect();
                q.publish("bench", &batch).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let publish = started.elapsed();
    eprintln!(
        "publish: {TOTAL} x 2 KB, {PUBLISHERS} publishers, batches of {BATCH}: {:?}, {:.0} msg/s",
        publish,
        TOTAL as f64 / publish.as_secs_f64()
    );

    let mut c = q.consumer("bench", 200).await.unwrap();
    let started = Instant::now();
    let mut seen = BTreeSet::new();
    while seen.len() < TOTAL {
        let got = c.receive(200, Some(Duration::from_secs(5))).await.unwrap();
        assert!(!got.is_empty(), "stalled at {}", seen.len());
        c.ack(&got.iter().map(|d| d.id).collect::<Vec<_>>())
            .await
            .unwrap();
        for d in got {
            seen.insert(d.payload.slice(..d.payload.len() - filler.len()));
        }
    }
    let consume = started.elapsed();
    eprintln!(
        "consume: prefetch 200, one consumer, ack per receive: {:?}, {:.0} msg/s",
        consume,
        TOTAL as f64 / consume.as_secs_f64()
    );
    assert_eq!(seen.len(), TOTAL);
}
