//! Fuzzes the config file: TOML into `Config`, then validation and every derived setting.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wagate::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cfg = match Config::from_toml(text, Path::new("wagate.toml")) {
        Ok(cfg) => cfg,
        Err(e) => {
            let _ = std::hint::black_box(e.to_string());
            return;
        }
    };
    let _ = std::hint::black_box(cfg.validate().map_err(|e| e.to_string()));
    let _ = std::hint::black_box(cfg.retry_schedule().is_ok());
    let _ = std::hint::black_box(cfg.send_rates());
    let _ = std::hint::black_box(cfg.seal_keys().is_ok());
    let _ = std::hint::black_box(cfg.opt_keywords());
    let _ = std::hint::black_box(cfg.ingress_auth_mode());
    let _ = std::hint::black_box(cfg.memory_budgets());
    let _ = std::hint::black_box(cfg.processor_concurrency());
    let _ = std::hint::black_box(cfg.database_url());
});
