//! Monitoring as code agrees with the code: every metric the Grafana dashboard and the alert
//! rules (`deploy/monitoring/`) query is one a running wagate exports, with the suffix its type
//! gives it (`_total` for counters, `_bucket`/`_sum`/`_count` for histograms).

use std::collections::BTreeSet;

use reqwest::StatusCode;

use crate::support::app::{TestApp, fixture, on_both_backends};

on_both_backends!(dashboard_and_alerts_query_only_exported_metrics,);

fn deploy_file(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/deploy/monitoring/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The metric names a PromQL text mentions: ours (`wagate_…`) and the process collector's.
/// Metrics of other exporters (`up`, `probe_success`, `kube_…`) are not ours to check.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| t.starts_with("wagate_") || t.starts_with("process_"))
        .map(str::to_owned)
        .collect()
}

/// The `expr:` texts of a rules file, one-line or block (`expr: |` and its indented lines);
/// annotations are prose and may name a family without its suffix.
fn alert_expressions(rules: &str) -> String {
    let mut out = String::new();
    let mut block: Option<usize> = None;
    for line in rules.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(at) = block {
            if indent > at && !line.trim().is_empty() {
                out.push_str(line);
                out.push('\n');
                continue;
            }
            block = None;
        }
        if let Some(expr) = line.trim_start().strip_prefix("expr:") {
            if expr.trim() == "|" {
                block = Some(indent);
            } else {
                out.push_str(expr);
                out.push('\n');
            }
        }
    }
    out
}

/// The sample names an exposition offers, from its `# TYPE` lines.
fn exported(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        match kind {
            "counter" => names.insert(format!("{name}_total")),
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
                true
            }
            _ => names.insert(name.to_owned()),
        };
    }
    names
}

async fn dashboard_and_alerts_query_only_exported_metrics(app: &TestApp) {
    // Some traffic, so the families that only exist once labelled (requests by route, events
    // by provider, refusals by reason, cache hit ratios) are there.
    app.create_project("acme", &["+919812345678"]).await;
    let (status, _) = app
        .post_raw("/datagen-webhook", fixture("datagen/delivery_read.json"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.post_raw("/datagen-webhook", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.process().await;
    let exposition = app.metrics().await;
    let exported = exported(&exposition);

    let dashboard: serde_json::Value =
        serde_json::from_str(&deploy_file("grafana-dashboard.json")).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "a dashboard of {} panels", panels.len());
    let mut queried = BTreeSet::new();
    for panel in panels {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{} has no query", panel["title"]);
        for target in targets {
            let names = metric_names(target["expr"].as_str().unwrap());
            assert!(!names.is_empty(), "{}: {}", panel["title"], target["expr"]);
            queried.extend(names);
        }
    }
    let alerting = metric_names(&alert_expressions(&deploy_file("alerts.yml")));
    assert!(alerting.len() >= 7, "{alerting:?}");
    queried.extend(alerting);

    let missing: Vec<_> = queried.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\nexported: {exported:?}"
    );
}

#[test]
fn a_misnamed_metric_is_caught() {
    let exported = exported(
        "# TYPE wagate_forward_deliveries counter\n# TYPE wagate_queue_depth gauge\n\
         # TYPE wagate_processing_lag_seconds histogram\n",
    );
    let ok = metric_names(
        "sum(rate(wagate_forward_deliveries_total[5m])) + max(wagate_queue_depth) \
         + rate(wagate_processing_lag_seconds_bucket[1m]) + up",
    );
    assert!(ok.is_subset(&exported), "{ok:?}");
    let rules = "  - alert: A\n    expr: |\n      rate(wagate_a_total[5m])\n        > 0\n    \
                 annotations:\n      d: see wagate_b\n  - alert: C\n    expr: wagate_c > 1\n";
    assert_eq!(
        metric_names(&alert_expressions(rules)),
        BTreeSet::from(["wagate_a_total".to_owned(), "wagate_c".to_owned()])
    );
    for wrong in [
        "wagate_forward_deliveries",
        "wagate_queue_depth_total",
        "wagate_processing_lag_seconds",
    ] {
        assert!(!exported.contains(wrong), "{wrong}");
    }
}
