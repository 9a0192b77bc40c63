//! What a campaign says about its recipients agrees with itself: the counts, the recipients
//! list's `status` filter and the export put every recipient in the same place, a BSP's failure
//! report reaches the export, and a forwarded event names its message's campaign whichever of
//! the send and the event was stored first.

use wagate::domain::campaign::{
    CampaignCounts, CampaignState, RecipientId, ReportedStatus, SendRecord, SendResult,
};
use wagate::domain::endpoint::{Endpoint, EndpointIn};
use wagate::domain::event::{Event, EventError};
use wagate::domain::status::Status;
use wagate::domain::time::Timestamp;

use super::{Ports, later, project, seeded, sent};
use crate::campaigns_conformance::sends::bare_status;
use crate::store_conformance::{apply, create};
use crate::support::events::{BUSINESS, incoming};

fn count(c: &CampaignCounts, r: ReportedStatus) -> u64 {
    match r {
        ReportedStatus::Queued => c.queued,
        ReportedStatus::Sending => c.sending,
        ReportedStatus::Sent => c.sent,
        ReportedStatus::Delivered => c.delivered,
        ReportedStatus::Read => c.read,
        ReportedStatus::Failed => c.failed,
        ReportedStatus::Skipped => c.skipped,
        ReportedStatus::OptedOut => c.opted_out,
        ReportedStatus::Cancelled => c.cancelled,
        ReportedStatus::Unknown => c.unknown,
    }
}

/// Six recipients: read, failed by the BSP's report (131026), delivered, sent, refused at send
/// (132001) and queued. Each status filter lists exactly the recipients its count counts, under
/// that status; the export carries both failures' codes; a failure a later delivery overrides
/// shows no error.
pub async fn filters_and_exports_agree_with_counts(ports: &Ports) {
    let c = &ports.campaigns;
    let (camp, ids) = seeded(ports, "acme", CampaignState::Running, 6).await;
    c.claim(&ids[..5], later(0)).await.unwrap();
    let refused = SendRecord {
        recipient: ids[4].clone(),
        result: SendResult::Failed {
            error: EventError {
                code: Some("132001".into()),
                message: Some("Template name does not exist".into()),
            },
        },
        at: Timestamp::now(),
    };
    c.record(&[
        sent(&ids[0], Some("wamid.R0")),
        sent(&ids[1], Some("wamid.R1")),
        sent(&ids[2], Some("wamid.R2")),
        sent(&ids[3], Some("wamid.R3")),
        refused,
    ])
    .await
    .unwrap();
    apply(
        &*ports.store,
        &[
            incoming("acme", bare_status("wamid.R0", Status::Read), 1),
            // `events::status` gives a failure Meta's code 131026, "undeliverable".
            incoming("acme", bare_status("wamid.R1", Status::Failed), 1),
            incoming("acme", bare_status("wamid.R2", Status::Delivered), 1),
        ],
    )
    .await;
    let counts = c.counts(&camp).await.unwrap();
    assert_eq!(
        (
            counts.read,
            counts.failed,
            counts.delivered,
            counts.sent,
            counts.queued
        ),
        (1, 2, 1, 1, 1)
    );
    for r in ReportedStatus::ALL {
        let listed = c.recipients_in(&camp, r, None, 100).await.unwrap();
        assert_eq!(listed.len() as u64, count(&counts, r), "{r:?}: {listed:?}");
        assert!(
            listed.iter().all(|x| x.status == r.as_str()),
            "{r:?}: {listed:?}"
        );
    }
    let failed: Vec<RecipientId> = c
        .recipients_in(&camp, ReportedStatus::Failed, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.recipient)
        .collect();
    assert_eq!(failed, [ids[1].clone(), ids[4].clone()]);
    let sent_only = c
        .recipients_in(&camp, ReportedStatus::Sent, None, 100)
        .await
        .unwrap();
    assert_eq!(sent_only.len(), 1);
    assert_eq!(
        sent_only[0].recipient, ids[3],
        "read and delivered ones are not `sent`"
    );

    let error_of = |rows: &[wagate::domain::campaign::ExportRow], id: &RecipientId| {
        rows.iter()
            .find(|r| &r.recipient == id)
            .unwrap()
            .error
            .clone()
    };
    let rows = c.export_page(&camp, None, 100).await.unwrap();
    assert_eq!(
        error_of(&rows, &ids[1]),
        Some(EventError {
            code: Some("131026".into()),
            message: Some("undeliverable".into()),
        })
    );
    assert_eq!(
        error_of(&rows, &ids[4]).and_then(|e| e.code),
        Some("132001".into())
    );
    assert_eq!(error_of(&rows, &ids[0]), None);
    // Another device got it after all: delivered, and no failure to show.
    apply(
        &*ports.store,
        &[incoming(
            "acme",
            bare_status("wamid.R1", Status::Delivered),
            2,
        )],
    )
    .await;
    let rows = c.export_page(&camp, None, 100).await.unwrap();
    assert_eq!(error_of(&rows, &ids[1]), None);
    assert_eq!(c.counts(&camp).await.unwrap().failed, 1);
}

/// A status event echoing `reference`, naming no campaign.
fn echoing(wamid: &str, status: Status, reference: &str) -> Event {
    let mut e = bare_status(wamid, status);
    if let Event::Status(s) = &mut e {
        s.reference = Some(reference.to_owned());
    }
    e
}

/// The `message.campaign_id` of each delivery the applied events wrote.
async fn forwarded_campaigns(ports: &Ports, events: &[Event]) -> Vec<serde_json::Value> {
    let items: Vec<_> = events
        .iter()
        .map(|e| incoming("acme", e.clone(), 5))
        .collect();
    let applied = apply(&*ports.store, &items).await;
    assert_eq!(applied.deliveries.len(), events.len());
    let rows = ports.deliveries.load(&applied.deliveries).await.unwrap();
    rows.iter()
        .map(|p| {
            let body: serde_json::Value = serde_json::from_str(&p.payload).unwrap();
            body["message"]["campaign_id"].clone()
        })
        .collect()
}

/// Send first: the event's delivery names the campaign the send stored. Event first: the
/// reference it echoes names the recipient, whose campaign the delivery and the message take;
/// the send stored after keeps it. Another project's recipient says nothing.
pub async fn forwarded_events_carry_the_messages_campaign(ports: &Ports) {
    create(&*ports.store, "acme", &[BUSINESS]).await.unwrap();
    let input = EndpointIn::parse("https://hooks.example.com/wa", &["*"], None, None).unwrap();
    let e = Endpoint::create(project("acme"), input, Timestamp::now());
    ports.endpoints.create(&e).await.unwrap();
    let (camp, ids) = seeded(ports, "acme", CampaignState::Running, 2).await;
    let (_, theirs) = seeded(ports, "beta", CampaignState::Running, 1).await;
    let c = &ports.campaigns;
    c.claim(&ids, later(0)).await.unwrap();

    c.record(&[sent(&ids[0], Some("wamid.S0"))]).await.unwrap();
    let got = forwarded_campaigns(ports, &[bare_status("wamid.S0", Status::Delivered)]).await;
    assert_eq!(got, [camp.as_str()], "send stored first");

    let got = forwarded_campaigns(
        ports,
        &[
            echoing("wamid.S1", Status::Sent, ids[1].as_str()),
            echoing("wamid.X", Status::Sent, theirs[0].as_str()),
        ],
    )
    .await;
    let mut got: Vec<String> = got.iter().map(|v| v.to_string()).collect();
    got.sort();
    let mut want = ["null".to_owned(), format!("\"{camp}\"")];
    want.sort();
    assert_eq!(got, want, "event first");
    let stored = ports
        .store
        .message(&project("acme"), "wamid.S1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.campaign_id.as_deref(), Some(camp.as_str()));
    c.record(&[sent(&ids[1], Some("wamid.S1"))]).await.unwrap();
    let got = forwarded_campaigns(ports, &[bare_status("wamid.S1", Status::Read)]).await;
    assert_eq!(got, [camp.as_str()], "then the send");
}
