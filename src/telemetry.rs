//! Structured logs through `tracing`: text for people, JSON for log pipelines; and the one-line
//! form of an error chain.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` (or `WAGATE_LOG`) filters; the default keeps the
/// chatty client libraries at warn. Colours only when stderr is a terminal, so files and log
/// collectors get no escape codes.
pub fn init(format: &str) {
    let filter = std::env::var("WAGATE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,lapin=warn,sqlx=warn,amq_protocol=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second init (tests that build several apps) is harmless, so its error is ignored.
    let _ = if format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// `outer: cause: root` for an error and its sources, leaving out a source whose message the
/// error before it already contains (many errors print their source in their own message).
pub fn error_chain<'a>(
    chain: impl Iterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in chain {
        let message = e.to_string();
        if parts.last().is_some_and(|prev| prev.contains(&message)) {
            continue;
        }
        parts.push(message);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Root;

    #[derive(Debug, thiserror::Error)]
    #[error("store: {0}")]
    struct Repeats(#[source] Root);

    #[derive(Debug, thiserror::Error)]
    #[error("PostgreSQL at db:5432")]
    struct Names(#[source] Repeats);

    #[test]
    fn a_cause_is_printed_once() {
        let e = anyhow::Error::new(Names(Repeats(Root))).context("connecting backends");
        assert_eq!(
            error_chain(e.chain()),
            "connecting backends: PostgreSQL at db:5432: store: connection refused"
        );
    }
}
