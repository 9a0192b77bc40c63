//! The `wagate` binary: `serve`, `migrate`, `health`, `secrets`, `bench` and `mock-bsp`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use wagate::app::App;
use wagate::config::{Config, parse_roles};

#[derive(Parser)]
#[command(
    name = "wagate",
    version,
    about = "WhatsApp Business messaging gateway"
)]
struct Cli {
    /// Configuration file (default: ./wagate.toml if present; also WAGATE_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: every role, or those given with --roles.
    Serve {
        /// Address to listen on (overrides WAGATE_LISTEN).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Comma-separated subset of api, ingress, processor, forwarder, sender, or `all`
        /// (the default; overrides WAGATE_ROLES).
        #[arg(long)]
        roles: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Exit 0 if the local server's /healthz answers 200 within 3 s (a container health check).
    Health {
        /// Address to ask (default: WAGATE_LISTEN's port on loopback).
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
    },
    /// Stored secrets: how they are kept, and re-sealing them with a new key.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Load tools that measure and verify a running server.
    Bench(wagate::bench::BenchArgs),
    /// A mock of the four BSP send APIs that posts status webhooks back to the gateway.
    MockBsp(wagate::bench::mock_bsp::MockBspArgs),
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Counts the stored secrets by how they are kept (clear, or the id of their key).
    Status,
    /// Re-seals every stored secret with WAGATE_SECRET_KEY, opening the old ones with
    /// WAGATE_SECRET_KEY_PREVIOUS; secrets stored in clear get sealed too. One pass, row by
    /// row: safe to run while the gateway serves, and to run again after a crash.
    Rotate,
    /// Prints a new random key for WAGATE_SECRET_KEY.
    GenerateKey,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::Error::new(e).context("starting the async runtime")),
    };
    let result = runtime.block_on(run(cli));
    // `run` returns once shutdown is done or its deadline passed; tasks still running then
    // (a pool that would not close) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bench(args) => wagate::bench::run(args).await,
        Command::MockBsp(args) => wagate::bench::mock_bsp::run(args).await,
        Command::Migrate => {
            let config = load(cli.config.as_deref())?;
            wagate::telemetry::init(&config.log_format);
            let (store, _) = wagate::adapters::build::store(&config)
                .await
                .context("migrating")?;
            tracing::info!(store = store.backend(), "migrations applied");
            Ok(())
        }
        Command::Health { addr } => {
            let addr = match addr {
                Some(addr) => addr,
                None => wagate::health_check::local_address(load(cli.config.as_deref())?.listen),
            };
            wagate::health_check::check(addr, std::time::Duration::from_secs(3)).await
        }
        Command::Secrets(command) => secrets(cli.config.as_deref(), command).await,
        Command::Serve { listen, roles } => {
            let mut config = load(cli.config.as_deref())?;
            if let Some(listen) = listen {
                config.listen = listen;
            }
            if let Some(roles) = roles {
                config.roles = parse_roles(&roles)?;
            }
            // The flags can change what the environment's settings allowed (a public address
            // for ingress, a role subset): check the result.
            config.validate()?;
            wagate::telemetry::init(&config.log_format);
            let app = App::build(config).await?;
            let shutdown = CancellationToken::new();
            tokio::spawn(on_signal(shutdown.clone()));
            app.run(shutdown).await
        }
    }
}

async fn secrets(file: Option<&std::path::Path>, command: SecretsCommand) -> anyhow::Result<()> {
    let open = || async {
        let config = load(file)?;
        wagate::telemetry::init(&config.log_format);
        wagate::adapters::build::sealed_secrets(&config)
            .await
            .context("opening the store")
    };
    match command {
        SecretsCommand::GenerateKey => {
            println!("{}", wagate::services::sealer::generate_key());
            Ok(())
        }
        SecretsCommand::Status => {
            let (sealed, sealer) = open().await?;
            let counts = sealed.inventory().await?;
            println!(
                "{}",
                serde_json::json!({
                    "sealing_key": sealer.current_key_id(),
                    "endpoint_secrets": counts.endpoint_secrets,
                    "provider_credentials": counts.provider_credentials,
                })
            );
            Ok(())
        }
        SecretsCommand::Rotate => {
            let (sealed, sealer) = open().await?;
            anyhow::ensure!(
                sealer.current_key_id().is_some(),
                "WAGATE_SECRET_KEY is not set: there is no key to seal with"
            );
            let report = sealed.reseal().await?;
            println!("{}", serde_json::to_string(&report)?);
            anyhow::ensure!(
                report.unreadable == 0,
                "{} stored secrets could not be opened with the keys given (the log names \
                 them); run again with their key in WAGATE_SECRET_KEY_PREVIOUS",
                report.unreadable
            );
            if report.changed_meanwhile > 0 {
                tracing::warn!(
                    values = report.changed_meanwhile,
                    "some secrets changed while being re-sealed; run again to re-seal them"
                );
            }
            Ok(())
        }
    }
}

/// Prints `error: outer: cause: root cause` on one line and returns the failure exit code.
/// Many errors already include their source in their own message; such a source is not
/// printed a second time.
fn fail(e: &anyhow::Error) -> std::process::ExitCode {
    eprintln!("error: {}", wagate::telemetry::error_chain(e.chain()));
    std::process::ExitCode::FAILURE
}

fn load(file: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Ok(Config::load(file, |k| std::env::var(k).ok())?)
}

/// SIGTERM (Kubernetes) or SIGINT (Ctrl-C) starts a graceful shutdown.
async fn on_signal(shutdown: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
