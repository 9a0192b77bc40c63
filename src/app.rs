//! Builds the adapters and the roles the config asks for, serves HTTP, and drains on shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::adapters::outbound::{HttpOutbound, OutboundConfig};
use crate::adapters::{Backends, build};
use crate::config::{Config, Role};
use crate::domain::providers::send::{ProviderSettings, SendProvider};
use crate::domain::task::queues;
use crate::http::{self, AppState, Campaigning, Forwarding, HttpLimits, Shared};
use crate::metrics::{Metrics, QueueLabel};
use crate::ports::Outbound;
use crate::services::{
    BreakerConfig, Breakers, Dedupe, EndpointCache, EndpointCacheConfig, ProjectLookup, SendLimits,
    Tiers,
};
use crate::workers::campaign_runner::CampaignRunner;
use crate::workers::forwarder::{Forwarder, ForwarderConfig, ForwarderParts};
use crate::workers::processor::{Processor, ProcessorConfig};
use crate::workers::publisher::{Publisher, PublisherConfig};
use crate::workers::sender::{Sender, SenderConfig, SenderParts};
use crate::workers::sweeper::Sweeper;

/// A built, not yet running, wagate process.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    processor: Option<Arc<Processor>>,
    forwarder: Option<Arc<Forwarder>>,
    sender: Option<Arc<Sender>>,
    forwarding: Forwarding,
    /// A recipient `sending` this long becomes `unknown`.
    unknown_after: Duration,
    /// Claims a recipient may have (the `resend` policy stops there).
    send_max_attempts: u32,
    sweep_interval: Duration,
    backends: Backends,
    metrics: Metrics,
    tracker: TaskTracker,
    stop_workers: CancellationToken,
    header_timeout: Duration,
    shutdown_timeout: Duration,
    /// Days of raw payloads to keep, when this process prunes them (it runs the processor).
    retention_days: Option<u64>,
    trim_every: Option<Duration>,
}

impl App {
    /// Connects the backends (migrating the store), binds the listener and wires the roles.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let metrics = Metrics::new();
        let backends = build(&config, &metrics)
            .await
            .context("connecting backends")?;
        App::build_with(config, backends, metrics).await
    }

    /// Builds on backends made elsewhere (tests use this to put a failing adapter in).
    pub async fn build_with(
        config: Config,
        backends: Backends,
        metrics: Metrics,
    ) -> anyhow::Result<App> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        check_stored_secrets(&config, &backends).await?;
        let (_, lookup) = services(&config, &backends, &metrics);
        let tracker = TaskTracker::new();
        let stop_workers = CancellationToken::new();
        let publisher = config.roles.contains(&Role::Ingress).then(|| {
            Publisher::spawn(
                backends.queue.clone(),
                PublisherConfig {
                    max_events: config.ingress_batch_max,
                    inflight: config.ingress_inflight,
                    timeout: Config::ms(config.ingress_publish_timeout_ms),
                },
                metrics.clone(),
                &tracker,
            )
        });
        let processor = config.roles.contains(&Role::Processor).then(|| {
            Arc::new(processor(
                &config,
                &backends,
                &metrics,
                stop_workers.clone(),
            ))
        });
        let forwarding = forwarding(&config, &backends, &metrics)?;
        let forwarder = config.roles.contains(&Role::Forwarder).then(|| {
            Arc::new(forwarder(
                &config,
                &backends,
                &forwarding,
                &metrics,
                &tracker,
                stop_workers.clone(),
            ))
        });
        let sender = if config.roles.contains(&Role::Sender) {
            Some(Arc::new(sender(
                &config,
                &backends,
                &metrics,
                stop_workers.clone(),
            )?))
        } else {
            None
        };
        let admin_token = admin_token(&config)?;
        if config.roles.contains(&Role::Ingress) {
            log_ingress_auth(&config);
        }
        if config.allow_private_targets {
            tracing::warn!(
                "WAGATE_ALLOW_PRIVATE_TARGETS is on: webhook endpoints may target loopback, private and metadata addresses"
            );
        }
        let secret =
            |s: &Option<secrecy::SecretString>| s.as_ref().map(|s| s.expose_secret().into());
        let state = AppState::new(Shared {
            store: backends.store.clone(),
            endpoints: backends.endpoints.clone(),
            queue: backends.queue.clone(),
            shared_cache: backends.shared.clone(),
            lookup,
            publisher,
            metrics: metrics.clone(),
            admin_token: admin_token.into(),
            ingress_token: secret(&config.ingress_token),
            meta_app_secret: secret(&config.meta_app_secret),
            meta_verify_token: secret(&config.meta_verify_token),
            allow_private_targets: config.allow_private_targets,
            forwarding: forwarding.clone(),
            campaigning: campaigning(&config, &backends)?,
            secret_key: secret(&config.secret_key),
        });
        let limits = HttpLimits::from_config(&config);
        let router = http::router(state, &config.roles, &limits);
        tracing::info!(
            listen = %listener.local_addr()?,
            roles = ?config.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            store = backends.store.backend(),
            queue = backends.queue.backend(),
            cache = if backends.shared.is_some() { "memory+redis" } else { "memory" },
            "wagate ready"
        );
        Ok(App {
            listener,
            router,
            processor,
            forwarder,
            sender,
            forwarding,
            unknown_after: Duration::from_secs(config.send_unknown_after_secs),
            send_max_attempts: config.send_max_attempts,
            sweep_interval: Config::ms(config.sweeper_interval_ms),
            backends,
            metrics,
            tracker,
            stop_workers,
            header_timeout: limits.header_timeout,
            shutdown_timeout: Duration::from_secs(config.shutdown_timeout_secs),
            retention_days: (config.roles.contains(&Role::Processor)
                && config.raw_payload_retention_days > 0)
                .then_some(config.raw_payload_retention_days),
            trim_every: (config.memory_trim_interval_ms > 0)
                .then(|| Config::ms(config.memory_trim_interval_ms)),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until `shutdown` fires, then: stops accepting, finishes in-flight requests (each
    /// either durably enqueued or refused), lets the processor finish its batch, closes pools.
    /// All of that within `shutdown_timeout_secs`; past it, whatever is left is dropped (work a
    /// worker had not acked is redelivered, which is safe) and the process exits anyway.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        if let Some(p) = &self.processor {
            p.clone().spawn(&self.tracker);
        }
        self.forwarding
            .cache
            .spawn_watcher(&self.tracker, self.stop_workers.clone());
        // Handed over, not kept: the forwarder's recorder stops when the last handle is gone,
        // after writing what its in-flight attempts give it.
        if let Some(f) = self.forwarder.take() {
            f.spawn(&self.tracker);
            self.tracker.spawn(
                Sweeper {
                    deliveries: self.backends.deliveries.clone(),
                    queue: self.backends.queue.clone(),
                    metrics: self.metrics.clone(),
                    interval: self.sweep_interval,
                    shutdown: self.stop_workers.clone(),
                }
                .run(),
            );
        }
        if let Some(s) = self.sender.take() {
            s.spawn(&self.tracker);
            self.tracker.spawn(
                CampaignRunner {
                    campaigns: self.backends.campaigns.clone(),
                    queue: self.backends.queue.clone(),
                    metrics: self.metrics.clone(),
                    interval: self.sweep_interval,
                    unknown_after: self.unknown_after,
                    max_attempts: self.send_max_attempts,
                    shutdown: self.stop_workers.clone(),
                }
                .run(),
            );
        }
        if let Some(days) = self.retention_days {
            self.tracker.spawn(crate::services::retention::run(
                self.backends.store.clone(),
                self.backends.deliveries.clone(),
                days,
                self.stop_workers.clone(),
            ));
        }
        if let Some(every) = self.trim_every {
            crate::adapters::allocator::spawn_trimmer(
                &self.tracker,
                every,
                self.stop_workers.clone(),
            );
        }
        self.tracker.spawn(
            crate::services::store_gauges::StoreGauges {
                campaigns: self.backends.campaigns.clone(),
                deliveries: self.backends.deliveries.clone(),
                metrics: self.metrics.clone(),
            }
            .run(self.stop_workers.clone()),
        );
        self.tracker.spawn(refresh_queue_gauges(
            self.backends.queue.clone(),
            self.metrics.clone(),
            self.stop_workers.clone(),
        ));
        let connections =
            http::serve::accept(self.listener, self.router, self.header_timeout, shutdown).await;
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        // Connections get most of the time; the last fifth is kept for the workers' last batch
        // and for closing the pools (SQLite checkpoints its WAL then).
        let cut = connections
            .drain(deadline - self.shutdown_timeout / 5)
            .await;
        if cut > 0 {
            tracing::warn!(
                connections = cut,
                timeout = ?self.shutdown_timeout,
                "closed connections still open at the shutdown deadline"
            );
        }
        tracing::info!("HTTP stopped; draining workers");
        // The publisher stops when the router (holding its last handle) is gone; the
        // processor when told to.
        self.stop_workers.cancel();
        self.tracker.close();
        if tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?self.shutdown_timeout, "workers did not drain in time; unacked work will be redelivered");
        }
        if tokio::time::timeout_at(deadline, self.backends.close())
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?self.shutdown_timeout, "connection pools did not close in time");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// How BSP webhooks are authenticated: said once at start, as a warning when some ingress
/// route takes them from anyone (`Config::validate` has refused that off loopback unless
/// `ingress_auth = "none"` allowed it).
fn log_ingress_auth(config: &Config) {
    let (complete, mode) = config.ingress_auth_mode();
    if complete {
        tracing::info!("ingress auth: {mode}");
    } else {
        tracing::warn!("ingress auth: {mode}");
    }
}

/// Says how secrets are stored, and refuses to start when the store holds secrets sealed with
/// a key this process lacks: every send and delivery needing one would fail otherwise.
async fn check_stored_secrets(config: &Config, backends: &Backends) -> anyhow::Result<()> {
    let sealer = &backends.sealer;
    let mode = sealer.describe();
    let reads_secrets = [Role::Api, Role::Forwarder, Role::Sender]
        .iter()
        .any(|r| config.roles.contains(r));
    if !reads_secrets {
        tracing::info!("secrets at rest: {mode}");
        return Ok(());
    }
    let totals = backends
        .secrets
        .inventory()
        .await
        .context("counting the stored secrets")?
        .totals();
    let foreign: Vec<String> = totals
        .iter()
        .filter(|(form, _)| *form != "clear" && !sealer.holds(form))
        .map(|(form, n)| format!("{n} with key {form}"))
        .collect();
    anyhow::ensure!(
        foreign.is_empty(),
        "the store holds secrets sealed with keys this process does not have ({}): set \
         WAGATE_SECRET_KEY to the key that sealed them (or add it to \
         WAGATE_SECRET_KEY_PREVIOUS during a rotation)",
        foreign.join(", ")
    );
    let unsealed: u64 = totals
        .iter()
        .filter(|(form, _)| Some(form.as_str()) != sealer.current_key_id())
        .map(|(_, n)| n)
        .sum();
    match sealer.current_key_id() {
        None if !config.listens_on_loopback() => tracing::warn!(
            stored = unsealed,
            "secrets at rest: {mode}: webhook signing secrets and BSP credentials are readable by \
             anyone who can read the database or Redis"
        ),
        None => tracing::info!("secrets at rest: {mode}"),
        Some(_) if unsealed > 0 => tracing::warn!(
            not_sealed_with_this_key = unsealed,
            "secrets at rest: {mode}; run `wagate secrets rotate` to seal the rest with it"
        ),
        Some(_) => tracing::info!("secrets at rest: {mode}"),
    }
    Ok(())
}

/// The configured admin token, or else one kept in `<data_dir>/admin-token` (made on first
/// start), so the embedded default needs no setup and keeps its token across restarts.
fn admin_token(config: &Config) -> anyhow::Result<String> {
    if let Some(token) = &config.admin_token {
        return Ok(token.expose_secret().to_owned());
    }
    let path = config.data_dir.join("admin-token");
    if let Ok(token) = std::fs::read_to_string(&path)
        && !token.trim().is_empty()
    {
        tracing::info!(path = %path.display(), "using the admin token kept in the data dir");
        return Ok(token.trim().to_owned());
    }
    let token = crate::domain::project::ApiKey::generate()
        .as_str()
        .replacen("wgk_", "wga_", 1);
    std::fs::create_dir_all(&config.data_dir)?;
    write_private(&path, &token).with_context(|| format!("writing {}", path.display()))?;
    tracing::warn!(path = %path.display(), "WAGATE_ADMIN_TOKEN is not set; generated an admin token and saved it");
    Ok(token)
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

/// The cache tiers and the project lookup every role shares.
fn services(
    config: &Config,
    backends: &Backends,
    metrics: &Metrics,
) -> (Tiers, Arc<ProjectLookup>) {
    let tiers = Tiers {
        memory: backends.memory.clone(),
        shared: backends.shared.clone(),
        memory_ttl: Duration::from_secs(config.cache_memory_ttl_secs),
        shared_ttl: Duration::from_secs(config.cache_redis_ttl_secs),
        metrics: metrics.clone(),
        single_process: config.is_embedded_store() && config.amqp_url.is_none(),
    };
    let lookup = Arc::new(ProjectLookup::new(
        backends.store.clone(),
        tiers.clone(),
        Duration::from_secs(config.cache_negative_ttl_secs),
    ));
    (tiers, lookup)
}

/// A processor on these backends; `App` spawns its loops, tests drive it with `step`.
pub fn processor(
    config: &Config,
    backends: &Backends,
    metrics: &Metrics,
    shutdown: CancellationToken,
) -> Processor {
    let (_, lookup) = services(config, backends, metrics);
    Processor {
        store: backends.store.clone(),
        campaigns: backends.campaigns.clone(),
        opt_keywords: config.opt_keywords(),
        queue: backends.queue.clone(),
        lookup,
        dedupe: Arc::new(Dedupe::new(backends.dedupe_marks.clone(), metrics.clone())),
        metrics: metrics.clone(),
        config: ProcessorConfig {
            batch_size: config.processor_batch_size,
            flush: Config::ms(config.processor_flush_ms),
            concurrency: config.processor_concurrency(),
            prefetch: config.processor_prefetch,
        },
        shutdown,
    }
}

/// The webhook client, breakers and endpoint cache, shared by the API (test pings, breaker
/// state, invalidation) and the forwarder.
pub fn forwarding(
    config: &Config,
    backends: &Backends,
    metrics: &Metrics,
) -> anyhow::Result<Forwarding> {
    let timeout = Config::ms(config.forwarder_timeout_ms);
    let extra_root_certs_pem = match &config.webhook_ca_file {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let client: Arc<dyn Outbound> = Arc::new(
        HttpOutbound::new(OutboundConfig {
            timeout,
            connect_timeout: timeout.min(Duration::from_secs(5)),
            allow_private_targets: config.allow_private_targets,
            extra_root_certs_pem,
        })
        .context("building the webhook HTTP client")?,
    );
    let breakers = Arc::new(Breakers::new(
        BreakerConfig {
            threshold: config.breaker_failure_threshold,
            first_cooldown: Duration::from_secs(config.breaker_first_cooldown_secs),
            cooldown: Duration::from_secs(config.breaker_cooldown_secs),
            // A probe that neither succeeds nor fails within a request's time (its process
            // died) must not keep the breaker half-open for ever.
            probe_timeout: timeout + Duration::from_secs(5),
        },
        backends.shared.clone(),
        metrics.clone(),
    ));
    let cache = Arc::new(
        EndpointCache::new(
            backends.endpoints.clone(),
            backends.shared.clone(),
            EndpointCacheConfig {
                memory_ttl: Duration::from_secs(config.cache_memory_ttl_secs),
                shared_ttl: Duration::from_secs(config.cache_redis_ttl_secs),
                max_bytes: config.endpoint_cache_budget(),
                single_process: config.is_embedded_store() && config.amqp_url.is_none(),
            },
            metrics.clone(),
        )
        .with_sealer(backends.sealer.clone()),
    );
    metrics.sizes.add("endpoints", cache.clone());
    Ok(Forwarding {
        deliveries: backends.deliveries.clone(),
        cache,
        breakers,
        client,
    })
}

/// What the campaign API needs: the port, a client for `csv_url`s, the import rules.
pub fn campaigning(config: &Config, backends: &Backends) -> anyhow::Result<Campaigning> {
    let csv_client: Arc<dyn Outbound> = Arc::new(
        HttpOutbound::new(OutboundConfig {
            timeout: http::limits::BULK_TIMEOUT,
            connect_timeout: Duration::from_secs(10),
            allow_private_targets: config.allow_private_targets,
            extra_root_certs_pem: None,
        })
        .context("building the CSV download client")?,
    );
    Ok(Campaigning {
        campaigns: backends.campaigns.clone(),
        csv_client,
        default_country_code: config.default_country_code.clone(),
        csv_max_bytes: config.csv_max_bytes,
        provider_defaults: Arc::new(provider_defaults(config)),
    })
}

/// The server's settings of every BSP.
fn provider_defaults(config: &Config) -> HashMap<SendProvider, ProviderSettings> {
    SendProvider::ALL
        .into_iter()
        .map(|p| (p, config.provider_defaults(p)))
        .collect()
}

/// A sender on these backends; `App` spawns it with the campaign runner, tests drive it with
/// `handle`.
pub fn sender(
    config: &Config,
    backends: &Backends,
    metrics: &Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<Sender> {
    let timeout = Config::ms(config.send_timeout_ms);
    // BSP base URLs are checked like webhook URLs: a project's own base URL must not reach
    // wagate's network.
    let client: Arc<dyn Outbound> = Arc::new(
        HttpOutbound::new(OutboundConfig {
            timeout,
            connect_timeout: timeout.min(Duration::from_secs(5)),
            allow_private_targets: config.allow_private_targets,
            extra_root_certs_pem: None,
        })
        .context("building the BSP HTTP client")?,
    );
    let limits = SendLimits::new(
        config.send_rate_per_number,
        config
            .send_rates()
            .map_err(|e| anyhow::anyhow!("send_rate_overrides: {e}"))?,
        backends.shared.clone(),
    );
    Ok(Sender::new(
        SenderParts {
            campaigns: backends.campaigns.clone(),
            store: backends.store.clone(),
            queue: backends.queue.clone(),
            client,
            limits: Arc::new(limits),
            defaults: provider_defaults(config),
            metrics: metrics.clone(),
        },
        SenderConfig {
            concurrency: config.sender_concurrency,
            prefetch: config.sender_prefetch,
            max_attempts: config.send_max_attempts,
            retry_backoff: Config::ms(config.send_retry_backoff_ms),
        },
        shutdown,
    ))
}

/// A forwarder on these backends; `App` spawns its loop, tests drive it with `handle`.
pub fn forwarder(
    config: &Config,
    backends: &Backends,
    forwarding: &Forwarding,
    metrics: &Metrics,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Forwarder {
    Forwarder::new(
        ForwarderParts {
            deliveries: backends.deliveries.clone(),
            endpoints: backends.endpoints.clone(),
            cache: forwarding.cache.clone(),
            breakers: forwarding.breakers.clone(),
            client: forwarding.client.clone(),
            queue: backends.queue.clone(),
            schedule: config
                .retry_schedule()
                .expect("Config::validate checked the schedule"),
            metrics: metrics.clone(),
        },
        ForwarderConfig {
            concurrency: config.forwarder_concurrency,
            endpoint_inflight: config.forwarder_endpoint_inflight,
            host_inflight: config.forwarder_host_inflight,
            // No place frees sooner on a hanging endpoint than its requests time out; 5 s at
            // most, so a merely slow one's excess is not held long.
            busy_defer: Config::ms(config.forwarder_timeout_ms).min(Duration::from_secs(5)),
            prefetch: config.forwarder_prefetch,
            record_batch: 512,
            record_window: Duration::from_millis(5),
        },
        tracker,
        shutdown,
    )
}

/// Keeps the queue depth, dead-letter and age gauges current for `/metrics`.
async fn refresh_queue_gauges(
    queue: Arc<dyn crate::ports::Queue>,
    metrics: Metrics,
    stop: CancellationToken,
) {
    loop {
        for name in [queues::EVENTS, queues::FORWARD, queues::SEND] {
            let label = QueueLabel { queue: name };
            if let Ok(n) = queue.depth(name).await {
                metrics.queue_depth.get_or_create(&label).set(n as i64);
            }
            if let Ok(n) = queue.dead_count(name).await {
                metrics.queue_dead.get_or_create(&label).set(n as i64);
            }
            match queue.oldest_ready(name).await {
                Ok(Some(age)) => {
                    metrics
                        .queue_oldest_ready
                        .get_or_create(&label)
                        .set(age.as_secs_f64());
                }
                // Nothing bounds it yet: no series rather than a made-up 0.
                Ok(None) => {
                    metrics.queue_oldest_ready.remove(&label);
                }
                Err(_) => {}
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.cancelled() => return,
        }
    }
}
