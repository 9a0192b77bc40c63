//! What lets a campaign recover without an operator: leases handed back, releases that cost
//! no attempt, opt-outs honoured at claim time, the `resend` policy, retry-failed, and the
//! runner's indexed worklists.

use std::time::Duration;

use wagate::domain::campaign::{
    CampaignState, RecipientStatus, SendRecord, SendResult, UnknownPolicy,
};
use wagate::domain::event::EventError;
use wagate::domain::time::Timestamp;
use wagate::ports::campaigns::Expired;

use super::{Ports, later, new_campaign, project, recipients, seeded, status_of};
use crate::support::events::phone;

pub async fn a_release_or_handed_back_lease_is_not_an_attempt(ports: &Ports) {
    let c = &ports.campaigns;
    let (_, ids) = seeded(ports, "acme", CampaignState::Running, 3).await;
    let now = later(0);
    let leased = c.claim_due(now, Duration::from_secs(20), 10).await.unwrap();
    assert_eq!(leased.len(), 3);
    assert!(
        c.claim_due(now, Duration::from_secs(20), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A claimed recipient is not queued: handing back its lease leaves it alone.
    assert_eq!(c.claim(&ids[..1], now).await.unwrap().len(), 1);
    assert_eq!(c.release(&ids, now).await.unwrap(), 2);
    let due = c.claim_due(now, Duration::from_secs(20), 10).await.unwrap();
    assert_eq!(due, ids[1..].to_vec(), "handed back: due at once");
    // A claim released unsent (paused, shutting down) does not count as an attempt.
    let released = SendRecord {
        recipient: ids[0].clone(),
        result: SendResult::Released { at: now },
        at: now,
    };
    assert_eq!(c.record(&[released]).await.unwrap(), 1);
    let again = c.claim(&ids[..1], now).await.unwrap();
    assert_eq!(
        again[0].attempts, 1,
        "the released claim was not an attempt"
    );
    assert_eq!(c.release(&[], now).await.unwrap(), 0);
}

pub async fn claims_skip_phones_opted_out_since_import(ports: &Ports) {
    let c = &ports.campaigns;
    let (camp, ids) = seeded(ports, "acme", CampaignState::Running, 3).await;
    // A STOP after the import, for the phone of the second recipient (`+9198765` + index).
    c.set_opt_outs(&[wagate::domain::campaign::OptOutChange {
        project_id: project("acme"),
        phone: phone("+919876500001"),
        opted_out: true,
        at: later(0),
    }])
    .await
    .unwrap();
    let jobs = c.claim(&ids, later(0)).await.unwrap();
    let phones: Vec<&str> = jobs.iter().map(|j| j.phone.as_str()).collect();
    assert_eq!(phones, ["+919876500000", "+919876500002"]);
    let counts = c.counts(&camp).await.unwrap();
    assert_eq!((counts.opted_out, counts.sending), (1, 2));
    // Another project's opt-out changes nothing here.
    let (_, theirs) = seeded(ports, "beta", CampaignState::Running, 2).await;
    assert_eq!(c.claim(&theirs, later(0)).await.unwrap().len(), 2);
}

pub async fn due_scheduled_campaigns_are_found_past_600_later_ones(ports: &Ports) {
    let c = &ports.campaigns;
    let tomorrow = later(86_400_000);
    for i in 0..600 {
        let mut camp = new_campaign("acme", &format!("later {i}"));
        camp.schedule_time = Some(tomorrow);
        c.create(&camp).await.unwrap();
        c.transition(
            &camp.id,
            &[CampaignState::Draft],
            CampaignState::Scheduled,
            Timestamp::now(),
        )
        .await
        .unwrap();
    }
    let mut due = new_campaign("acme", "due");
    due.schedule_time = Some(later(-1000));
    c.create(&due).await.unwrap();
    c.transition(
        &due.id,
        &[CampaignState::Draft],
        CampaignState::Scheduled,
        Timestamp::now(),
    )
    .await
    .unwrap();
    assert_eq!(
        c.due_scheduled(later(0), 500).await.unwrap(),
        vec![due.id.clone()]
    );
    assert!(
        c.due_scheduled(later(-60_000), 500)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn finish_done_moves_only_campaigns_with_nothing_outstanding(ports: &Ports) {
    let c = &ports.campaigns;
    let (queued, _) = seeded(ports, "acme", CampaignState::Running, 1).await;
    let (sending, sending_ids) = seeded(ports, "acme", CampaignState::Running, 1).await;
    c.claim(&sending_ids, later(0)).await.unwrap();
    let (done, done_ids) = seeded(ports, "acme", CampaignState::Running, 2).await;
    c.claim(&done_ids, later(0)).await.unwrap();
    c.record(&[
        super::sent(&done_ids[0], Some("wamid.F0")),
        SendRecord {
            recipient: done_ids[1].clone(),
            result: SendResult::Failed {
                error: EventError {
                    code: Some("131026".into()),
                    message: Some("undeliverable".into()),
                },
            },
            at: later(0),
        },
    ])
    .await
    .unwrap();
    let (paused_done, _) = seeded(ports, "acme", CampaignState::Paused, 0).await;
    assert_eq!(
        c.finish_done(later(0), 500).await.unwrap(),
        vec![done.clone()]
    );
    assert!(
        c.finish_done(later(0), 500).await.unwrap().is_empty(),
        "once"
    );
    let state = |id| async move { c.get(&project("acme"), id).await.unwrap().unwrap().state };
    assert_eq!(state(&done).await, CampaignState::Finished);
    assert_eq!(state(&queued).await, CampaignState::Running);
    assert_eq!(state(&sending).await, CampaignState::Running);
    assert_eq!(state(&paused_done).await, CampaignState::Paused);
}

pub async fn resend_policy_queues_stale_sends_again_up_to_the_attempts(ports: &Ports) {
    let c = &ports.campaigns;
    let mut camp = new_campaign("acme", "resend");
    camp.unknown_policy = UnknownPolicy::Resend;
    c.create(&camp).await.unwrap();
    let rows = recipients(0..2);
    c.add_recipients(&camp.project_id, &camp.id, &rows)
        .await
        .unwrap();
    c.transition(
        &camp.id,
        &[CampaignState::Draft],
        CampaignState::Running,
        Timestamp::now(),
    )
    .await
    .unwrap();
    assert_eq!(
        c.get(&camp.project_id, &camp.id)
            .await
            .unwrap()
            .unwrap()
            .unknown_policy,
        UnknownPolicy::Resend
    );
    let ids: Vec<_> = rows.iter().map(|r| r.id.clone()).collect();
    let (held, held_ids) = seeded(ports, "acme", CampaignState::Running, 1).await;
    let now = later(0);
    let stale = now.plus(Duration::from_millis(1));
    c.claim(&ids, now).await.unwrap();
    c.claim(&held_ids, now).await.unwrap();
    assert_eq!(
        c.expire_sending(stale, 10, 2).await.unwrap(),
        Expired {
            unknown: 1,
            resent: 2
        }
    );
    assert_eq!(c.counts(&camp.id).await.unwrap().queued, 2);
    assert_eq!(c.counts(&held).await.unwrap().unknown, 1, "policy hold");
    // Sent again (a second claim), silent again: no attempt left, so `unknown`.
    assert_eq!(c.claim(&ids, now).await.unwrap()[0].attempts, 2);
    assert_eq!(
        c.expire_sending(stale, 10, 2).await.unwrap(),
        Expired {
            unknown: 2,
            resent: 0
        }
    );
    assert_eq!(c.counts(&camp.id).await.unwrap().unknown, 2);
}

pub async fn retry_failed_requeues_only_wagates_own_failures(ports: &Ports) {
    let c = &ports.campaigns;
    let (camp, ids) = seeded(ports, "acme", CampaignState::Running, 3).await;
    let now = later(0);
    c.claim(&ids, now).await.unwrap();
    let failed = |i: usize, code: &str| SendRecord {
        recipient: ids[i].clone(),
        result: SendResult::Failed {
            error: EventError {
                code: Some(code.into()),
                message: Some("why".into()),
            },
        },
        at: now,
    };
    c.record(&[
        failed(0, "retries_exhausted"),
        failed(1, "131026"),
        failed(2, "provider_not_configured"),
    ])
    .await
    .unwrap();
    assert_eq!(
        c.retry_failed(&project("beta"), &camp).await.unwrap(),
        0,
        "another project's"
    );
    assert_eq!(c.retry_failed(&project("acme"), &camp).await.unwrap(), 2);
    let rows = c.export_page(&camp, None, 10).await.unwrap();
    assert_eq!(status_of(&rows, &ids[0]), "queued");
    assert_eq!(status_of(&rows, &ids[1]), "failed", "the BSP's own refusal");
    assert_eq!(status_of(&rows, &ids[2]), "queued");
    assert!(
        rows.iter()
            .filter(|r| r.status == "queued")
            .all(|r| r.error.is_none())
    );
    let again = c.claim(&ids, now).await.unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|j| j.attempts == 1), "a fresh budget");
    assert_eq!(
        RecipientStatus::parse(&status_of(&rows, &ids[1])),
        Some(RecipientStatus::Failed)
    );
}
