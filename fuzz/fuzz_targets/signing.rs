//! Fuzzes the signature header readers: Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`), Meta's `X-Hub-Signature-256`, the seed header, and secret parsing.
//! The input is newline-separated: secret, id, timestamp, signature header, then the body.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wagate::domain::signing::{
    SigningSecret, verify_meta_signature, verify_seed_signature, verify_standard_signature,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(5, '\n');
    let mut next = || parts.next().unwrap_or("");
    let (secret_text, msg_id, timestamp, signature) = (next(), next(), next(), next());
    let body = next().as_bytes();
    let secret = SigningSecret::parse(secret_text)
        .unwrap_or_else(|_| SigningSecret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    for now in [0, 1_765_000_000, i64::MIN, i64::MAX] {
        for tolerance in [Duration::from_secs(300), Duration::MAX] {
            let _ = std::hint::black_box(verify_standard_signature(
                &secret, msg_id, timestamp, signature, body, now, tolerance,
            ));
        }
    }
    let _ = std::hint::black_box(verify_meta_signature(b"app-secret", body, Some(signature)));
    let _ = std::hint::black_box(verify_seed_signature(&secret, body, signature));
});
