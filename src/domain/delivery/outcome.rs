//! What one forwarding attempt's result means: delivered, try again (and when the receiver
//! asked), disable the endpoint, or give up.

use std::time::Duration;

use time::PrimitiveDateTime;
use time::macros::format_description;

use crate::domain::time::Timestamp;

/// The longest `Retry-After` honoured: a receiver cannot park a delivery for days, and a
/// bogus date far ahead must not look like one.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Why no response came back. The forwarder maps its HTTP client's error to one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportError {
    /// No complete response within the request timeout.
    Timeout,
    /// The TCP connection was refused or reset while connecting.
    Connect,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake failed (certificate expired, wrong name, ...).
    Tls,
    /// The host resolved, at connect time, to an address wagate does not send to (loopback,
    /// private, link-local, metadata): DNS changed after the endpoint was accepted.
    NotAllowed,
    /// Anything else, such as the connection dropping mid-response.
    Other,
}

impl TransportError {
    /// The word recorded with the attempt and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportError::Timeout => "timeout",
            TransportError::Connect => "connect",
            TransportError::Dns => "dns",
            TransportError::Tls => "tls",
            TransportError::NotAllowed => "not_allowed",
            TransportError::Other => "other",
        }
    }
}

/// What an attempt's result means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: done.
    Delivered,
    /// Worth trying again later; `after` is what the receiver asked for in `Retry-After`.
    Retry { after: Option<Duration> },
    /// 410 Gone: the receiver says the endpoint is no more; disable it until its owner says
    /// otherwise.
    Disable,
    /// Trying again would get the same answer: dead-letter.
    Permanent,
}

impl Outcome {
    /// The meaning of an HTTP response. `retry_after` is the `Retry-After` header, read only on
    /// 429 and 503 (where HTTP defines it for this), as delta-seconds or an HTTP-date relative
    /// to `now`, and capped at [`MAX_RETRY_AFTER`].
    ///
    /// - 2xx → delivered;
    /// - 408, 429, 5xx → retry;
    /// - 410 → disable;
    /// - 3xx → permanent, since redirects are not followed (following one would let a
    ///   receiver point wagate at an address its URL check refused);
    /// - other 4xx, and codes outside 200..=599 → permanent.
    pub fn of_response(status: u16, retry_after: Option<&str>, now: Timestamp) -> Outcome {
        match status {
            200..=299 => Outcome::Delivered,
            429 | 503 => Outcome::Retry {
                after: retry_after.and_then(|v| parse_retry_after(v, now)),
            },
            408 | 500..=599 => Outcome::Retry { after: None },
            410 => Outcome::Disable,
            _ => Outcome::Permanent,
        }
    }

    /// The meaning of a request that got no response. Transport failures are transient, except
    /// a target that now resolves to a refused address: retrying would only ask DNS again, and
    /// a dead-lettered delivery can be redriven once the owner fixes the URL.
    pub fn of_transport(error: TransportError) -> Outcome {
        match error {
            TransportError::NotAllowed => Outcome::Permanent,
            TransportError::Timeout
            | TransportError::Connect
            | TransportError::Dns
            | TransportError::Tls
            | TransportError::Other => Outcome::Retry { after: None },
        }
    }

    /// Does this count against the endpoint's circuit breaker? Only results that say the
    /// endpoint is down or overloaded (those worth a retry). The seed also counted other 4xx;
    /// wagate does not: an endpoint answering 400 is up, and opening its breaker would only
    /// delay the dead-lettering of the deliveries it refuses.
    pub fn is_endpoint_failure(self) -> bool {
        matches!(self, Outcome::Retry { .. })
    }

    /// The word used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Disable => "disable",
            Outcome::Permanent => "permanent",
        }
    }
}

/// Reads a `Retry-After` value: delta-seconds, or an HTTP-date (the preferred IMF-fixdate
/// `Sun, 06 Nov 1994 08:49:37 GMT`, or asctime `Sun Nov  6 08:49:37 1994`; the obsolete
/// two-digit-year RFC 850 form is not read). A date in the past means "now" (zero); the result
/// is capped at [`MAX_RETRY_AFTER`]; anything unreadable is `None` (the schedule applies).
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still "a very long time", which the cap handles.
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = parse_http_date(value)?;
        Duration::from_millis(u64::try_from(at.millis().saturating_sub(now.millis())).unwrap_or(0))
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

fn parse_http_date(value: &str) -> Option<Timestamp> {
    let imf_fixdate = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let asctime = format_description!(
        "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
    );
    let t = PrimitiveDateTime::parse(value, &imf_fixdate)
        .or_else(|_| PrimitiveDateTime::parse(value, &asctime))
        .ok()?
        .assume_utc();
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .ok()
        .map(Timestamp::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sun, 06 Nov 1994 08:49:37 GMT.
    const NOW: Timestamp = Timestamp::from_millis(784_111_777_000);

    fn response(status: u16) -> Outcome {
        Outcome::of_response(status, None, NOW)
    }

    #[test]
    fn responses_are_classified() {
        let retry = Outcome::Retry { after: None };
        for (status, want) in [
            (200, Outcome::Delivered),
            (202, Outcome::Delivered),
            (204, Outcome::Delivered),
            (299, Outcome::Delivered),
            (408, retry),
            (429, retry),
            (500, retry),
            (502, retry),
            (503, retry),
            (504, retry),
            (599, retry),
            (410, Outcome::Disable),
            (301, Outcome::Permanent),
            (302, Outcome::Permanent),
            (307, Outcome::Permanent),
            (400, Outcome::Permanent),
            (401, Outcome::Permanent),
            (403, Outcome::Permanent),
            (404, Outcome::Permanent),
            (409, Outcome::Permanent),
            (413, Outcome::Permanent),
            (100, Outcome::Permanent),
            (600, Outcome::Permanent),
        ] {
            assert_eq!(response(status), want, "{status}");
        }
    }

    #[test]
    fn transport_errors_are_classified() {
        use TransportError::*;
        for e in [Timeout, Connect, Dns, Tls, Other] {
            assert_eq!(
                Outcome::of_transport(e),
                Outcome::Retry { after: None },
                "{e:?}"
            );
        }
        assert_eq!(Outcome::of_transport(NotAllowed), Outcome::Permanent);
        assert_eq!(Timeout.as_str(), "timeout");
        assert_eq!(NotAllowed.as_str(), "not_allowed");
    }

    #[test]
    fn retry_after_is_read_on_429_and_503_only() {
        let after = |s| Outcome::Retry {
            after: Some(Duration::from_secs(s)),
        };
        assert_eq!(Outcome::of_response(429, Some("120"), NOW), after(120));
        assert_eq!(Outcome::of_response(503, Some(" 7 "), NOW), after(7));
        assert_eq!(
            Outcome::of_response(503, Some("Sun, 06 Nov 1994 08:50:37 GMT"), NOW),
            after(60)
        );
        assert_eq!(
            Outcome::of_response(500, Some("120"), NOW),
            Outcome::Retry { after: None }
        );
        assert_eq!(
            Outcome::of_response(429, Some("soon"), NOW),
            Outcome::Retry { after: None }
        );
        assert_eq!(
            Outcome::of_response(200, Some("120"), NOW),
            Outcome::Delivered
        );
    }

    #[test]
    fn retry_after_values() {
        let secs = |v: &str| parse_retry_after(v, NOW).map(|d| d.as_secs());
        assert_eq!(secs("0"), Some(0));
        assert_eq!(secs("3599"), Some(3599));
        assert_eq!(secs("86400"), Some(3600), "capped");
        assert_eq!(secs("99999999999999999999999"), Some(3600), "capped");
        assert_eq!(secs("Sun, 06 Nov 1994 08:49:47 GMT"), Some(10));
        assert_eq!(secs("Sun Nov  6 08:49:47 1994"), Some(10), "asctime");
        assert_eq!(secs("Sun, 06 Nov 1994 08:49:00 GMT"), Some(0), "past");
        assert_eq!(secs("Mon, 07 Nov 1994 08:49:37 GMT"), Some(3600), "capped");
        for bad in [
            "",
            "-5",
            "1.5",
            "+5",
            "5s",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "tomorrow",
        ] {
            assert_eq!(parse_retry_after(bad, NOW), None, "{bad:?}");
        }
    }

    #[test]
    fn only_retries_count_against_the_breaker() {
        assert!(response(503).is_endpoint_failure());
        assert!(Outcome::of_transport(TransportError::Timeout).is_endpoint_failure());
        assert!(!response(200).is_endpoint_failure());
        assert!(!response(400).is_endpoint_failure());
        assert!(!response(410).is_endpoint_failure());
        assert_eq!(response(503).as_str(), "retry");
    }
}
