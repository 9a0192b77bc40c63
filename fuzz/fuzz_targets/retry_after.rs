//! Fuzzes the `Retry-After` reader (delta-seconds or HTTP-date) and the provider time parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate::domain::delivery::outcome::{Outcome, parse_retry_after};
use wagate::domain::time::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for now in [
        Timestamp::from_millis(0),
        Timestamp::from_millis(1_765_000_000_000),
        Timestamp::from_millis(i64::MAX),
    ] {
        let _ = std::hint::black_box(parse_retry_after(text, now));
        let _ = std::hint::black_box(Outcome::of_response(429, Some(text), now));
    }
    let _ = std::hint::black_box(Timestamp::parse_rfc3339(text));
    let _ = std::hint::black_box(Timestamp::parse_provider(&serde_json::Value::String(
        text.to_owned(),
    )));
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = std::hint::black_box(Timestamp::parse_provider(&value));
    }
});
