//! `wagate bench`: the project's own load tools, which measure and verify at once.
//!
//! - [`ingest`]: drives BSP webhooks at a running server and checks nothing was lost.
//! - [`workload`] (+ `payload`, which renders its bodies, and `model`, the types both share):
//!   the seeded bodies and the state they imply; pure.
//! - `load`, `verify`, `api`: the HTTP phases and the typed client they share.

mod api;
#[cfg(test)]
mod e2e_tests;
pub mod ingest;
mod load;
mod model;
mod payload;
mod verify;
pub mod workload;

pub use ingest::{IngestSummary, run_ingest};

/// `wagate bench <command>`.
#[derive(Clone, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Clone, clap::Subcommand)]
pub enum BenchCommand {
    /// Post a seeded webhook workload (Datagen + Meta) at a server, wait for it to be processed,
    /// verify nothing was lost or went backwards, and print one JSON line of results.
    Ingest(IngestArgs),
}

/// Options of `wagate bench ingest`. No `Debug`: it holds the admin token.
#[derive(Clone, clap::Args)]
pub struct IngestArgs {
    /// Base URL of the wagate server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Events to send in total, duplicates and inbound messages included.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Requests in flight at once (one keep-alive connection each).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Admin token, to create the run's project.
    #[arg(long, env = "WAGATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Seed of the workload; random when absent (printed, so a run can be replayed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Probability that an event is sent a second time.
    #[arg(long, default_value_t = 0.1)]
    pub duplicate_rate: f64,
    /// Share of request bodies in Meta Cloud API format; the rest are Datagen.
    #[arg(long, default_value_t = 0.5)]
    pub meta_share: f64,
    /// Share of events that are inbound user messages.
    #[arg(long, default_value_t = 0.05)]
    pub inbound_share: f64,
    /// How long to wait, after the last accepted request, for the server to apply everything.
    #[arg(long, default_value_t = 120)]
    pub drain_timeout_secs: u64,
    /// How long to hammer `GET /healthz` to measure the HTTP ceiling (0 skips it).
    #[arg(long, default_value_t = 3)]
    pub healthz_secs: u64,
}

impl IngestArgs {
    /// The defaults, as the command line gives them (the admin token still comes from
    /// `WAGATE_ADMIN_TOKEN`): a starting point for tests that drive `run_ingest` directly.
    pub fn from_defaults() -> IngestArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: IngestArgs,
        }
        <Cli as clap::Parser>::try_parse_from(["ingest"])
            .expect("every option has a default")
            .args
    }
}

/// Runs a bench command and prints its one-line JSON summary on stdout.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Ingest(args) => {
            let summary = run_ingest(args).await?;
            println!("{}", serde_json::to_string(&summary)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let a = IngestArgs::from_defaults();
        assert_eq!(a.target, "http://127.0.0.1:8080");
        assert_eq!((a.events, a.concurrency), (100_000, 64));
        assert_eq!(
            (a.duplicate_rate, a.meta_share, a.inbound_share),
            (0.1, 0.5, 0.05)
        );
        assert_eq!((a.drain_timeout_secs, a.healthz_secs), (120, 3));
        assert!(a.seed.is_none());
    }
}
