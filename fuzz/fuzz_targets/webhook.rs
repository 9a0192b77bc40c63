//! Fuzzes the BSP webhook parsers (Datagen/Karix and Meta) on any request body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate::domain::providers::{datagen, meta, raw_json};

fuzz_target!(|body: &[u8]| {
    // A body that is not JSON is answered 400 before any parser runs; the rest must never panic,
    // whatever shape it has, and every element ends up either an event or a quarantined part.
    let Ok(raw) = raw_json(body) else { return };
    let d = datagen::parse(&raw);
    let m = meta::parse(&raw);
    let _ = std::hint::black_box((
        d.events.len() + d.rejected.len(),
        m.events.len() + m.rejected.len(),
    ));
});
