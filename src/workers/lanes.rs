//! In-flight places per endpoint and per host: how the forwarder keeps one slow receiver
//! from holding the places (and queue messages) that healthy ones need.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How far to defer a delivery whose endpoint stayed full through the lane wait: twice the
/// time since the endpoint last gave a place back, within [`MIN_BUSY_DEFER`] and `most`. A
/// slow but working endpoint (its requests take 200 ms) frees places all the time, so its
/// excess comes back in a fraction of a second; a hanging one frees none until its requests
/// time out, so its backlog is not read, queued and deferred again every second. (A fixed 5 s
/// starved the first kind: 20 requests per 5 s to a 200 ms endpoint; a fixed 1 s churned
/// through ~30,000 deferrals in 40 s for the second at 5,000 events/s.)
pub fn busy_defer(since_freed: Duration, most: Duration) -> Duration {
    (since_freed * 2).clamp(MIN_BUSY_DEFER, most.max(MIN_BUSY_DEFER))
}

pub const MIN_BUSY_DEFER: Duration = Duration::from_millis(250);

/// An endpoint whose places are all taken and that gave none back for this long is not waited
/// for at all: its excess is deferred at once.
const STUCK_AFTER: Duration = Duration::from_secs(1);

/// In-flight places per key (an endpoint, or a host and port): a semaphore per key with
/// deliveries in flight or waiting, and when a place was last given back, dropped from the map
/// when nobody holds or awaits it.
pub struct Lanes<K> {
    cap: usize,
    map: Mutex<HashMap<K, (Arc<Semaphore>, Instant)>>,
}

/// One of a key's in-flight places, given back on drop.
pub struct Lane<'a, K: Hash + Eq + Clone> {
    lanes: &'a Lanes<K>,
    endpoint: K,
    permit: Option<OwnedSemaphorePermit>,
}

impl<K: Hash + Eq + Clone> Lanes<K> {
    pub fn new(cap: usize) -> Lanes<K> {
        Lanes {
            cap: cap.max(1),
            map: Mutex::default(),
        }
    }

    /// Waits up to `wait` for one of the endpoint's places. A healthy endpoint frees places
    /// within milliseconds, so a burst to it waits its turn; a slow one holds them for up to
    /// the request timeout, so its excess gives up here and is deferred, instead of holding
    /// its queue message (and the worker's room for messages) behind it. `Err` holds how long
    /// ago the endpoint last gave a place back: how slow it is.
    pub async fn take(&self, endpoint: &K, wait: Duration) -> Result<Lane<'_, K>, Duration> {
        let (sem, freed) = {
            let mut map = self.map.lock().expect("not poisoned");
            let (sem, freed) = map
                .entry(endpoint.clone())
                .or_insert_with(|| (Arc::new(Semaphore::new(self.cap)), Instant::now()));
            (sem.clone(), *freed)
        };
        // Every place taken and none given back for a while: the endpoint hangs, and waiting
        // for it would only hold this message (and its healthy deliveries' ack) longer.
        if sem.available_permits() == 0 && freed.elapsed() >= STUCK_AFTER {
            return Err(freed.elapsed());
        }
        match tokio::time::timeout(wait, sem.acquire_owned()).await {
            Ok(p) => Ok(Lane {
                lanes: self,
                endpoint: endpoint.clone(),
                permit: Some(p.expect("the semaphore is never closed")),
            }),
            Err(_) => {
                let since = self
                    .map
                    .lock()
                    .expect("not poisoned")
                    .get(endpoint)
                    .map_or(wait, |(_, freed)| freed.elapsed());
                self.forget_if_idle(endpoint);
                Err(since)
            }
        }
    }

    /// A permit and a waiter each hold the semaphore: held by the map alone, it is idle.
    fn forget_if_idle(&self, endpoint: &K) {
        let mut map = self.map.lock().expect("not poisoned");
        if map
            .get(endpoint)
            .is_some_and(|(s, _)| Arc::strong_count(s) == 1)
        {
            map.remove(endpoint);
        }
    }
}

impl<K: Hash + Eq + Clone> Drop for Lane<'_, K> {
    fn drop(&mut self) {
        drop(self.permit.take());
        if let Some((_, freed)) = self
            .lanes
            .map
            .lock()
            .expect("not poisoned")
            .get_mut(&self.endpoint)
        {
            *freed = Instant::now();
        }
        self.lanes.forget_if_idle(&self.endpoint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::endpoint::EndpointId;

    #[test]
    fn busy_deliveries_come_back_sooner_the_faster_their_endpoint_frees_places() {
        let most = Duration::from_secs(5);
        // A place freed 60 ms ago: a working endpoint, back soon.
        assert_eq!(busy_defer(Duration::from_millis(60), most), MIN_BUSY_DEFER);
        assert_eq!(
            busy_defer(Duration::from_millis(400), most),
            Duration::from_millis(800)
        );
        // Nothing freed for 10 s: hanging, deferred as far as allowed.
        assert_eq!(busy_defer(Duration::from_secs(10), most), most);
    }

    #[tokio::test]
    async fn a_full_lane_says_how_long_since_a_place_was_freed() {
        let lanes = Lanes::new(1);
        let e = EndpointId::generate();
        let Ok(held) = lanes.take(&e, Duration::from_millis(10)).await else {
            panic!("an empty lane has room")
        };
        let Err(since) = lanes.take(&e, Duration::from_millis(20)).await else {
            panic!("a lane of one is full while its place is held")
        };
        assert!(since >= Duration::from_millis(20), "{since:?}");
        drop(held);
        let again = lanes.take(&e, Duration::from_millis(10)).await;
        assert!(again.is_ok(), "the place was given back");
        drop(again);
        assert!(
            lanes.map.lock().unwrap().is_empty(),
            "idle lanes are forgotten"
        );
    }

    #[tokio::test]
    async fn a_lane_that_freed_nothing_for_a_while_is_not_waited_for() {
        let lanes = Lanes::new(1);
        let e = EndpointId::generate();
        let Ok(_held) = lanes.take(&e, Duration::from_millis(10)).await else {
            panic!("an empty lane has room")
        };
        let hung_since = Instant::now() - STUCK_AFTER * 2;
        lanes.map.lock().unwrap().get_mut(&e).unwrap().1 = hung_since;
        // An hour's wait is offered; a hanging endpoint's excess must give up at once.
        let taken = tokio::time::timeout(
            Duration::from_secs(5),
            lanes.take(&e, Duration::from_secs(3600)),
        )
        .await
        .expect("no wait for a hanging endpoint");
        let Err(since) = taken else {
            panic!("the lane is full")
        };
        assert!(since >= STUCK_AFTER * 2, "{since:?}");
    }
}
