//! One `Campaigns` suite, run against SQLite and PostgreSQL: campaigns and their states,
//! recipient loads, the conditional moves of a send (claim, record, repair, expiry), counts and
//! exports, opt-outs and provider settings.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use wagate::adapters::postgres::PgStore;
use wagate::adapters::sqlite::{SqliteDb, SqliteStore};
use wagate::domain::campaign::{
    CampaignId, CampaignState, ImportCounts, NewCampaign, NewRecipient, OptOutChange, ParamSpec,
    RecipientId, SendRecord, SendResult, UnknownPolicy, Variables,
};
use wagate::domain::event::EventError;
use wagate::domain::project::ProjectId;
use wagate::domain::providers::send::{ProviderSettings, SendProvider};
use wagate::domain::time::Timestamp;
use wagate::ports::deliveries::Deliveries;
use wagate::ports::endpoints::Endpoints;
use wagate::ports::store::StoreError;
use wagate::ports::{Campaigns, Store};

use crate::support::events::{BUSINESS, phone};

mod recovery;
mod reports;
mod sends;
use recovery::{
    a_release_or_handed_back_lease_is_not_an_attempt, claims_skip_phones_opted_out_since_import,
    due_scheduled_campaigns_are_found_past_600_later_ones,
    finish_done_moves_only_campaigns_with_nothing_outstanding,
    resend_policy_queues_stale_sends_again_up_to_the_attempts,
    retry_failed_requeues_only_wagates_own_failures,
};
use reports::{
    filters_and_exports_agree_with_counts, forwarded_events_carry_the_messages_campaign,
};
use sends::{
    a_send_leaves_another_projects_message_alone,
    a_send_stores_its_message_merged_with_earlier_events,
    claims_take_running_queued_recipients_once, concurrent_claims_are_disjoint,
    repair_fills_in_lost_answers_once, results_apply_once,
    stale_sends_become_unknown_until_retried,
};

/// The ports one database serves.
pub struct Ports {
    pub store: Arc<dyn Store>,
    pub campaigns: Arc<dyn Campaigns>,
    pub endpoints: Arc<dyn Endpoints>,
    pub deliveries: Arc<dyn Deliveries>,
}

pub async fn sqlite() -> (Ports, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let s = Arc::new(SqliteStore::new(SqliteDb::open(&url, false).await.unwrap()));
    let ports = Ports {
        store: s.clone(),
        campaigns: s.clone(),
        endpoints: s.clone(),
        deliveries: s,
    };
    (ports, dir)
}

pub async fn postgres() -> Option<(Ports, crate::support::TestDb)> {
    let db = crate::support::postgres_db().await?;
    let s = Arc::new(PgStore::connect(db.url(), 4).await.unwrap());
    let ports = Ports {
        store: s.clone(),
        campaigns: s.clone(),
        endpoints: s.clone(),
        deliveries: s,
    };
    Some((ports, db))
}

macro_rules! campaigns_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $case() {
                let (ports, _dir) = super::sqlite().await;
                super::$case(&ports).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $case() {
                let Some((ports, _db)) = super::postgres().await else { return };
                super::$case(&ports).await;
            })*
        }
    };
}

campaigns_suite!(
    campaigns_are_scoped_to_their_project,
    transitions_are_conditional,
    campaigns_are_counted_by_state,
    recipient_loads_count_duplicates_and_opt_outs,
    opt_outs_keep_the_latest_change,
    provider_settings_round_trip,
    claim_due_honours_due_times_and_leases,
    cancel_queued_and_make_due,
    counts_and_exports_follow_the_messages,
    claims_take_running_queued_recipients_once,
    concurrent_claims_are_disjoint,
    results_apply_once,
    a_send_stores_its_message_merged_with_earlier_events,
    a_send_leaves_another_projects_message_alone,
    repair_fills_in_lost_answers_once,
    stale_sends_become_unknown_until_retried,
    a_release_or_handed_back_lease_is_not_an_attempt,
    claims_skip_phones_opted_out_since_import,
    due_scheduled_campaigns_are_found_past_600_later_ones,
    finish_done_moves_only_campaigns_with_nothing_outstanding,
    resend_policy_queues_stale_sends_again_up_to_the_attempts,
    retry_failed_requeues_only_wagates_own_failures,
    filters_and_exports_agree_with_counts,
    forwarded_events_carry_the_messages_campaign,
);

pub fn project(id: &str) -> ProjectId {
    ProjectId::parse(id).unwrap()
}

pub fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// Milliseconds from now.
pub fn later(ms: i64) -> Timestamp {
    Timestamp::from_millis(Timestamp::now().millis() + ms)
}

pub fn new_campaign(project_id: &str, name: &str) -> NewCampaign {
    NewCampaign {
        id: CampaignId::generate(),
        project_id: project(project_id),
        name: name.to_owned(),
        template_id: "welcome".into(),
        language: "en".into(),
        provider: SendProvider::Meta,
        sender: phone(BUSINESS),
        params: vec![ParamSpec {
            column: "name".into(),
            fallback: Some("there".into()),
        }],
        media: None,
        schedule_time: None,
        rate_limit_per_second: Some(40),
        unknown_policy: UnknownPolicy::Hold,
        created_at: Timestamp::now(),
    }
}

/// `n` recipients with phones `+9198765<i:05>` and a `name` variable.
pub fn recipients(range: std::ops::Range<u32>) -> Vec<NewRecipient> {
    range
        .map(|i| NewRecipient {
            id: RecipientId::generate(),
            row: u64::from(i) + 1,
            phone: phone(&format!("+9198765{i:05}")),
            variables: Variables::from([("name".to_owned(), format!("user {i}"))]),
        })
        .collect()
}

/// A stored campaign of `project_id` in `state`, with `n` recipients; returns it and their ids.
pub async fn seeded(
    ports: &Ports,
    project_id: &str,
    state: CampaignState,
    n: u32,
) -> (CampaignId, Vec<RecipientId>) {
    let c = new_campaign(project_id, "seeded");
    ports.campaigns.create(&c).await.unwrap();
    let rows = recipients(0..n);
    let counts = ports
        .campaigns
        .add_recipients(&c.project_id, &c.id, &rows)
        .await
        .unwrap();
    assert_eq!(counts.accepted, u64::from(n));
    if state != CampaignState::Draft {
        assert!(
            ports
                .campaigns
                .transition(&c.id, &[CampaignState::Draft], state, Timestamp::now())
                .await
                .unwrap()
        );
    }
    let mut ids: Vec<RecipientId> = rows.into_iter().map(|r| r.id).collect();
    ids.sort();
    (c.id, ids)
}

pub fn sent(id: &RecipientId, wamid: Option<&str>) -> SendRecord {
    SendRecord {
        recipient: id.clone(),
        result: SendResult::Sent {
            provider_message_id: wamid.map(str::to_owned),
        },
        at: Timestamp::now(),
    }
}

async fn campaigns_are_counted_by_state(ports: &Ports) {
    assert_eq!(ports.campaigns.count_by_state().await.unwrap(), []);
    seeded(ports, "acme", CampaignState::Draft, 1).await;
    seeded(ports, "acme", CampaignState::Running, 1).await;
    seeded(ports, "beta", CampaignState::Running, 1).await;
    seeded(ports, "beta", CampaignState::Cancelled, 0).await;
    let mut counts = ports.campaigns.count_by_state().await.unwrap();
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        counts,
        [
            (CampaignState::Cancelled, 1),
            (CampaignState::Draft, 1),
            (CampaignState::Running, 2),
        ]
    );
}

async fn campaigns_are_scoped_to_their_project(ports: &Ports) {
    let c = &ports.campaigns;
    let mut first = new_campaign("acme", "first");
    first.media = Some(wagate::domain::campaign::Media {
        kind: "image".into(),
        url: "https://cdn.example.com/a.png".into(),
        filename: None,
    });
    first.schedule_time = Some(at(1_900_000_000_000));
    c.create(&first).await.unwrap();
    let second = new_campaign("acme", "second");
    c.create(&second).await.unwrap();
    let theirs = new_campaign("beta", "theirs");
    c.create(&theirs).await.unwrap();
    assert!(matches!(
        c.create(&first).await,
        Err(StoreError::Conflict(_))
    ));

    let got = c.get(&project("acme"), &first.id).await.unwrap().unwrap();
    assert_eq!(
        (got.id.clone(), got.name.as_str(), got.state),
        (first.id.clone(), "first", CampaignState::Draft)
    );
    assert_eq!(
        (&got.params, &got.media, got.schedule_time),
        (&first.params, &first.media, first.schedule_time)
    );
    assert_eq!(
        (got.provider, &got.sender, got.rate_limit_per_second),
        (SendProvider::Meta, &phone(BUSINESS), Some(40))
    );
    assert_eq!(
        (got.started_at, got.finished_at, got.last_error),
        (None, None, None)
    );
    assert_eq!(c.get(&project("beta"), &first.id).await.unwrap(), None);

    let names = |v: Vec<wagate::domain::campaign::Campaign>| {
        v.into_iter().map(|c| c.name).collect::<Vec<_>>()
    };
    let acme = c.list(&project("acme"), None, 10).await.unwrap();
    assert_eq!(names(acme), ["second", "first"], "newest first, own only");
    let page = c
        .list(&project("acme"), Some(&second.id), 10)
        .await
        .unwrap();
    assert_eq!(names(page), ["first"]);
    assert_eq!(
        names(c.list(&project("acme"), None, 1).await.unwrap()),
        ["second"]
    );

    c.set_last_error(&first.id, Some("csv_url answered 404"))
        .await
        .unwrap();
    let got = c.get(&project("acme"), &first.id).await.unwrap().unwrap();
    assert_eq!(got.last_error.as_deref(), Some("csv_url answered 404"));
}

async fn transitions_are_conditional(ports: &Ports) {
    let c = &ports.campaigns;
    let camp = new_campaign("acme", "t");
    c.create(&camp).await.unwrap();
    c.set_last_error(&camp.id, Some("earlier")).await.unwrap();
    use CampaignState::*;
    assert!(
        !c.transition(&camp.id, &[Running], Paused, at(5))
            .await
            .unwrap(),
        "not running yet"
    );
    assert!(
        c.transition(&camp.id, &[Draft, Scheduled], Running, at(10))
            .await
            .unwrap()
    );
    assert!(
        !c.transition(&camp.id, &[Draft, Scheduled], Running, at(11))
            .await
            .unwrap(),
        "a second identical move finds it moved"
    );
    let got = c.get(&camp.project_id, &camp.id).await.unwrap().unwrap();
    assert_eq!(
        (got.state, got.started_at, got.last_error),
        (Running, Some(at(10)), None)
    );
    assert!(
        c.transition(&camp.id, &[Running], Paused, at(20))
            .await
            .unwrap()
    );
    assert!(
        c.transition(&camp.id, &[Paused], Running, at(30))
            .await
            .unwrap()
    );
    let got = c.get(&camp.project_id, &camp.id).await.unwrap().unwrap();
    assert_eq!(got.started_at, Some(at(10)), "the first start is kept");
    assert_eq!(c.in_state(Running, 10).await.unwrap().len(), 1);
    assert!(c.in_state(Paused, 10).await.unwrap().is_empty());
    assert!(
        c.transition(&camp.id, &[Running], Finished, at(40))
            .await
            .unwrap()
    );
    let got = c.get(&camp.project_id, &camp.id).await.unwrap().unwrap();
    assert_eq!(
        (got.state, got.finished_at, got.updated_at),
        (Finished, Some(at(40)), at(40))
    );
    assert!(c.in_state(Running, 10).await.unwrap().is_empty());
    assert_eq!(c.in_state(Finished, 10).await.unwrap()[0].id, camp.id);
}

async fn recipient_loads_count_duplicates_and_opt_outs(ports: &Ports) {
    let c = &ports.campaigns;
    let camp = new_campaign("acme", "load");
    c.create(&camp).await.unwrap();
    c.set_opt_outs(&[OptOutChange {
        project_id: project("acme"),
        phone: phone("+919876500003"),
        opted_out: true,
        at: at(100),
    }])
    .await
    .unwrap();
    // Another project's opt-out does not count here.
    c.set_opt_outs(&[OptOutChange {
        project_id: project("beta"),
        phone: phone("+919876500004"),
        opted_out: true,
        at: at(100),
    }])
    .await
    .unwrap();
    let mut rows = recipients(0..5);
    let mut again = recipients(1..2);
    again[0].row = 6;
    rows.extend(again); // the same phone twice in one call
    let counts = c
        .add_recipients(&camp.project_id, &camp.id, &rows)
        .await
        .unwrap();
    assert_eq!(
        counts,
        ImportCounts {
            accepted: 4,
            duplicates: 1,
            opted_out: 1
        }
    );
    // A later load: two phones already there, one new; enough rows to span statements.
    let mut later_rows = recipients(3..5);
    later_rows.extend(recipients(5..700));
    let counts = c
        .add_recipients(&camp.project_id, &camp.id, &later_rows)
        .await
        .unwrap();
    assert_eq!(
        counts,
        ImportCounts {
            accepted: 695,
            duplicates: 2,
            opted_out: 0
        }
    );
    let totals = c.counts(&camp.id).await.unwrap();
    assert_eq!((totals.queued, totals.opted_out), (699, 1));
    assert_eq!(
        c.add_recipients(&camp.project_id, &camp.id, &[])
            .await
            .unwrap(),
        ImportCounts::default()
    );
    assert!(
        matches!(
            c.add_recipients(&project("beta"), &camp.id, &recipients(800..801))
                .await,
            Err(StoreError::Rejected(_))
        ),
        "another project's campaign takes no recipients"
    );
}

async fn opt_outs_keep_the_latest_change(ports: &Ports) {
    let c = &ports.campaigns;
    let (acme, who) = (project("acme"), phone("+919876500001"));
    let change = |opted_out: bool, ms: i64| OptOutChange {
        project_id: acme.clone(),
        phone: who.clone(),
        opted_out,
        at: at(ms),
    };
    assert!(!c.is_opted_out(&acme, &who).await.unwrap());
    c.set_opt_outs(&[change(true, 100)]).await.unwrap();
    assert!(c.is_opted_out(&acme, &who).await.unwrap());
    assert!(!c.is_opted_out(&project("beta"), &who).await.unwrap());
    c.set_opt_outs(&[change(false, 50)]).await.unwrap();
    assert!(
        c.is_opted_out(&acme, &who).await.unwrap(),
        "an older START is ignored"
    );
    c.set_opt_outs(&[change(false, 200), change(true, 150)])
        .await
        .unwrap();
    assert!(
        !c.is_opted_out(&acme, &who).await.unwrap(),
        "latest in one batch wins"
    );
    c.set_opt_outs(&[]).await.unwrap();
}

async fn provider_settings_round_trip(ports: &Ports) {
    let c = &ports.campaigns;
    let acme = project("acme");
    assert_eq!(
        c.provider_settings(&acme, SendProvider::Datagen)
            .await
            .unwrap(),
        None
    );
    let mut s = ProviderSettings {
        base_url: Some("http://127.0.0.1:9/mock".into()),
        credential: Some("secret".into()),
        api_version: Some("v1.0.9".into()),
        webhook_dn_id: None,
    };
    c.put_provider_settings(&acme, SendProvider::Datagen, &s)
        .await
        .unwrap();
    s.webhook_dn_id = Some("dn-1".into());
    c.put_provider_settings(&acme, SendProvider::Datagen, &s)
        .await
        .unwrap();
    assert_eq!(
        c.provider_settings(&acme, SendProvider::Datagen)
            .await
            .unwrap(),
        Some(s)
    );
    assert_eq!(
        c.provider_settings(&acme, SendProvider::Meta)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        c.provider_settings(&project("beta"), SendProvider::Datagen)
            .await
            .unwrap(),
        None
    );
}

async fn claim_due_honours_due_times_and_leases(ports: &Ports) {
    let c = &ports.campaigns;
    let (_, ids) = seeded(ports, "acme", CampaignState::Running, 3).await;
    assert_eq!(
        c.lanes(&[ids[0].clone(), RecipientId::generate()])
            .await
            .unwrap(),
        vec![(ids[0].clone(), phone(BUSINESS), Some(40))],
        "a recipient's lane is its campaign's number and rate; an unknown one has none"
    );
    seeded(ports, "acme", CampaignState::Draft, 2).await;
    seeded(ports, "acme", CampaignState::Paused, 2).await;
    let lease = Duration::from_secs(60);
    let now = later(1);
    assert!(
        c.claim_due(at(0), lease, 10).await.unwrap().is_empty(),
        "nothing is due before it was added"
    );
    let first = c.claim_due(now, lease, 2).await.unwrap();
    assert_eq!(first, ids[..2], "oldest due first, only running campaigns");
    let second = c.claim_due(now, lease, 10).await.unwrap();
    assert_eq!(second, ids[2..], "leased rows are skipped");
    assert!(c.claim_due(now, lease, 10).await.unwrap().is_empty());
    let after_lease = c
        .claim_due(now.plus(lease).plus(lease), lease, 10)
        .await
        .unwrap();
    assert_eq!(after_lease, ids, "a lapsed lease makes them due again");
    // A claimed recipient is no longer queued, so no sweep returns it.
    let jobs = c.claim(&ids[..1], now).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let far = now.plus(Duration::from_secs(3600));
    assert_eq!(c.claim_due(far, lease, 10).await.unwrap(), ids[1..]);
}

async fn cancel_queued_and_make_due(ports: &Ports) {
    let c = &ports.campaigns;
    let (camp, ids) = seeded(ports, "acme", CampaignState::Running, 4).await;
    let now = later(1);
    assert!(c.has_outstanding(&camp).await.unwrap(), "all queued");
    c.claim(&ids[..1], now).await.unwrap();
    // Two are leased far ahead: make_due brings them back to now.
    let leased = c
        .claim_due(now, Duration::from_secs(3600), 2)
        .await
        .unwrap();
    assert_eq!(leased, ids[1..3]);
    assert_eq!(c.make_due(&camp, now).await.unwrap(), 2);
    let due = c.claim_due(now, Duration::from_secs(60), 10).await.unwrap();
    assert_eq!(set(due), set(ids[1..].to_vec()));
    assert_eq!(c.cancel_queued(&camp).await.unwrap(), 3);
    assert_eq!(c.cancel_queued(&camp).await.unwrap(), 0);
    let counts = c.counts(&camp).await.unwrap();
    assert_eq!((counts.cancelled, counts.sending, counts.queued), (3, 1, 0));
    assert!(c.has_outstanding(&camp).await.unwrap(), "one is sending");
    assert_eq!(c.make_due(&camp, now).await.unwrap(), 0);
    c.record(&[SendRecord {
        recipient: ids[0].clone(),
        result: SendResult::Failed {
            error: EventError {
                code: Some("131026".into()),
                message: None,
            },
        },
        at: now,
    }])
    .await
    .unwrap();
    assert!(
        !c.has_outstanding(&camp).await.unwrap(),
        "none queued or sending"
    );
}

async fn counts_and_exports_follow_the_messages(ports: &Ports) {
    sends::counts_and_exports(ports).await;
}

/// Ids as a set, for comparing claims made in parallel.
pub fn set(ids: impl IntoIterator<Item = RecipientId>) -> BTreeSet<RecipientId> {
    ids.into_iter().collect()
}

pub fn status_of(rows: &[wagate::domain::campaign::ExportRow], id: &RecipientId) -> String {
    rows.iter()
        .find(|r| &r.recipient == id)
        .map(|r| r.status.clone())
        .unwrap_or_else(|| panic!("{id} not exported"))
}
