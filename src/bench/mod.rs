//! `wagate bench`: the project's own load tools, which measure and verify at once.
//!
//! - [`ingest`]: drives BSP webhooks at a running server and checks nothing was lost.
//! - [`workload`] (+ `payload`, which renders its bodies, and `model`, the types both share):
//!   the seeded bodies and the state they imply; pure.
//! - `load`, `verify`, `api`: the HTTP phases and the typed client they share.
//! - [`forward`] (+ `endpoints`, its setup, and `receiver`, which verifies and times what the
//!   gateway delivers): drives events through ingress and measures the forwarding.
//! - [`mock_bsp`]: `wagate mock-bsp`, the four BSP send APIs with status webhooks posted back,
//!   counting any recipient sent twice; runs alone or in-process.
//! - [`campaign`]: a closed campaign loop through the mock BSP, measured and checked.

mod api;
pub mod campaign;
#[cfg(test)]
mod e2e_tests;
mod endpoints;
pub mod forward;
#[cfg(test)]
mod forward_e2e_tests;
pub mod ingest;
mod load;
pub mod mock_bsp;
mod model;
mod payload;
pub mod receiver;
mod verify;
pub mod workload;

pub use forward::{ForwardSummary, run_forward};
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
    /// Post status events through ingress for E fresh projects, each with one webhook endpoint
    /// on a receiver this command runs, and measure the forwarding: forwards/s, latency from
    /// ingress to delivery, and that every delivery arrived exactly once with valid signatures
    /// (exit status 1 otherwise). The gateway must run with WAGATE_ALLOW_PRIVATE_TARGETS=true:
    /// the receiver listens on this machine.
    Forward(ForwardArgs),
    /// A closed campaign loop: runs the mock BSP and a receiver in-process, creates a project
    /// whose provider is the mock, uploads a CSV of N recipients, sends, and waits until every
    /// message is final and every status forwarded; prints import and send rates, the time to
    /// final, and that nothing was sent twice, lost or left at a wrong status (exit status 1
    /// otherwise). The gateway must run with WAGATE_ALLOW_PRIVATE_TARGETS=true.
    Campaign(campaign::CampaignArgs),
}

/// Options of `wagate bench forward`. No `Debug`: it holds the admin token.
#[derive(Clone, clap::Args)]
pub struct ForwardArgs {
    /// Base URL of the wagate gateway (run it with WAGATE_ALLOW_PRIVATE_TARGETS=true).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Status events to post, each a distinct message, so each is exactly one forward.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Endpoints, one per fresh project (each with its own business number); events are
    /// spread over them round-robin.
    #[arg(long, default_value_t = 10)]
    pub endpoints: usize,
    /// How many of the endpoints hang past the gateway's 15 s timeout (held
    /// --slow-hold-secs, then 200), to measure isolation. Their deliveries are not waited for.
    #[arg(long, default_value_t = 0)]
    pub slow_endpoints: usize,
    /// Ingress requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Post at this many events per second (at most --concurrency requests in flight);
    /// without it, as fast as --concurrency allows.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Events per ingress request (Datagen arrays, Meta `statuses`).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Share of requests in Meta Cloud API format; the rest are Datagen.
    #[arg(long, default_value_t = 0.5)]
    pub meta_share: f64,
    /// How long to wait, after posting, for every healthy endpoint's deliveries.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// How long a hanging endpoint holds each request before answering 200.
    #[arg(long, default_value_t = 20)]
    pub slow_hold_secs: u64,
    /// Where the receiver listens (an address the gateway can reach: its endpoint URLs are
    /// `http://<this address>/e/<n>`).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub receiver_listen: std::net::SocketAddr,
    /// Admin token, to create the run's projects.
    #[arg(long, env = "WAGATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Seed of the bodies; random when absent (printed).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl ForwardArgs {
    /// The defaults, as the command line gives them: a starting point for tests.
    pub fn from_defaults() -> ForwardArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: ForwardArgs,
        }
        <Cli as clap::Parser>::try_parse_from(["forward"])
            .expect("every option has a default")
            .args
    }
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
        BenchCommand::Campaign(args) => {
            let summary = campaign::run_campaign(&args).await?;
            println!("{}", serde_json::to_string(&summary)?);
            if !summary.clean() {
                anyhow::bail!("the campaign loop was not clean");
            }
        }
        BenchCommand::Forward(args) => {
            let summary = run_forward(args).await?;
            println!("{}", serde_json::to_string(&summary)?);
            let failures = summary.failures();
            if !failures.is_empty() {
                anyhow::bail!("forwarding was not clean: {}", failures.join(", "));
            }
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
