//! API answers (JSON) turned into what templates show: plain strings and numbers, so that
//! templates stay free of logic and everything they print is escaped text.

use serde_json::Value;

/// The recipient states a campaign's `counts` has, in the order pages show them.
pub const COUNT_STATES: [&str; 10] = [
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "failed",
    "unknown",
    "skipped",
    "opted_out",
    "cancelled",
];

/// A field as text: strings as they are, `null` as nothing, anything else as JSON.
pub fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// A time as pages show it: `2026-12-06 01:30:12 UTC`.
pub fn when(v: &Value) -> String {
    let t = s(v);
    if t.len() >= 19 {
        format!("{} {} UTC", &t[..10], &t[11..19])
    } else {
        t
    }
}

pub fn data(v: &Value) -> &[Value] {
    v["data"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

#[derive(Clone)]
pub struct Count {
    pub state: &'static str,
    pub n: u64,
}

pub struct CampaignView {
    pub id: String,
    pub name: String,
    pub state: String,
    pub template: String,
    pub language: String,
    pub provider: String,
    pub sender: String,
    pub params: String,
    pub rate_limit: String,
    pub schedule: String,
    pub total: u64,
    pub counts: Vec<Count>,
    pub rate: String,
    pub created: String,
    pub started: String,
    pub finished: String,
    pub last_error: String,
    /// Still moving: pages poll its progress.
    pub live: bool,
}

impl CampaignView {
    pub fn of(c: &Value) -> CampaignView {
        let state = s(&c["state"]);
        let params = c["params"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let fallback = s(&p["fallback"]);
                        if fallback.is_empty() {
                            format!("{{{{{}}}}} = {}", i + 1, s(&p["column"]))
                        } else {
                            format!(
                                "{{{{{}}}}} = {} (or \"{fallback}\")",
                                i + 1,
                                s(&p["column"])
                            )
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        CampaignView {
            id: s(&c["id"]),
            name: s(&c["name"]),
            live: matches!(state.as_str(), "scheduled" | "running" | "paused"),
            state,
            template: s(&c["template_id"]),
            language: s(&c["language"]),
            provider: s(&c["provider"]),
            sender: s(&c["sender"]),
            params,
            rate_limit: s(&c["rate_limit_per_second"]),
            schedule: when(&c["schedule_time"]),
            total: n(&c["total"]),
            counts: COUNT_STATES
                .iter()
                .map(|st| Count {
                    state: st,
                    n: n(&c["counts"][st]),
                })
                .collect(),
            rate: s(&c["send_rate_per_second"]),
            created: when(&c["created_at"]),
            started: when(&c["started_at"]),
            finished: when(&c["finished_at"]),
            last_error: s(&c["last_error"]),
        }
    }

    /// The actions this state allows, as (path word, button label).
    pub fn actions(&self) -> Vec<(&'static str, &'static str)> {
        match self.state.as_str() {
            "draft" => vec![("start", "Start sending"), ("cancel", "Cancel")],
            "scheduled" => vec![("cancel", "Cancel")],
            "running" => vec![("pause", "Pause"), ("cancel", "Cancel")],
            "paused" => vec![("resume", "Resume"), ("cancel", "Cancel")],
            "finished" => vec![
                ("retry-failed", "Retry failed"),
                ("retry-unknown", "Retry unknown"),
            ],
            _ => vec![],
        }
    }
}
