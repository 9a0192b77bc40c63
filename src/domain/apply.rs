//! Turns a batch of received events into the rows one store transaction writes.
//!
//! A store applies a plan in two steps inside one transaction: it inserts the history rows,
//! learning which were new (the rest it already had), then merges into each message only its
//! new events ([`Plan::messages`]). The unique key on history and the max on status make the
//! result independent of order and repetition; planning removes the work one statement cannot
//! do twice (PostgreSQL refuses to upsert a row twice in one statement) and sorts rows so
//! concurrent processors lock them in the same order.

use std::collections::BTreeMap;

use super::campaign::RecipientId;
use super::event::{Event, InboundMessage, Provider, StatusEvent};
use super::phone::PhoneNumber;
use super::project::ProjectId;
use super::status::{Reported, Status};
use super::time::Timestamp;

/// An event whose project is known, as the processor hands it to the store.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub project_id: ProjectId,
    pub event: Event,
    pub received_at: Timestamp,
}

/// One row of a message's history.
#[derive(Debug, Clone, Copy)]
pub struct HistoryRow<'a> {
    pub project_id: &'a ProjectId,
    pub event: &'a StatusEvent,
    pub received_at: Timestamp,
}

/// The merged effect of a batch's new events on one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageUpsert<'a> {
    pub wamid: &'a str,
    pub project_id: &'a ProjectId,
    pub provider: Provider,
    pub status: Status,
    pub business_number: &'a PhoneNumber,
    pub phone: Option<&'a PhoneNumber>,
    pub campaign_id: Option<&'a str>,
    /// The first campaign recipient its new events name by an echoed reference: where the
    /// campaign comes from when an event arrives before the send that stores it.
    pub recipient: Option<&'a str>,
    pub updated_at: Timestamp,
    /// History rows this batch added to the message.
    pub new_events: i64,
}

impl<'a> MessageUpsert<'a> {
    /// Fills a missing campaign id from the campaign of the recipient an event named:
    /// `campaign_of(recipient, project)` is that recipient's campaign if it is the project's.
    pub fn with_recipient_campaign(
        &mut self,
        campaign_of: impl Fn(&str, &ProjectId) -> Option<&'a str>,
    ) {
        if self.campaign_id.is_none() {
            self.campaign_id = self.recipient.and_then(|r| campaign_of(r, self.project_id));
        }
    }
}

/// The reference an event echoed, when it names one of our campaign recipients.
fn recipient_of(e: &StatusEvent) -> Option<&str> {
    e.reference
        .as_deref()
        .filter(|r| RecipientId::parse(r).is_ok())
}

#[derive(Debug, Clone, Copy)]
pub struct InboundRow<'a> {
    pub project_id: &'a ProjectId,
    pub message: &'a InboundMessage,
    pub received_at: Timestamp,
}

/// The rows of one transaction, each list sorted by its key and free of duplicates.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// Sorted by (wamid, report); the first of several identical events is kept.
    pub history: Vec<HistoryRow<'a>>,
    pub inbound: Vec<InboundRow<'a>>,
}

impl<'a> Plan<'a> {
    /// Cuts the plan into parts of at most `rows` history and inbound rows each. Every part
    /// is a valid plan: applying the parts one after another has the effect of the whole,
    /// because each row's effect is an insert-if-absent or a max/sum merge.
    pub fn split(&self, rows: usize) -> Vec<Plan<'a>> {
        let rows = rows.max(1);
        let mut parts: Vec<Plan<'a>> = self
            .history
            .chunks(rows)
            .map(|h| Plan {
                history: h.to_vec(),
                inbound: Vec::new(),
            })
            .collect();
        for chunk in self.inbound.chunks(rows) {
            parts.push(Plan {
                history: Vec::new(),
                inbound: chunk.to_vec(),
            });
        }
        parts
    }

    /// The message upserts for the history rows `is_new` accepts (those the store did not
    /// have), sorted by wamid: status is the max of the new events, `updated_at` their latest
    /// receive time. A message whose events were all known needs no write at all.
    pub fn messages(&self, is_new: impl Fn(&str, &Reported) -> bool) -> Vec<MessageUpsert<'a>> {
        let mut out: Vec<MessageUpsert<'a>> = Vec::new();
        for h in &self.history {
            let e = h.event;
            if !is_new(&e.wamid, &e.status) {
                continue;
            }
            match out.last_mut() {
                Some(m) if m.wamid == e.wamid => {
                    m.status = m.status.merge(e.status.merged());
                    m.updated_at = m.updated_at.max(h.received_at);
                    m.phone = m.phone.or(e.phone.as_ref());
                    m.campaign_id = m.campaign_id.or(e.campaign_id.as_deref());
                    m.recipient = m.recipient.or(recipient_of(e));
                    m.new_events += 1;
                }
                _ => out.push(MessageUpsert {
                    wamid: &e.wamid,
                    project_id: h.project_id,
                    provider: e.provider,
                    status: e.status.merged(),
                    business_number: &e.business_number,
                    phone: e.phone.as_ref(),
                    campaign_id: e.campaign_id.as_deref(),
                    recipient: recipient_of(e),
                    updated_at: h.received_at,
                    new_events: 1,
                }),
            }
        }
        out
    }
}

impl<'a> Plan<'a> {
    /// The distinct campaign recipients the plan's status events name by reference, sorted:
    /// whose campaigns the store reads for messages that do not know theirs yet.
    pub fn recipients(&self) -> Vec<&'a str> {
        let mut r: Vec<&'a str> = self
            .history
            .iter()
            .filter_map(|h| recipient_of(h.event))
            .collect();
        r.sort_unstable();
        r.dedup();
        r
    }

    /// The distinct wamids of the plan's status events, sorted.
    pub fn wamids(&self) -> Vec<&'a str> {
        let mut w: Vec<&'a str> = self
            .history
            .iter()
            .map(|h| h.event.wamid.as_str())
            .collect();
        w.dedup();
        w
    }

    /// Leaves out the history rows of messages another project owns (principle 6: the project
    /// that first recorded a wamid owns it). `owner` names a wamid's stored owner, if it has
    /// one yet; when two projects first name a wamid in one plan, the first row's project
    /// claims it.
    /// Returns the plan to apply and the refused `(wamid, project)` pairs.
    pub fn owned<'o>(
        &self,
        owner: impl Fn(&str) -> Option<&'o str>,
    ) -> (Plan<'a>, Vec<(String, ProjectId)>) {
        let mut refused: Vec<(String, ProjectId)> = Vec::new();
        // A wamid no project owns yet goes to the project of its first row in this plan.
        let mut claims: BTreeMap<&str, &str> = BTreeMap::new();
        for h in &self.history {
            claims
                .entry(h.event.wamid.as_str())
                .or_insert(h.project_id.as_str());
        }
        let history = self
            .history
            .iter()
            .filter(|h| {
                match owner(&h.event.wamid).or(claims.get(h.event.wamid.as_str()).copied()) {
                    Some(o) if o != h.project_id.as_str() => {
                        let pair = (h.event.wamid.clone(), h.project_id.clone());
                        if !refused.contains(&pair) {
                            refused.push(pair);
                        }
                        false
                    }
                    _ => true,
                }
            })
            .copied()
            .collect();
        let plan = Plan {
            history,
            inbound: self.inbound.clone(),
        };
        (plan, refused)
    }
}

pub fn plan(items: &[Incoming]) -> Plan<'_> {
    let mut history: BTreeMap<(&str, &Reported), HistoryRow> = BTreeMap::new();
    let mut inbound: BTreeMap<&str, InboundRow> = BTreeMap::new();
    for item in items {
        match &item.event {
            Event::Status(e) => {
                history
                    .entry((e.wamid.as_str(), &e.status))
                    .or_insert(HistoryRow {
                        project_id: &item.project_id,
                        event: e,
                        received_at: item.received_at,
                    });
            }
            Event::Inbound(m) => {
                inbound.entry(m.message_id.as_str()).or_insert(InboundRow {
                    project_id: &item.project_id,
                    message: m,
                    received_at: item.received_at,
                });
            }
        }
    }
    Plan {
        history: history.into_values().collect(),
        inbound: inbound.into_values().collect(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::value::RawValue;
    use std::collections::BTreeSet;

    pub(crate) fn status_event(wamid: &str, status: impl Into<Reported>, at: i64) -> Event {
        Event::Status(StatusEvent {
            provider: Provider::Datagen,
            wamid: wamid.into(),
            status: status.into(),
            business_number: PhoneNumber::parse("+919812345678").unwrap(),
            phone_number_id: None,
            phone: (at % 2 == 0).then(|| PhoneNumber::parse("+919876543210").unwrap()),
            campaign_id: None,
            reference: None,
            occurred_at: Some(Timestamp::from_millis(at)),
            error: None,
            raw: RawValue::from_string("{}".into()).unwrap(),
        })
    }

    #[test]
    fn a_message_takes_the_campaign_of_the_recipient_its_events_name() {
        let project = ProjectId::parse("p").unwrap();
        let rcp = RecipientId::generate();
        let echoed = |wamid: &str, status: Reported, reference: &str| {
            let mut e = status_event(wamid, status, 1);
            if let Event::Status(s) = &mut e {
                s.reference = Some(reference.to_owned());
            }
            Incoming {
                project_id: project.clone(),
                event: e,
                received_at: Timestamp::from_millis(1),
            }
        };
        let items = [
            // Someone else's reference is not a recipient of ours.
            echoed("w1", Reported::Sent, "their-ref"),
            echoed("w1", Reported::Delivered, rcp.as_str()),
            echoed("w2", Reported::Read, "their-ref"),
        ];
        let p = plan(&items);
        assert_eq!(p.recipients(), [rcp.as_str()]);
        let mut upserts = p.messages(|_, _| true);
        assert_eq!(upserts[0].recipient, Some(rcp.as_str()));
        assert_eq!(upserts[1].recipient, None);
        let campaign_of = |r: &str, owner: &ProjectId| {
            (r == rcp.as_str() && owner == &project).then_some("cmp_x")
        };
        for u in &mut upserts {
            u.with_recipient_campaign(campaign_of);
        }
        assert_eq!(upserts[0].campaign_id, Some("cmp_x"));
        assert_eq!(upserts[1].campaign_id, None);
        // A campaign the events named already stays.
        upserts[0].campaign_id = Some("cmp_named");
        upserts[0].with_recipient_campaign(campaign_of);
        assert_eq!(upserts[0].campaign_id, Some("cmp_named"));
    }

    /// Every kind of report, with two unknown words.
    fn any_status() -> impl Strategy<Value = Reported> {
        let mut all: Vec<Reported> = Status::ALL.into_iter().map(Reported::from).collect();
        all.extend([Reported::Played, Reported::Deleted, Reported::Warning]);
        all.extend(["queued", "enroute"].map(|w| Reported::Other(w.into())));
        prop::sample::select(all)
    }

    proptest! {
        /// Whatever the order and duplication inside a batch: one history row per distinct
        /// (wamid, report); one upsert per wamid with a new event, whose status is the max of
        /// the new events' effects (`sent` for those without) and whose count is their number.
        #[test]
        fn plan_is_max_and_distinct(
            raw in prop::collection::vec((0u8..4, any_status(), 0i64..1000), 1..60),
            known in prop::collection::btree_set((0u8..4, any_status()), 0..6),
        ) {
            let project = ProjectId::parse("p").unwrap();
            let items: Vec<Incoming> = raw.iter().map(|(w, s, at)| Incoming {
                project_id: project.clone(),
                event: status_event(&format!("w{w}"), s.clone(), *at),
                received_at: Timestamp::from_millis(*at),
            }).collect();
            let p = plan(&items);
            let distinct: BTreeSet<(String, Reported)> =
                raw.iter().map(|(w, s, _)| (format!("w{w}"), s.clone())).collect();
            let planned: Vec<(String, Reported)> =
                p.history.iter().map(|h| (h.event.wamid.clone(), h.event.status.clone())).collect();
            prop_assert_eq!(planned, distinct.iter().cloned().collect::<Vec<_>>());

            let known: BTreeSet<(String, Reported)> =
                known.into_iter().map(|(w, s)| (format!("w{w}"), s)).collect();
            let upserts = p.messages(|w, s| !known.contains(&(w.to_owned(), s.clone())));
            let fresh: Vec<&(String, Reported)> = distinct.iter().filter(|k| !known.contains(*k)).collect();
            let wamids: BTreeSet<&str> = fresh.iter().map(|(w, _)| w.as_str()).collect();
            prop_assert_eq!(upserts.iter().map(|m| m.wamid).collect::<BTreeSet<_>>(), wamids);
            for m in &upserts {
                let new: Vec<&Reported> = fresh.iter().filter(|(w, _)| w == m.wamid).map(|(_, s)| s).collect();
                prop_assert_eq!(Some(m.status), new.iter().map(|r| r.merged()).max());
                prop_assert_eq!(m.new_events, new.len() as i64);
                let latest = raw.iter()
                    .filter(|(w, s, _)| format!("w{w}") == m.wamid && new.contains(&s))
                    .map(|r| r.2);
                // updated_at is the receive time of a kept (first-seen) new event.
                prop_assert!(latest.clone().any(|t| t == m.updated_at.millis()));
            }
            prop_assert!(upserts.windows(2).all(|w| w[0].wamid < w[1].wamid), "sorted, one per wamid");
            let (mine, refused) = p.owned(|w| (w == "w0").then_some("other"));
            let (unowned, none_refused) = p.owned(|_| None);
            prop_assert_eq!(unowned.history.len(), p.history.len(), "one project claims all");
            prop_assert!(none_refused.is_empty());
            prop_assert!(mine.history.iter().all(|h| h.event.wamid != "w0"));
            prop_assert_eq!(refused.is_empty(), !p.history.iter().any(|h| h.event.wamid == "w0"));
            prop_assert_eq!(mine.history.len() + p.history.iter().filter(|h| h.event.wamid == "w0").count(), p.history.len());
            let parts = p.split(7);
            prop_assert_eq!(parts.iter().map(|x| x.history.len()).sum::<usize>(), p.history.len());
            prop_assert!(parts.iter().all(|x| x.history.len() + x.inbound.len() <= 7));
        }
    }
}
