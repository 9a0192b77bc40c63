//! Structured logs through `tracing`: text for people, JSON for log pipelines.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` (or `WAGATE_LOG`) filters; the default keeps the
/// chatty client libraries at warn.
pub fn init(format: &str) {
    let filter = std::env::var("WAGATE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,lapin=warn,sqlx=warn,amq_protocol=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    // A second init (tests that build several apps) is harmless, so its error is ignored.
    let _ = if format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
