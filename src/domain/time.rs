//! Timestamps as Unix milliseconds: one integer type in both databases, formatted only at the edge.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A provider's event time that is not a time wagate can represent: not a number or RFC 3339
/// date, or outside 1970 to 9999. Holds (the start of) the value as sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a time between 1970 and 9999")]
pub struct InvalidTimestamp(pub String);

/// Milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    pub fn now() -> Timestamp {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(now.as_millis()).unwrap_or(i64::MAX))
    }

    /// An RFC 3339 time, as API callers write one.
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let t = OffsetDateTime::parse(s.trim(), &Rfc3339).ok()?;
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
            .ok()
            .map(Timestamp)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// This time moved `d` later, saturating.
    pub fn plus(self, d: std::time::Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// The last millisecond of the year 9999: the latest time the API can write in RFC 3339.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// Reads a provider's event time: Unix seconds or milliseconds (as number or string, told
    /// apart by magnitude) or RFC 3339. `Ok(None)` only when there is no time at all (the field
    /// is absent, `null`, or an empty string, which Datagen writes for "absent"); a value that is
    /// not a time, or one outside 1970 to 9999, is an error, so the event can be quarantined
    /// rather than stored with a time it did not have.
    pub fn parse_provider(
        value: &serde_json::Value,
    ) -> Result<Option<Timestamp>, InvalidTimestamp> {
        let bad = || InvalidTimestamp(value.to_string().chars().take(64).collect());
        let parsed = match value {
            serde_json::Value::Null => return Ok(None),
            serde_json::Value::String(s) if s.trim().is_empty() => return Ok(None),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Self::from_epoch_guess(i),
                None => n.as_f64().and_then(Self::from_epoch_guess_f64),
            },
            serde_json::Value::String(s) => {
                let s = s.trim();
                if let Ok(n) = s.parse::<i64>() {
                    Self::from_epoch_guess(n)
                } else if let Ok(f) = s.parse::<f64>() {
                    Self::from_epoch_guess_f64(f)
                } else {
                    OffsetDateTime::parse(s, &Rfc3339).ok().and_then(|t| {
                        Self::in_range(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()?)
                    })
                }
            }
            _ => None,
        };
        parsed.map(Some).ok_or_else(bad)
    }

    fn from_epoch_guess(n: i64) -> Option<Timestamp> {
        // Seconds until the year 5138; anything larger is already milliseconds.
        match n {
            n if n < 100_000_000_000 => Self::in_range(n.checked_mul(1000)?),
            n => Self::in_range(n),
        }
    }

    /// Fractions of a second are kept down to the millisecond; NaN, infinities and values
    /// beyond `i64` are refused rather than saturated.
    fn from_epoch_guess_f64(f: f64) -> Option<Timestamp> {
        if !f.is_finite() || f.abs() >= 9.0e15 {
            return None;
        }
        if f.abs() < 100_000_000_000.0 {
            Self::in_range((f * 1000.0).floor() as i64)
        } else {
            Self::in_range(f.floor() as i64)
        }
    }

    /// After the epoch (a WhatsApp event at or before it is not a time but a zero) and no later
    /// than [`Timestamp::MAX`].
    fn in_range(ms: i64) -> Option<Timestamp> {
        (1..=Self::MAX.0).contains(&ms).then_some(Timestamp(ms))
    }

    /// RFC 3339 with millisecond precision, as the API returns it.
    pub fn to_rfc3339(self) -> String {
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let format = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        t.format(&format).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn provider_times() {
        let secs = Some(Timestamp::from_millis(1_732_700_300_000));
        assert_eq!(Timestamp::parse_provider(&json!("1732700300")), Ok(secs));
        assert_eq!(Timestamp::parse_provider(&json!(1732700300)), Ok(secs));
        assert_eq!(Timestamp::parse_provider(&json!("1732700300000")), Ok(secs));
        assert_eq!(
            Timestamp::parse_provider(&json!("2024-11-27T09:38:20Z")),
            Ok(secs)
        );
        assert_eq!(
            Timestamp::parse_provider(&json!(1732700300.25)),
            Ok(Some(Timestamp::from_millis(1_732_700_300_250)))
        );
        assert_eq!(
            Timestamp::parse_provider(&json!("253402300799999")),
            Ok(Some(Timestamp::MAX))
        );
        assert_eq!(Timestamp::MAX.to_rfc3339(), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn absent_times_are_none() {
        for v in [json!(null), json!(""), json!("  ")] {
            assert_eq!(Timestamp::parse_provider(&v), Ok(None), "{v}");
        }
    }

    /// Today these would show as 1970 (out of range) or vanish (not a time): both are refused.
    #[test]
    fn unrepresentable_times_are_errors() {
        for v in [
            json!("yesterday"),
            json!("0"),
            json!(0),
            json!(-5),
            json!("-1732700300"),
            json!("253402300800000"),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(1e300),
            json!("1e300"),
            json!("NaN"),
            json!("inf"),
            json!("99999999999999999999999999"),
            json!("1969-12-31T23:59:59Z"),
            json!(true),
            json!([1732700300]),
            json!({"seconds": 1732700300}),
        ] {
            assert!(Timestamp::parse_provider(&v).is_err(), "{v}");
        }
        let e = Timestamp::parse_provider(&json!("x".repeat(500))).unwrap_err();
        assert!(e.0.len() <= 64, "the error quotes only the start");
    }

    #[test]
    fn formats_rfc3339_millis() {
        assert_eq!(
            Timestamp::from_millis(1_732_700_300_123).to_rfc3339(),
            "2024-11-27T09:38:20.123Z"
        );
    }
}
