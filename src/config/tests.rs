//! The configuration's unit tests: layering, validation, redaction.

use super::*;
use secrecy::ExposeSecret;
use std::collections::HashMap;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn defaults_are_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.toml");
    assert!(
        Config::load(Some(&missing), env(&[])).is_err(),
        "a named file must exist"
    );
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let cfg = Config::load(Some(&empty), env(&[])).unwrap();
    assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
    assert!(cfg.is_embedded_store() && cfg.amqp_url.is_none() && cfg.redis_url.is_none());
    assert_eq!(cfg.roles.len(), Role::ALL.len());
    // A crash's uncertain sends settle, and its campaign finishes, within two minutes.
    assert_eq!(cfg.send_unknown_after_secs, 120);
    let ok = Config::load(
        Some(&empty),
        env(&[("WAGATE_META_BASE_URL", "http://127.0.0.1:9100/")]),
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn file_then_env() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wagate.toml");
    std::fs::write(&file, "listen = \"0.0.0.0:9000\"\nprocessor_batch_size = 50\nredis_url = \"redis://127.0.0.1/\"\n").unwrap();
    let cfg = Config::load(
        Some(&file),
        env(&[
            ("WAGATE_PROCESSOR_BATCH_SIZE", "75"),
            ("WAGATE_REDIS_URL", ""),
            ("WAGATE_ROLES", "ingress,processor"),
            // Ingress on 0.0.0.0 needs its webhooks authenticated.
            ("WAGATE_INGRESS_TOKEN", "a-token"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.listen.port(), 9000);
    assert_eq!(cfg.processor_batch_size, 75, "env beats file");
    assert_eq!(cfg.redis_url, None, "empty env unsets");
    assert_eq!(
        cfg.roles,
        [Role::Ingress, Role::Processor].into_iter().collect()
    );
    assert!(cfg.is_embedded_store());
    assert!(cfg.database_url().ends_with("wagate-data/wagate.db"));
}

#[test]
fn rejects_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wagate.toml");
    std::fs::write(&file, "").unwrap();
    for (k, v) in [
        ("WAGATE_LISTEN", "nowhere"),
        ("WAGATE_DATABASE_URL", "mysql://x"),
        ("WAGATE_PROCESSOR_BATCH_SIZE", "0"),
        ("WAGATE_ROLES", "api,cook"),
        ("WAGATE_ADMIN_TOKEN", "short"),
        ("WAGATE_META_BASE_URL", "graph.facebook.com"),
        ("WAGATE_DATAGEN_BASE_URL", "ftp://rcmapi.instaalerts.zone"),
        ("WAGATE_AISENSY_BASE_URL", "https://"),
        ("WAGATE_AISENSY_DIRECT_BASE_URL", "not a url"),
    ] {
        assert!(
            Config::load(Some(&file), env(&[(k, v)])).is_err(),
            "{k}={v}"
        );
    }
    std::fs::write(&file, "listen = \"0.0.0.0:1\"\nroles = [\"api\",\n").unwrap();
    let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
    assert!(
        err.contains("wagate.toml, line 2, column") && !err.contains('\n'),
        "{err}"
    );
    std::fs::write(&file, "no_such_key = 1\n").unwrap();
    assert!(
        Config::load(Some(&file), env(&[])).is_err(),
        "unknown keys are typos"
    );
}

#[test]
fn roles_from_the_file_as_list_or_string_env_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wagate.toml");
    std::fs::write(&file, "roles = [\"api\", \"processor\"]\n").unwrap();
    let cfg = Config::load(Some(&file), env(&[])).unwrap();
    assert_eq!(
        cfg.roles,
        [Role::Api, Role::Processor].into_iter().collect()
    );
    std::fs::write(&file, "roles = \"api, processor\"\n").unwrap();
    let cfg = Config::load(Some(&file), env(&[])).unwrap();
    assert_eq!(
        cfg.roles,
        [Role::Api, Role::Processor].into_iter().collect()
    );
    std::fs::write(&file, "roles = \"all\"\n").unwrap();
    assert_eq!(
        Config::load(Some(&file), env(&[])).unwrap().roles.len(),
        Role::ALL.len()
    );
    let cfg = Config::load(Some(&file), env(&[("WAGATE_ROLES", "api")])).unwrap();
    assert_eq!(cfg.roles, [Role::Api].into_iter().collect(), "env wins");
    for bad in ["roles = [\"api\", \"cook\"]", "roles = []", "roles = 3"] {
        std::fs::write(&file, bad).unwrap();
        let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(err.contains("wagate.toml"), "{bad}: {err}");
    }
}

#[test]
fn ingress_without_processor_needs_a_shared_queue() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wagate.toml");
    std::fs::write(&file, "").unwrap();
    for roles in ["ingress", "api,ingress"] {
        let err = Config::load(Some(&file), env(&[("WAGATE_ROLES", roles)]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("WAGATE_AMQP_URL") && err.contains("processor"),
            "{roles}: {err}"
        );
    }
    for roles in [
        "all",
        "ingress,processor",
        "processor",
        "api",
        "api,processor",
    ] {
        assert!(
            Config::load(Some(&file), env(&[("WAGATE_ROLES", roles)])).is_ok(),
            "{roles} on the embedded queue"
        );
    }
    let shared = env(&[
        ("WAGATE_ROLES", "api,ingress"),
        ("WAGATE_AMQP_URL", "amqp://127.0.0.1:5672/%2f"),
    ]);
    assert!(
        Config::load(Some(&file), shared).is_ok(),
        "a broker is shared"
    );
    // A field set after loading (as `--roles` does) is checked by `validate`.
    let mut cfg = Config::load(Some(&file), env(&[])).unwrap();
    cfg.roles = [Role::Ingress].into_iter().collect();
    assert!(cfg.validate().is_err());
}

#[test]
fn http_limits_have_defaults_and_env_overrides() {
    let cfg = Config::default();
    assert_eq!(
        (
            cfg.http_header_timeout_ms,
            cfg.http_request_timeout_ms,
            cfg.http_max_concurrent_requests
        ),
        (10_000, 30_000, 1024)
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wagate.toml");
    std::fs::write(&file, "http_request_timeout_ms = 5000\n").unwrap();
    let cfg = Config::load(
        Some(&file),
        env(&[
            ("WAGATE_HTTP_HEADER_TIMEOUT_MS", "2000"),
            ("WAGATE_HTTP_MAX_CONCURRENT_REQUESTS", "8"),
        ]),
    )
    .unwrap();
    assert_eq!(
        (
            cfg.http_header_timeout_ms,
            cfg.http_request_timeout_ms,
            cfg.http_max_concurrent_requests
        ),
        (2000, 5000, 8)
    );
    assert!(
        Config::load(
            Some(&file),
            env(&[("WAGATE_HTTP_MAX_CONCURRENT_REQUESTS", "0")])
        )
        .is_err()
    );
}

#[test]
fn private_targets_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wagate.toml");
    std::fs::write(&file, "").unwrap();
    assert!(
        !Config::load(Some(&file), env(&[]))
            .unwrap()
            .allow_private_targets
    );
    let on = env(&[("WAGATE_ALLOW_PRIVATE_TARGETS", "true")]);
    assert!(Config::load(Some(&file), on).unwrap().allow_private_targets);
    let bad = env(&[("WAGATE_ALLOW_PRIVATE_TARGETS", "yes please")]);
    assert!(Config::load(Some(&file), bad).is_err());
    std::fs::write(&file, "allow_private_targets = true\n").unwrap();
    let cfg = Config::load(Some(&file), env(&[])).unwrap();
    assert!(cfg.allow_private_targets);
    assert!(format!("{cfg:?}").contains("allow_private_targets: true"));
}

#[test]
fn debug_shows_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wagate.toml");
    std::fs::write(
        &file,
        "admin_token = \"admin-SECRET-1\"\nmeta_app_secret = \"app-SECRET-3\"\n",
    )
    .unwrap();
    let cfg = Config::load(
        Some(&file),
        env(&[
            ("WAGATE_INGRESS_TOKEN", "ingress-SECRET-2"),
            ("WAGATE_META_VERIFY_TOKEN", "verify-SECRET-4"),
            (
                "WAGATE_DATABASE_URL",
                "postgres://wagate:pg-SECRET-5@db.internal:6432/wagate",
            ),
            ("WAGATE_AMQP_URL", "amqp://guest:mq-SECRET-6@mq:5672/%2f"),
            ("WAGATE_REDIS_URL", "redis://:redis-SECRET-7@cache/0"),
            ("WAGATE_SECRET_KEY", KEY_WITH_A_WORD),
            ("WAGATE_SECRET_KEY_PREVIOUS", HEX_KEY_WITH_A_WORD),
            ("WAGATE_META_TOKEN", "meta-SECRET-8"),
            ("WAGATE_AISENSY_API_KEY", "aisensy-SECRET-9"),
        ]),
    )
    .unwrap();
    assert_eq!(
        cfg.ingress_token.as_ref().map(|t| t.expose_secret()),
        Some("ingress-SECRET-2")
    );
    let shown = format!("{cfg:?} {cfg:#?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(!shown.contains("5EC2E700"), "{shown}");
    assert!(
        shown.contains("db.internal:6432"),
        "the rest is kept: {shown}"
    );
    assert_eq!(
        endpoint(cfg.database_url.as_deref().unwrap()),
        "db.internal:6432"
    );
    assert_eq!(endpoint(cfg.redis_url.as_deref().unwrap()), "cache:6379");
    assert_eq!(endpoint("postgres://localhost/x"), "localhost:5432");
    assert!(!redact_url("postgres://u:p%40ss word@h/x").contains("ss"));
}

/// Valid keys (base64 and hex of 32 bytes) with a word `Debug` must never show.
const KEY_WITH_A_WORD: &str = "SECRETSECRETSECRETSECRETSECRETSECRETSECRETA=";
const HEX_KEY_WITH_A_WORD: &str =
    "5EC2E7005EC2E7005EC2E7005EC2E7005EC2E7005EC2E7005EC2E7005EC2E700";

#[test]
fn ingress_off_loopback_needs_auth_or_an_explicit_none() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wagate.toml");
    std::fs::write(&file, "").unwrap();
    let load = |vars: &[(&str, &str)]| Config::load(Some(&file), env(vars));
    for listen in [
        "127.0.0.1:8080",
        "127.0.0.2:0",
        "[::1]:8080",
        "[::ffff:127.0.0.1]:80",
    ] {
        let cfg = load(&[("WAGATE_LISTEN", listen)]).unwrap();
        assert!(cfg.listens_on_loopback(), "{listen}");
        let (complete, mode) = cfg.ingress_auth_mode();
        assert!(!complete && mode.contains("loopback"), "{mode}");
    }
    for listen in [
        "0.0.0.0:8080",
        "[::]:8080",
        "10.1.2.3:8080",
        "[::ffff:10.0.0.1]:80",
    ] {
        let err = load(&[("WAGATE_LISTEN", listen)]).unwrap_err().to_string();
        for needed in [
            "WAGATE_INGRESS_TOKEN",
            "WAGATE_META_APP_SECRET",
            "WAGATE_INGRESS_AUTH=none",
        ] {
            assert!(err.contains(needed), "{listen}: {err}");
        }
        let public = [("WAGATE_LISTEN", listen)];
        for (key, value, complete) in [
            ("WAGATE_INGRESS_TOKEN", "a-token", true),
            ("WAGATE_META_APP_SECRET", "app-secret", false),
            ("WAGATE_INGRESS_AUTH", "none", false),
        ] {
            let cfg = load(&[public[0], (key, value)]).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(cfg.ingress_auth_mode().0, complete, "{key}");
        }
        let (_, mode) = load(&[public[0], ("WAGATE_INGRESS_AUTH", "none")])
            .unwrap()
            .ingress_auth_mode();
        assert!(mode.contains("WAGATE_INGRESS_AUTH=none"), "{mode}");
        // Without the ingress role nothing is exposed.
        load(&[public[0], ("WAGATE_ROLES", "api,processor")]).unwrap();
    }
    assert!(load(&[("WAGATE_INGRESS_AUTH", "off")]).is_err());
    // `wagate serve --listen` changes the address after loading: `validate` sees it.
    let mut cfg = load(&[]).unwrap();
    cfg.listen = "0.0.0.0:8080".parse().unwrap();
    assert!(cfg.validate().is_err());
    cfg.ingress_auth = "none".into();
    cfg.validate().unwrap();
}

#[test]
fn secret_keys_are_checked_when_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wagate.toml");
    std::fs::write(&file, "").unwrap();
    let load = |vars: &[(&str, &str)]| Config::load(Some(&file), env(vars));
    assert!(load(&[]).unwrap().seal_keys().unwrap().is_none());
    let cfg = load(&[
        ("WAGATE_SECRET_KEY", KEY_WITH_A_WORD),
        (
            "WAGATE_SECRET_KEY_PREVIOUS",
            &format!("{HEX_KEY_WITH_A_WORD}, {}", "11".repeat(32)),
        ),
    ])
    .unwrap();
    let (current, previous) = cfg.seal_keys().unwrap().unwrap();
    assert_eq!(previous.len(), 2);
    assert_ne!(current.id(), previous[0].id());
    for (key, value) in [
        ("WAGATE_SECRET_KEY", "too-short-SECRET"),
        ("WAGATE_SECRET_KEY", &"ab".repeat(16)),
        ("WAGATE_SECRET_KEY_PREVIOUS", HEX_KEY_WITH_A_WORD),
    ] {
        let err = load(&[(key, value)]).unwrap_err().to_string();
        assert!(err.contains("secret_key"), "{key}: {err}");
        assert!(
            !err.contains("too-short") && !err.contains(&"ab".repeat(16)),
            "{err}"
        );
        assert!(!err.contains(HEX_KEY_WITH_A_WORD), "{err}");
    }
}
