//! Store suite, continued: raw payloads are emptied past their retention; history stays.

use std::sync::Arc;

use wagate::domain::project::ProjectId;
use wagate::domain::status::Status;
use wagate::domain::time::Timestamp;
use wagate::ports::Store;

use super::{apply, create};
use crate::support::events::{self, BUSINESS, incoming};

pub async fn raw_payloads_are_pruned_and_history_stays(store: Arc<dyn Store>) {
    create(&*store, "p", &[BUSINESS]).await.unwrap();
    let old = [Status::Sent, Status::Delivered, Status::Read]
        .map(|s| incoming("p", events::status("old", s, 1), 1_000));
    apply(&*store, &old).await;
    apply(
        &*store,
        &[incoming("p", events::inbound("in-old", 1), 1_000)],
    )
    .await;
    let recent =
        [Status::Sent, Status::Read].map(|s| incoming("p", events::status("new", s, 1), 9_000));
    apply(&*store, &recent).await;

    let cutoff = Timestamp::from_millis(5_000);
    // Two rows per table per call: 2 history + 1 inbound, then the last history row, then none.
    assert_eq!(store.prune_raw(cutoff, 2).await.unwrap(), 3);
    assert_eq!(store.prune_raw(cutoff, 2).await.unwrap(), 1);
    assert_eq!(
        store.prune_raw(cutoff, 2).await.unwrap(),
        0,
        "nothing older is left"
    );

    let p = ProjectId::parse("p").unwrap();
    let m = store.message(&p, "old").await.unwrap().unwrap();
    assert_eq!(m.events.len(), 3, "the history stays");
    assert_eq!(m.status, Status::Read);
    assert_eq!(store.inbound(&p, None, 10).await.unwrap().len(), 1);
    // The recent payloads were untouched, and go with a later cutoff.
    assert_eq!(
        store
            .prune_raw(Timestamp::from_millis(10_000), 10)
            .await
            .unwrap(),
        2
    );
}
