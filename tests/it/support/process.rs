//! Running the real `wagate` binary as a child process, configured through its environment.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::app::{ADMIN, Backend, Isolation, config};

pub struct Server {
    pub child: Child,
    pub base: String,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `wagate serve` (plus `args`) with the test config as environment variables.
pub async fn start(env: &[(String, String)]) -> Server {
    start_with(env, &[]).await
}

/// Listens on `WAGATE_LISTEN` when `env` sets it (a restart that peers must find again), else
/// on a free port.
pub async fn start_with(env: &[(String, String)], args: &[&str]) -> Server {
    start_full(env, args, None).await
}

/// [`start`] with the process's log (stderr) written to `log`, appended, for a test that reads
/// what it said; `WAGATE_LOG` in `env` sets its level.
pub async fn start_logging(env: &[(String, String)], log: &std::path::Path) -> Server {
    start_full(env, &[], Some(log)).await
}

async fn start_full(
    env: &[(String, String)],
    args: &[&str],
    log: Option<&std::path::Path>,
) -> Server {
    let listen = env
        .iter()
        .find(|(k, _)| k == "WAGATE_LISTEN")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| format!("127.0.0.1:{}", free_port()));
    let stderr = match log {
        Some(path) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open the log file"),
        ),
        None => Stdio::inherit(),
    };
    let child = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .arg("serve")
        .args(args)
        .env_clear()
        .env("WAGATE_LOG", "warn")
        .envs(env.iter().cloned())
        .env("WAGATE_LISTEN", &listen)
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn wagate");
    let base = format!("http://{listen}");
    let client = wagate::adapters::outbound::client_builder()
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server { child, base }
}

/// The environment for `wagate serve` on `backend`, and what keeps it isolated (keep it while
/// the processes run).
pub async fn env_for(backend: Backend) -> Option<(Vec<(String, String)>, Isolation)> {
    let (c, isolation) = config(backend).await?;
    let mut env = vec![
        ("WAGATE_DATA_DIR".into(), c.data_dir.display().to_string()),
        ("WAGATE_ADMIN_TOKEN".into(), ADMIN.into()),
        // The embedded store fsyncs each commit, as in production.
        ("WAGATE_SQLITE_SYNCHRONOUS".into(), "full".into()),
    ];
    if let (Some(db), Some(amqp), Some(redis)) = (c.database_url, c.amqp_url, c.redis_url) {
        env.extend([
            ("WAGATE_DATABASE_URL".into(), db),
            ("WAGATE_AMQP_URL".into(), amqp),
            ("WAGATE_REDIS_URL".into(), redis),
            ("WAGATE_AMQP_PREFIX".into(), c.amqp_prefix),
            ("WAGATE_AMQP_QUEUE_EXPIRES_MS".into(), "300000".into()),
            ("WAGATE_REDIS_PREFIX".into(), c.redis_prefix),
        ]);
    }
    Some((env, isolation))
}
