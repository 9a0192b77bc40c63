//! The chart of a campaign's statuses over time, drawn server-side as SVG: for each status,
//! how many of its messages had reached it at each moment (from each message's history).

use serde_json::Value;

use crate::domain::time::Timestamp;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
const SERIES: [&str; 4] = ["sent", "delivered", "read", "failed"];

pub struct Line {
    pub status: &'static str,
    pub points: String,
    pub total: usize,
}

pub struct Chart {
    pub lines: Vec<Line>,
    pub from: String,
    pub to: String,
    pub max: usize,
}

impl Chart {
    pub fn is_empty(&self) -> bool {
        self.lines.iter().all(|l| l.total == 0)
    }
}

/// `messages` as the API lists them (each with its `events`).
pub fn status_chart(messages: &[Value]) -> Chart {
    let mut times: Vec<Vec<i64>> = vec![Vec::new(); SERIES.len()];
    for m in messages {
        for (i, status) in SERIES.iter().enumerate() {
            // The first time this message reached the status.
            let first = m["events"].as_array().and_then(|es| {
                es.iter()
                    .filter(|e| e["status"].as_str() == Some(status))
                    .filter_map(|e| e["occurred_at"].as_str().and_then(Timestamp::parse_rfc3339))
                    .map(|t| t.millis())
                    .min()
            });
            if let Some(t) = first {
                times[i].push(t);
            }
        }
    }
    let all = times.iter().flatten();
    let (lo, hi) = (
        all.clone().min().copied().unwrap_or(0),
        all.max().copied().unwrap_or(0),
    );
    let span = (hi - lo).max(1) as f64;
    let max = times.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let lines = SERIES
        .iter()
        .zip(times)
        .map(|(status, mut ts)| {
            ts.sort_unstable();
            let y = |n: usize| HEIGHT - n as f64 / max as f64 * HEIGHT;
            let mut points = vec![format!("0,{HEIGHT}")];
            for (k, t) in ts.iter().enumerate() {
                let x = (*t - lo) as f64 / span * WIDTH;
                points.push(format!("{x:.1},{:.1}", y(k)));
                points.push(format!("{x:.1},{:.1}", y(k + 1)));
            }
            points.push(format!("{WIDTH},{:.1}", y(ts.len())));
            Line {
                status,
                points: points.join(" "),
                total: ts.len(),
            }
        })
        .collect();
    let show = |ms: i64| {
        let t = Timestamp::from_millis(ms).to_rfc3339();
        t.get(11..19).unwrap_or_default().to_owned()
    };
    Chart {
        lines,
        from: show(lo),
        to: show(hi),
        max,
    }
}
