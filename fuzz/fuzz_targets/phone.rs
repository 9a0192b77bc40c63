//! Fuzzes phone normalisation, with and without a default country code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate::domain::phone::{PhoneNumber, is_country_code};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(number) = PhoneNumber::parse(text) {
        // A normalised number reads back as itself.
        assert_eq!(PhoneNumber::parse(number.as_str()).as_ref(), Ok(&number));
    }
    for cc in [None, Some("91"), Some("1"), Some(text)] {
        let _ = std::hint::black_box(PhoneNumber::parse_with_default(text, cc));
    }
    let _ = std::hint::black_box(is_country_code(text));
});
