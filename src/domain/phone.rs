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

    /// For values read back from the store, which only ever holds parsed numbers.
    pub fn from_trusted(s: String) -> PhoneNumber {
        PhoneNumber(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
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
