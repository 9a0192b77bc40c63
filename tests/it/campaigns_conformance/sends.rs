//! The send path's conditional moves: claim, record, repair, expiry and retry-unknown, and the
//! message rows an accepted send stores.

use std::time::Duration;

use wagate::domain::campaign::{CampaignState, ReportedStatus, SendRecord, SendResult};
use wagate::domain::event::{Event, EventError};
use wagate::domain::status::Status;
use wagate::domain::time::Timestamp;
use wagate::ports::campaigns::{EchoedReference, Expired};

use super::{Ports, later, project, seeded, sent, set, status_of};
use crate::store_conformance::apply;
use crate::support::events::{self, BUSINESS, incoming};

/// A status event for `wamid` that names no campaign, phone or provider-side details of ours.
pub fn bare_status(wamid: &str, status: Status) -> Event {
    let mut e = events::status(wamid, status, 1);
    if let Event::Status(s) = &mut e {
        s.campaign_id = None;
        s.phone = None;
    }
    e
}

pub async fn claims_take_running_queued_recipients_once(ports: &Ports) {
    let c = &ports.campaigns;
    let (camp, ids) = seeded(ports, "acme", CampaignState::Running, 3).await;
    let (_, draft_ids) = seeded(ports, "acme", CampaignState::Draft, 2).await;
    let now = later(0);
    let mut wanted = ids.clone();
    wanted.extend(draft_ids.clone());
    let jobs = c.claim(&wanted, now).await.unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.recipient.clone()).collect::<Vec<_>>(),
        ids,
        "only the running campaign's recipients"
    );
    let j = &jobs[0];
    assert_eq!(
        (&j.campaign, j.project_id.as_str(), j.attempts),
        (&camp, "acme", 1)
    );
    assert_eq!(
        (
            j.template_id.as_str(),
            j.language.as_str(),
            j.rate_limit_per_second
        ),
        ("welcome", "en", Some(40))
    );
    assert_eq!(j.phone.as_str(), "+919876500000");
    assert_eq!(j.variables["name"], "user 0");
    assert_eq!(j.sender.as_str(), BUSINESS);
    assert!(c.claim(&ids, now).await.unwrap().is_empty(), "claimed once");
    assert_eq!(c.counts(&camp).await.unwrap().sending, 3);

    // A retried recipient is claimed again, counting the attempt.
    let retry = SendRecord {
        recipient: ids[0].clone(),
        result: SendResult::Retry { at: now },
        at: now,
    };
    assert_eq!(c.record(&[retry]).await.unwrap(), 1);
    let again = c.claim(&ids[..1], now).await.unwrap();
    assert_eq!(again[0].attempts, 2);

    // A paused campaign's recipients stay queued.
    let (paused, paused_ids) = seeded(ports, "acme", CampaignState::Running, 1).await;
    assert!(
        c.transition(
            &paused,
            &[CampaignState::Running],
            CampaignState::Paused,
            now
        )
        .await
        .unwrap()
    );
    assert!(c.claim(&paused_ids, now).await.unwrap().is_empty());
    assert!(c.claim(&[], now).await.unwrap().is_empty());
}

pub async fn concurrent_claims_are_disjoint(ports: &Ports) {
    let c = &ports.campaigns;
    let (_, ids) = seeded(ports, "acme", CampaignState::Running, 200).await;
    let now = later(0);
    let mut reversed = ids.clone();
    reversed.reverse();
    let (a, b) = tokio::join!(c.claim(&ids, now), c.claim(&reversed, now));
    let (a, b) = (a.unwrap(), b.unwrap());
    let a = set(a.into_iter().map(|j| j.recipient));
    let b = set(b.into_iter().map(|j| j.recipient));
    assert!(a.is_disjoint(&b), "a recipient claimed twice");
    assert_eq!(a.union(&b).cloned().collect::<Vec<_>>(), ids);
}

pub async fn results_apply_once(ports: &Ports) {
    let c = &ports.campaigns;
    let (camp, ids) = seeded(ports, "acme", CampaignState::Running, 4).await;
    let now = later(0);
    let before = Timestamp::from_millis(now.millis() - 1);
    assert_eq!(c.claim(&ids, now).await.unwrap().len(), 4);
    let results = vec![
        sent(&ids[0], Some("wamid.R0")),
        SendRecord {
            recipient: ids[1].clone(),
            result: SendResult::Failed {
                error: EventError {
                    code: Some("131026".into()),
                    message: Some("Receiver is incapable".into()),
                },
            },
            at: now,
        },
        SendRecord {
            recipient: ids[2].clone(),
            result: SendResult::Skipped {
                reason: "missing parameter `code`".into(),
            },
            at: now,
        },
        sent(&ids[3], None),
    ];
    assert_eq!(c.record(&results).await.unwrap(), 4);
    assert_eq!(
        c.record(&results).await.unwrap(),
        0,
        "a second record is a no-op"
    );
    let other = vec![sent(&ids[1], Some("wamid.late"))];
    assert_eq!(c.record(&other).await.unwrap(), 0, "failed stays failed");
    assert_eq!(c.sent_since(&camp, before).await.unwrap(), 3);
    assert_eq!(
        c.sent_since(&camp, later(60_000)).await.unwrap(),
        0,
        "nothing moved after that"
    );

    let rows = c.export_page(&camp, None, 10).await.unwrap();
    assert_eq!(status_of(&rows, &ids[0]), "sent");
    assert_eq!(rows[0].provider_message_id.as_deref(), Some("wamid.R0"));
    let failed = rows.iter().find(|r| r.recipient == ids[1]).unwrap();
    assert_eq!(failed.status, "failed");
    assert_eq!(
        failed.error,
        Some(EventError {
            code: Some("131026".into()),
            message: Some("Receiver is incapable".into())
        })
    );
    let skipped = rows.iter().find(|r| r.recipient == ids[2]).unwrap();
    assert_eq!(
        (
            skipped.status.as_str(),
            skipped.error.as_ref().and_then(|e| e.message.as_deref())
        ),
        ("skipped", Some("missing parameter `code`"))
    );
    assert_eq!(rows[3].provider_message_id, None);
    assert_eq!(c.record(&[]).await.unwrap(), 0);
}

pub async fn a_send_stores_its_message_merged_with_earlier_events(ports: &Ports) {
    let c = &ports.campaigns;
    let (camp, ids) = seeded(ports, "acme", CampaignState::Running, 2).await;
    // The BSP's webhook raced the send response: `delivered` is stored first.
    apply(
        &*ports.store,
        &[incoming(
            "acme",
            bare_status("wamid.early", Status::Delivered),
            1,
        )],
    )
    .await;
    let now = later(0);
    c.claim(&ids, now).await.unwrap();
    let results = [
        sent(&ids[0], Some("wamid.early")),
        sent(&ids[1], Some("wamid.fresh")),
    ];
    assert_eq!(c.record(&results).await.unwrap(), 2);

    let fresh = ports
        .store
        .message(&project("acme"), "wamid.fresh")
        .await
        .unwrap()
        .expect("a send stores its message");
    assert_eq!(fresh.status, Status::Sent);
    assert_eq!(fresh.campaign_id.as_deref(), Some(camp.as_str()));
    assert_eq!(fresh.phone.as_deref(), Some("+919876500001"));
    assert_eq!(fresh.business_number.as_deref(), Some(BUSINESS));
    assert_eq!(fresh.provider.as_deref(), Some("meta"));

    let early = ports
        .store
        .message(&project("acme"), "wamid.early")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(early.status, Status::Delivered, "the send never lowers it");
    assert_eq!(
        early.campaign_id.as_deref(),
        Some(camp.as_str()),
        "filled in"
    );
    assert_eq!(early.phone.as_deref(), Some("+919876500000"));
    assert_eq!(early.events.len(), 1, "the send adds no history");
    let counts = c.counts(&camp).await.unwrap();
    assert_eq!((counts.delivered, counts.sent), (1, 1));
}

pub async fn a_send_leaves_another_projects_message_alone(ports: &Ports) {
    let c = &ports.campaigns;
    let (camp, ids) = seeded(ports, "acme", CampaignState::Running, 1).await;
    apply(
        &*ports.store,
        &[incoming(
            "beta",
            bare_status("wamid.theirs", Status::Read),
            1,
        )],
    )
    .await;
    c.claim(&ids, later(0)).await.unwrap();
    assert_eq!(
        c.record(&[sent(&ids[0], Some("wamid.theirs"))])
            .await
            .unwrap(),
        1,
        "the recipient is still sent"
    );
    let theirs = ports
        .store
        .message(&project("beta"), "wamid.theirs")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(theirs.campaign_id, None, "beta's message is left as it was");
    assert_eq!(theirs.phone, None);
    assert_eq!(
        ports
            .store
            .message(&project("acme"), "wamid.theirs")
            .await
            .unwrap(),
        None
    );
    let counts = c.counts(&camp).await.unwrap();
    assert_eq!(
        (counts.sent, counts.read),
        (1, 0),
        "beta's status is not ours"
    );
}

pub async fn repair_fills_in_lost_answers_once(ports: &Ports) {
    let c = &ports.campaigns;
    let (camp, ids) = seeded(ports, "acme", CampaignState::Running, 4).await;
    let now = later(0);
    let earlier = Timestamp::from_millis(now.millis() - 1000);
    // ids[0] stays sending; ids[1] goes unknown; ids[2] was sent without an id; ids[3] is
    // queued again (never accepted).
    c.claim(&ids[1..2], earlier).await.unwrap();
    c.claim(&ids, now).await.unwrap();
    let half_way = Timestamp::from_millis(now.millis() - 500);
    assert_eq!(c.expire_sending(half_way, 10, 10).await.unwrap().unknown, 1);
    c.record(&[
        sent(&ids[2], None),
        SendRecord {
            recipient: ids[3].clone(),
            result: SendResult::Retry { at: later(60_000) },
            at: now,
        },
    ])
    .await
    .unwrap();
    let echo = |i: usize, project_id: &str, wamid: &str| EchoedReference {
        recipient: ids[i].clone(),
        project_id: project(project_id),
        provider_message_id: wamid.into(),
        at: later(0),
    };

    let wrong = [echo(0, "beta", "wamid.X"), echo(1, "beta", "wamid.X")];
    assert_eq!(c.repair(&wrong).await.unwrap(), 0, "another project's echo");
    let echoes = [
        echo(0, "acme", "wamid.S"),
        echo(1, "acme", "wamid.U"),
        echo(2, "acme", "wamid.N"),
        echo(3, "acme", "wamid.Q"),
    ];
    assert_eq!(
        c.repair(&echoes).await.unwrap(),
        3,
        "a queued one is not repaired"
    );
    assert_eq!(c.repair(&echoes).await.unwrap(), 0, "idempotent");
    let other = [echo(2, "acme", "wamid.other")];
    assert_eq!(c.repair(&other).await.unwrap(), 0, "a known id is kept");

    let rows = c.export_page(&camp, None, 10).await.unwrap();
    for (i, wamid) in [(0, "wamid.S"), (1, "wamid.U"), (2, "wamid.N")] {
        let row = rows.iter().find(|r| r.recipient == ids[i]).unwrap();
        assert_eq!(
            (row.status.as_str(), row.provider_message_id.as_deref()),
            ("sent", Some(wamid))
        );
        let m = ports
            .store
            .message(&project("acme"), wamid)
            .await
            .unwrap()
            .expect("a repair stores the message");
        assert_eq!(m.campaign_id.as_deref(), Some(camp.as_str()));
        assert_eq!(m.status, Status::Sent);
    }
    assert_eq!(status_of(&rows, &ids[3]), "queued");
    assert_eq!(c.repair(&[]).await.unwrap(), 0);
}

pub async fn stale_sends_become_unknown_until_retried(ports: &Ports) {
    let c = &ports.campaigns;
    let (camp, ids) = seeded(ports, "acme", CampaignState::Running, 3).await;
    let now = later(0);
    c.claim(&ids[..2], now).await.unwrap();
    assert_eq!(
        c.expire_sending(now, 10, 10).await.unwrap(),
        Expired::default(),
        "not yet stale"
    );
    assert_eq!(
        c.expire_sending(now.plus(Duration::from_millis(1)), 10, 10)
            .await
            .unwrap(),
        Expired {
            unknown: 2,
            resent: 0
        },
        "policy `hold`: unknown, never queued again by the timeout"
    );
    let counts = c.counts(&camp).await.unwrap();
    assert_eq!((counts.unknown, counts.queued, counts.sending), (2, 1, 0));
    assert_eq!(
        c.record(&[sent(&ids[0], Some("wamid.late"))])
            .await
            .unwrap(),
        0,
        "an unknown recipient takes no late record"
    );
    assert!(
        c.claim(&ids[..2], now).await.unwrap().is_empty(),
        "unknown is not claimable"
    );
    assert_eq!(
        c.retry_unknown(&project("beta"), &camp).await.unwrap(),
        0,
        "another project's retry"
    );
    assert_eq!(c.retry_unknown(&project("acme"), &camp).await.unwrap(), 2);
    assert_eq!(c.counts(&camp).await.unwrap().queued, 3);
    let jobs = c.claim(&ids[..2], later(0)).await.unwrap();
    assert!(jobs.iter().all(|j| j.attempts == 2));
}

/// Counts per status with the message's merged status for sent recipients, and export pages.
pub async fn counts_and_exports(ports: &Ports) {
    let c = &ports.campaigns;
    let (camp, ids) = seeded(ports, "acme", CampaignState::Running, 5).await;
    let now = later(0);
    c.claim(&ids[..4], now).await.unwrap();
    c.record(&[
        sent(&ids[0], Some("wamid.C0")),
        sent(&ids[1], Some("wamid.C1")),
        sent(&ids[2], Some("wamid.C2")),
    ])
    .await
    .unwrap();
    apply(
        &*ports.store,
        &[
            incoming("acme", bare_status("wamid.C0", Status::Delivered), 1),
            incoming("acme", bare_status("wamid.C1", Status::Read), 1),
        ],
    )
    .await;
    let counts = c.counts(&camp).await.unwrap();
    assert_eq!(
        (
            counts.delivered,
            counts.read,
            counts.sent,
            counts.sending,
            counts.queued
        ),
        (1, 1, 1, 1, 1)
    );
    assert_eq!(counts.outstanding(), 2);

    let first = c.export_page(&camp, None, 2).await.unwrap();
    assert_eq!(
        first.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(),
        ["delivered", "read"]
    );
    let rest = c
        .export_page(&camp, Some(&first[1].recipient), 10)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|r| r.recipient.clone()).collect::<Vec<_>>(),
        ids[2..]
    );
    assert_eq!(
        rest.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(),
        ["sent", "sending", "queued"]
    );
    assert!(
        c.export_page(&camp, Some(&ids[4]), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let queued = c
        .recipients_in(&camp, ReportedStatus::Queued, None, 10)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].recipient, ids[4]);
    assert_eq!(queued[0].phone.as_str(), "+919876500004");
}
