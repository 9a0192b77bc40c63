//! The binary at its edges: startup errors that name what failed (once, without colour codes),
//! a deployment that would strand events refused, and SIGTERM bounded with slow clients open.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::support::app::Backend;
use crate::support::process::{env_for, start_with};

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Runs `wagate <args>` with only `env`, expecting it to fail; returns its stderr.
async fn fails(env: &[(&str, String)], args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(env!("CARGO_BIN_EXE_wagate"))
            .args(args)
            .env_clear()
            .env("WAGATE_DATA_DIR", dir.path())
            .env("WAGATE_LISTEN", "127.0.0.1:0")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("exits")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "should fail: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour codes: {stderr:?}");
    let last = stderr.lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("error: "), "{stderr}");
    // No cause twice: no `: `-separated part of the message repeats.
    let parts: Vec<&str> = last.split(": ").collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(
            p.len() < 12 || !parts[i + 1..].contains(p),
            "`{p}` printed twice: {last}"
        );
    }
    last
}

#[tokio::test]
async fn ingress_without_processor_on_the_embedded_queue_is_refused() {
    let err = fails(&[], &["serve", "--roles", "api,ingress"]).await;
    assert!(
        err.contains("WAGATE_AMQP_URL") && err.contains("processor"),
        "{err}"
    );
    let err = fails(&[("WAGATE_ROLES", "ingress".into())], &["serve"]).await;
    assert!(err.contains("WAGATE_AMQP_URL"), "{err}");
}

#[tokio::test]
async fn unreachable_postgres_names_host_and_port() {
    let port = closed_port();
    let err = fails(
        &[(
            "WAGATE_DATABASE_URL",
            format!("postgres://wagate:pg-password@127.0.0.1:{port}/wagate"),
        )],
        &["serve"],
    )
    .await;
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("unreachable"), "{err}");
    assert!(!err.contains("pg-password"), "{err}");
}

#[tokio::test]
async fn missing_database_says_so() {
    let Some(db) = crate::support::postgres_db().await else {
        return;
    };
    let (base, _) = db.url().rsplit_once('/').unwrap();
    let missing = crate::support::unique("wagate_missing_");
    let err = fails(
        &[("WAGATE_DATABASE_URL", format!("{base}/{missing}"))],
        &["migrate"],
    )
    .await;
    assert!(
        err.contains(&format!("database `{missing}`")) && err.contains("does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_rabbitmq_names_host_and_port() {
    let port = closed_port();
    let err = fails(
        &[(
            "WAGATE_AMQP_URL",
            format!("amqp://guest:mq-password@127.0.0.1:{port}/%2f"),
        )],
        &["serve"],
    )
    .await;
    assert!(
        err.contains(&format!("RabbitMQ at 127.0.0.1:{port} is unreachable")),
        "{err}"
    );
    assert!(!err.contains("mq-password"), "{err}");
}

#[tokio::test]
async fn toml_syntax_error_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\n\nroles = [\"api\"\n").unwrap();
    let err = fails(&[], &["--config", file.to_str().unwrap(), "serve"]).await;
    assert!(err.contains("broken.toml, line 3"), "{err}");
}

/// Runs `wagate serve` with only `env` (it must listen on `port`) until `/healthz` answers on
/// 127.0.0.1, then stops it with SIGTERM; returns its stderr, after checking it exited cleanly
/// and without colour codes.
async fn serve_until_healthy(env: &[(&str, String)], port: u16) -> String {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .arg("serve")
        .env_clear()
        .env("WAGATE_DATA_DIR", dir.path())
        .env("WAGATE_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = wagate::adapters::outbound::client_builder()
        .build()
        .unwrap();
    while client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The container's health check, given the same settings, finds the server (on loopback
    // when it listens on every address) ...
    let (ok, said) = health(env).await;
    assert!(ok, "wagate health failed on a healthy server: {said}");
    let pid = child.id().unwrap().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour codes: {stderr:?}");
    // ... and fails, saying where it asked, once it is gone.
    let (ok, said) = health(env).await;
    assert!(!ok && said.contains(&format!(":{port}")), "{said}");
    stderr
}

/// Runs `wagate health` with only `env`: whether it succeeded, and its stderr.
async fn health(env: &[(&str, String)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .arg("health")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Redis down does not stop the start, but the log says where it was looked for.
#[tokio::test]
async fn unreachable_redis_is_a_warning_naming_host_and_port() {
    let port = closed_port();
    let listen = closed_port();
    let stderr = serve_until_healthy(
        &[
            ("WAGATE_LISTEN", format!("127.0.0.1:{listen}")),
            (
                "WAGATE_REDIS_URL",
                format!("redis://:redis-password@127.0.0.1:{port}/"),
            ),
        ],
        listen,
    )
    .await;
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(!stderr.contains("redis-password"), "{stderr}");
}

/// An ingress anyone can reach must authenticate BSP webhooks, or be told not to; a secret
/// key that is not one stops the start without being echoed.
#[tokio::test]
async fn ingress_on_a_public_address_without_auth_is_refused() {
    let listen = format!("0.0.0.0:{}", closed_port());
    for (env, args) in [
        (vec![("WAGATE_LISTEN", listen.clone())], vec!["serve"]),
        (vec![], vec!["serve", "--listen", listen.as_str()]),
    ] {
        let err = fails(&env, &args).await;
        for needed in [
            listen.as_str(),
            "WAGATE_INGRESS_TOKEN",
            "WAGATE_META_APP_SECRET",
            "WAGATE_INGRESS_AUTH=none",
        ] {
            assert!(err.contains(needed), "{args:?}: {err}");
        }
    }
    let err = fails(
        &[("WAGATE_SECRET_KEY", "not-a-key-KEYWORD".into())],
        &["serve"],
    )
    .await;
    assert!(
        err.contains("secret_key") && err.contains("32 bytes"),
        "{err}"
    );
    assert!(!err.contains("KEYWORD"), "{err}");
}

/// `INGRESS_AUTH=none` lets it start on a public address; the log says how ingress is
/// authenticated and how secrets are stored, whichever way they are.
#[tokio::test]
async fn a_public_ingress_starts_when_told_and_says_how_it_runs() {
    let port = closed_port();
    let stderr = serve_until_healthy(
        &[
            ("WAGATE_LISTEN", format!("0.0.0.0:{port}")),
            ("WAGATE_INGRESS_AUTH", "none".into()),
        ],
        port,
    )
    .await;
    assert!(
        stderr.contains("ingress auth: none") && stderr.contains("WAGATE_INGRESS_AUTH=none"),
        "{stderr}"
    );
    assert!(stderr.contains("secrets at rest: clear"), "{stderr}");
    let port = closed_port();
    let stderr = serve_until_healthy(
        &[
            ("WAGATE_LISTEN", format!("0.0.0.0:{port}")),
            ("WAGATE_INGRESS_TOKEN", "ingress-KEYWORD".into()),
            ("WAGATE_SECRET_KEY", "c3".repeat(32)),
            ("WAGATE_LOG", "info".into()),
        ],
        port,
    )
    .await;
    assert!(stderr.contains("ingress auth: a bearer token"), "{stderr}");
    assert!(
        stderr.contains("secrets at rest: sealed with AES-256-GCM"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("KEYWORD") && !stderr.contains(&"c3".repeat(8)),
        "{stderr}"
    );
}

/// SIGTERM with a client stuck in its headers and one stuck in its body, both with timeouts
/// far beyond the shutdown bound: the process still exits, cleanly, within the bound.
async fn sigterm_is_bounded_with_slow_clients_open(backend: Backend) {
    let Some((mut env, _dir)) = env_for(backend).await else {
        return;
    };
    env.extend([
        ("WAGATE_SHUTDOWN_TIMEOUT_SECS".into(), "2".into()),
        ("WAGATE_HTTP_HEADER_TIMEOUT_MS".into(), "120000".into()),
        ("WAGATE_HTTP_REQUEST_TIMEOUT_MS".into(), "120000".into()),
    ]);
    let mut server = start_with(&env, &[]).await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut half_headers = TcpStream::connect(&addr).await.unwrap();
    half_headers
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut half_body = TcpStream::connect(&addr).await.unwrap();
    half_body
        .write_all(
            b"POST /datagen-webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"a\":",
        )
        .await
        .unwrap();
    // Both requests have reached the server before the signal.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    let pid = server.child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = tokio::time::timeout(Duration::from_secs(15), server.child.wait())
        .await
        .expect("exits despite the slow clients")
        .unwrap();
    let took = t.elapsed();
    assert!(exit.success(), "{exit}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "exit after {took:?}, bound 2 s"
    );
    drop((half_headers, half_body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_sigterm_is_bounded_with_slow_clients_open() {
    sigterm_is_bounded_with_slow_clients_open(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_sigterm_is_bounded_with_slow_clients_open() {
    sigterm_is_bounded_with_slow_clients_open(Backend::Distributed).await;
}
