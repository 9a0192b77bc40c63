//! Phone numbers in E.164 form: parsed once at the edge, then always valid.

use serde::{Deserialize, Deserializer, Serialize};

/// An E.164 number, stored as `+` and 8 to 15 digits. Providers write the same number as
/// `919812345678`, `+91 98123 45678` or `+91-98123-45678`; all parse to `+919812345678`, so a
/// business number registered one way matches webhooks that spell it another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a phone number in international format (8 to 15 digits, country code first)")]
pub struct InvalidPhone(pub String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<PhoneNumber, InvalidPhone> {
        let trimmed = raw.trim();
        let rest = trimmed.strip_prefix('+').unwrap_or(trimmed);
        let mut digits = String::with_capacity(16);
        digits.push('+');
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(InvalidPhone(raw.to_owned())),
            }
        }
        let count = digits.len() - 1;
        if !(8..=15).contains(&count) || digits.as_bytes()[1] == b'0' {
            return Err(InvalidPhone(raw.to_owned()));
        }
        Ok(PhoneNumber(digits))
    }

    /// Reads a number as people write them in contact lists, where a default country code
    /// (`91` or `+91`) may stand for the one they leave out:
    ///
    /// - `+…` or `00…` is international: what follows is country code first.
    /// - With a default country code, a number starting with one `0` (the national trunk
    ///   prefix) is national: the `0` is dropped (kept for Italy, where it is part of the
    ///   number) and the country code put in front. So is a number with exactly the length of
    ///   that country's mobile numbers (10 digits for 91 and 1, 9 for 971; see
    ///   `MOBILE_LENGTHS`), since no international number of that country can be that short.
    /// - Anything else follows [`PhoneNumber::parse`]: 8 to 15 digits, country code first.
    ///
    /// Spaces, dashes, dots and parentheses are ignored everywhere. A default that is not a
    /// country code (see [`is_country_code`]) is ignored; configuration rejects one earlier.
    pub fn parse_with_default(
        raw: &str,
        default_cc: Option<&str>,
    ) -> Result<PhoneNumber, InvalidPhone> {
        let trimmed = raw.trim();
        if trimmed.starts_with('+') {
            return PhoneNumber::parse(raw);
        }
        let mut digits = String::with_capacity(16);
        for c in trimmed.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(InvalidPhone(raw.to_owned())),
            }
        }
        let cc = default_cc
            .map(|cc| cc.trim().trim_start_matches('+'))
            .filter(|cc| is_country_code(cc));
        let international = if let Some(rest) = digits.strip_prefix("00") {
            rest.to_owned()
        } else if let Some(cc) = cc {
            match digits.strip_prefix('0') {
                Some(national) if KEEPS_TRUNK_ZERO.contains(&cc) => format!("{cc}0{national}"),
                Some(national) => format!("{cc}{national}"),
                None if mobile_length(cc) == Some(digits.len()) => format!("{cc}{digits}"),
                None => digits,
            }
        } else {
            digits
        };
        PhoneNumber::parse(&international).map_err(|_| InvalidPhone(raw.to_owned()))
    }

    /// For values read back from the store, which only ever holds parsed numbers.
    pub fn from_trusted(s: String) -> PhoneNumber {
        PhoneNumber(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `cc` is written like a country calling code: 1 to 3 digits, not starting with 0.
/// (Not every such code is assigned; an unassigned one only ever fails to match a number.)
pub fn is_country_code(cc: &str) -> bool {
    (1..=3).contains(&cc.len()) && cc.bytes().all(|b| b.is_ascii_digit()) && !cc.starts_with('0')
}

/// Length of mobile numbers without country code or trunk `0`, for countries where it is one
/// fixed length (WhatsApp recipients are mobiles). Countries with several lengths (Germany,
/// Indonesia, Malaysia, ...) are left out: there only `+`, `00` and the trunk `0` tell.
const MOBILE_LENGTHS: &[(&str, usize)] = &[
    ("1", 10),
    ("7", 10),
    ("20", 10),
    ("27", 9),
    ("33", 9),
    ("34", 9),
    ("39", 10),
    ("44", 10),
    ("52", 10),
    ("55", 11),
    ("63", 10),
    ("65", 8),
    ("66", 9),
    ("84", 9),
    ("90", 10),
    ("91", 10),
    ("92", 10),
    ("234", 10),
    ("254", 9),
    ("880", 10),
    ("966", 9),
    ("971", 9),
];

/// Countries whose national numbers keep their leading `0` in international form.
const KEEPS_TRUNK_ZERO: &[&str] = &["39"];

fn mobile_length(cc: &str) -> Option<usize> {
    MOBILE_LENGTHS
        .iter()
        .find(|(c, _)| *c == cc)
        .map(|(_, len)| *len)
}

impl std::fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        PhoneNumber::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_number_agree() {
        let want = PhoneNumber::parse("+919812345678").unwrap();
        for s in [
            "919812345678",
            "+91 98123 45678",
            "+91-98123-45678",
            " (91) 9812345678 ",
        ] {
            assert_eq!(PhoneNumber::parse(s).unwrap(), want, "{s}");
        }
        assert_eq!(want.as_str(), "+919812345678");
    }

    fn with_default(raw: &str, cc: Option<&str>) -> Result<String, InvalidPhone> {
        PhoneNumber::parse_with_default(raw, cc).map(|p| p.as_str().to_owned())
    }

    #[test]
    fn international_forms_ignore_the_default() {
        for cc in [None, Some("91"), Some("+44")] {
            for s in [
                "+919812345678",
                "+91 (98123) 45-678",
                "00919812345678",
                "00 91 98123 45678",
                "919812345678",
            ] {
                assert_eq!(with_default(s, cc).unwrap(), "+919812345678", "{s} {cc:?}");
            }
        }
    }

    #[test]
    fn national_forms_take_the_default_country_code() {
        for cc in [Some("91"), Some("+91"), Some(" 91 ")] {
            for s in [
                "09812345678",
                "098123-45678",
                "9812345678",
                "(981) 234-5678",
            ] {
                assert_eq!(with_default(s, cc).unwrap(), "+919812345678", "{s} {cc:?}");
            }
        }
        assert_eq!(
            with_default("4155552671", Some("1")).unwrap(),
            "+14155552671"
        );
        assert_eq!(
            with_default("07700 900123", Some("44")).unwrap(),
            "+447700900123"
        );
        assert_eq!(
            with_default("501234567", Some("971")).unwrap(),
            "+971501234567"
        );
        // Italian numbers keep their 0; mobiles have none.
        assert_eq!(
            with_default("06 1234 5678", Some("39")).unwrap(),
            "+390612345678"
        );
        assert_eq!(
            with_default("312 345 6789", Some("39")).unwrap(),
            "+393123456789"
        );
        // A country without a fixed mobile length: only the trunk 0 marks a national number.
        assert_eq!(
            with_default("0812-3456-7890", Some("62")).unwrap(),
            "+6281234567890"
        );
        assert_eq!(
            with_default("6281234567890", Some("62")).unwrap(),
            "+6281234567890"
        );
    }

    #[test]
    fn without_a_default_national_forms_are_refused() {
        for s in ["09812345678", "0 98123 45678"] {
            assert!(with_default(s, None).is_err(), "{s}");
        }
        // Ten digits without a default read as country code first, as `parse` does.
        assert_eq!(with_default("9812345678", None).unwrap(), "+9812345678");
    }

    #[test]
    fn parse_with_default_rejects_what_is_no_number() {
        for (s, cc) in [
            ("", Some("91")),
            ("0", Some("91")),
            ("00", None),
            ("000919812345678", None),
            ("98123x45678", Some("91")),
            ("+0919812345678", Some("91")),
            ("0981234567890123456", Some("91")),
            ("12345", Some("91")),
        ] {
            assert!(with_default(s, cc).is_err(), "{s} {cc:?}");
        }
        let e = PhoneNumber::parse_with_default(" 0abc ", Some("91")).unwrap_err();
        assert_eq!(e.0, " 0abc ", "the error quotes the input as written");
    }

    #[test]
    fn an_invalid_default_is_ignored() {
        for cc in ["", "0", "1234", "9a", "+"] {
            assert!(!is_country_code(cc.trim_start_matches('+')), "{cc}");
            assert!(with_default("09812345678", Some(cc)).is_err(), "{cc}");
        }
        assert!(is_country_code("971"));
    }

    #[test]
    fn rejects_non_numbers() {
        for s in [
            "",
            "+",
            "12345",
            "+0919812345678",
            "91981234567x",
            "1234567890123456",
        ] {
            assert!(PhoneNumber::parse(s).is_err(), "{s}");
        }
    }
}
