//! Fuzzes each BSP's send-response classifier on any response body, under the status codes
//! that pick its branches.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wagate::domain::providers::send::{SendProvider, classify};

const PROVIDERS: [SendProvider; 4] = [
    SendProvider::Meta,
    SendProvider::Datagen,
    SendProvider::Aisensy,
    SendProvider::AisensyDirect,
];
const STATUSES: [u16; 11] = [0, 200, 202, 302, 400, 401, 404, 429, 500, 503, 999];

fuzz_target!(|body: &[u8]| {
    for provider in PROVIDERS {
        for status in STATUSES {
            let retry_after = (status == 429).then(|| Duration::from_secs(30));
            let _ = std::hint::black_box(classify(provider, status, retry_after, body));
        }
    }
});
