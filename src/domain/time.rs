//! Timestamps as Unix milliseconds: one integer type in both databases, formatted only at the edge.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Timestamp {
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

    /// Reads a provider's event time: Unix seconds or milliseconds (as number or string, told
    /// apart by magnitude) or RFC 3339. Anything else is `None`: the event is still applied, with
    /// only its receive time.
    pub fn parse_provider(value: &serde_json::Value) -> Option<Timestamp> {
        match value {
            serde_json::Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .and_then(Self::from_epoch_guess),
            serde_json::Value::String(s) => {
                let s = s.trim();
                if let Ok(n) = s.parse::<i64>() {
                    Self::from_epoch_guess(n)
                } else if let Ok(f) = s.parse::<f64>() {
                    Self::from_epoch_guess(f as i64)
                } else {
                    OffsetDateTime::parse(s, &Rfc3339)
                        .ok()
                        .map(|t| Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64))
                }
            }
            _ => None,
        }
    }

    fn from_epoch_guess(n: i64) -> Option<Timestamp> {
        // Seconds until the year 5138; anything larger is already milliseconds.
        match n {
            n if n <= 0 => None,
            n if n < 100_000_000_000 => Some(Timestamp(n.checked_mul(1000)?)),
            n => Some(Timestamp(n)),
        }
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
        let secs = Timestamp::from_millis(1_732_700_300_000);
        assert_eq!(Timestamp::parse_provider(&json!("1732700300")), Some(secs));
        assert_eq!(Timestamp::parse_provider(&json!(1732700300)), Some(secs));
        assert_eq!(
            Timestamp::parse_provider(&json!("1732700300000")),
            Some(secs)
        );
        assert_eq!(
            Timestamp::parse_provider(&json!("2024-11-27T09:38:20Z")),
            Some(secs)
        );
        assert_eq!(Timestamp::parse_provider(&json!("yesterday")), None);
        assert_eq!(Timestamp::parse_provider(&json!(null)), None);
        assert_eq!(Timestamp::parse_provider(&json!("0")), None);
    }

    #[test]
    fn formats_rfc3339_millis() {
        assert_eq!(
            Timestamp::from_millis(1_732_700_300_123).to_rfc3339(),
            "2024-11-27T09:38:20.123Z"
        );
    }
}
