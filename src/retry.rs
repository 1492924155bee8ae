//! When a failed request is tried again, and after how long.
//!
//! The rules the official OpenAI and Anthropic SDKs follow: statuses 408,
//! 409, 429 and 5xx (529 "overloaded" included) and failures to get any
//! answer are retried; other 4xx never are. A `Retry-After` (or
//! `retry-after-ms`) of up to 60 s is obeyed; otherwise the wait doubles from
//! 0.5 s up to 8 s, shortened by up to a quarter at random so that many
//! clients do not retry in step. Nothing is retried once part of the reply
//! has been shown, so the user never sees text twice, and a timeout after
//! the whole request reached the provider is not retried either: the
//! provider may still be working on it (and billing for it), so a slow
//! answer is not asked for three times.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::http::HttpError;

/// Retries after the first attempt unless the provider's config says otherwise.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// The longest `Retry-After` obeyed; longer ones fall back to backoff.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Whether `err` is worth another attempt. `shown` says whether any of the
/// reply already reached the user.
pub fn is_retryable(err: &Error, shown: bool) -> bool {
    if shown {
        return false;
    }
    match err {
        Error::Status { status, .. } => matches!(status, 408 | 409 | 429 | 500..=599),
        Error::Http(HttpError::Unavailable(_)) => crate::http::AVAILABLE,
        Error::Http(HttpError::Timeout { phase, .. }) => !phase.request_delivered(),
        Error::Http(HttpError::Transport(_)) => true,
        Error::StreamInterrupted { .. } => true,
        // Only the errors that say "try later": not a refused request.
        Error::ProviderError { kind, .. } => matches!(
            kind.as_deref(),
            Some(
                "overloaded_error"
                    | "api_error"
                    | "rate_limit_error"
                    | "server_error"
                    | "rate_limit_exceeded"
            )
        ),
        _ => false,
    }
}

/// How long to wait before retry number `retry` (1 for the first retry).
/// `retry_after` is what the server asked for, if anything.
pub fn delay(retry: u32, retry_after: Option<Duration>) -> Duration {
    match retry_after {
        Some(wait) if wait <= MAX_RETRY_AFTER => wait,
        _ => {
            let doubled = FIRST_BACKOFF.saturating_mul(1 << retry.saturating_sub(1).min(16));
            let full = doubled.min(MAX_BACKOFF);
            // Up to a quarter shorter, at random.
            full * (4000 - jitter_thousandths()) / 4000
        }
    }
}

/// A number of thousandths in 0..1000 that differs from call to call and
/// process to process (integer math: no float code in the wasm build).
fn jitter_thousandths() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // Spread the low bits of the clock over the range (xorshift mix).
    let mut x = u64::from(nanos) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x % 1000) as u32
}

/// Reads `retry-after-ms` (OpenAI) or `Retry-After` (seconds, or an HTTP
/// date) from lower-case response headers.
pub fn retry_after(headers: &[(String, String)], now: SystemTime) -> Option<Duration> {
    let find = |name: &str| crate::http::header(headers, name).map(str::trim);
    if let Some(wait) = find("retry-after-ms").and_then(|v| decimal(v, Duration::from_millis(1))) {
        return Some(wait);
    }
    let value = find("retry-after")?;
    if let Some(wait) = decimal(value, Duration::from_secs(1)) {
        return Some(wait);
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A non-negative decimal such as `7` or `1.5`, in `unit`s, read without
/// floats (a float parser costs the wasm build ~8 KB of tables).
fn decimal(text: &str, unit: Duration) -> Option<Duration> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || whole.len() > 9 {
        return None;
    }
    let mut nanos_of_unit = 0u64;
    let mut place = 1_000_000_000u64;
    for d in fraction.bytes().take(9) {
        place /= 10;
        nanos_of_unit += u64::from(d - b'0') * place;
    }
    let unit_nanos = u64::try_from(unit.as_nanos()).ok()?;
    let part = Duration::from_nanos(nanos_of_unit * unit_nanos / 1_000_000_000);
    unit.checked_mul(whole.parse().ok()?)?.checked_add(part)
}

/// Parses an IMF-fixdate such as `Wed, 21 Oct 2015 07:28:00 GMT`.
fn parse_http_date(text: &str) -> Option<SystemTime> {
    let mut parts = text.split_whitespace().skip(1);
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    // A real Retry-After date is near now; an absurd year must not overflow.
    let year: i64 = parts
        .next()?
        .parse()
        .ok()
        .filter(|y| (1970..=9999).contains(y))?;
    let mut clock = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (clock.next()??, clock.next()??, clock.next()??);
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = crate::time::days_from_civil(year, month, day as u32);
    let secs = u64::try_from(days)
        .ok()?
        .checked_mul(86_400)?
        .checked_add(h * 3600 + m * 60 + s)?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Phase;

    fn status(code: u16) -> Error {
        Error::Status {
            provider: "p".into(),
            status: code,
            message: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn the_sdk_statuses_are_retried_and_other_client_errors_are_not() {
        for code in [408, 409, 429, 500, 502, 503, 529] {
            assert!(is_retryable(&status(code), false), "{code}");
            assert!(
                !is_retryable(&status(code), true),
                "{code} after text was shown"
            );
        }
        for code in [400, 404, 413, 422] {
            assert!(!is_retryable(&status(code), false), "{code}");
        }
        let key = Error::InvalidApiKey {
            provider: "p".into(),
            status: 401,
            message: String::new(),
        };
        assert!(!is_retryable(&key, false));
        let timeout = |phase| {
            Error::Http(HttpError::Timeout {
                phase,
                limit: Duration::from_secs(1),
            })
        };
        assert!(is_retryable(&timeout(Phase::Connect), false));
        assert!(is_retryable(&timeout(Phase::Send), false));
        // Found in review: a slow answer was requested (and billed) three times.
        assert!(!is_retryable(&timeout(Phase::FirstByte), false));
        assert!(!is_retryable(&timeout(Phase::BetweenBytes), false));
        let stream_error = |kind: &str| Error::ProviderError {
            provider: "p".into(),
            message: String::new(),
            kind: Some(kind.into()),
        };
        assert!(is_retryable(&stream_error("overloaded_error"), false));
        assert!(!is_retryable(&stream_error("invalid_request_error"), false));
        assert!(!is_retryable(
            &Error::Http(HttpError::Tls("x".into())),
            false
        ));
    }

    #[test]
    fn backoff_doubles_from_half_a_second_to_eight_with_jitter() {
        for (retry, full) in [
            (1, 0.5),
            (2, 1.0),
            (3, 2.0),
            (4, 4.0),
            (5, 8.0),
            (9, 8.0),
            (40, 8.0),
        ] {
            for _ in 0..20 {
                let d = delay(retry, None).as_millis();
                let full = (full * 1000.0) as u128;
                assert!(d <= full && d >= full * 3 / 4, "retry {retry}: {d} ms");
            }
        }
    }

    #[test]
    fn retry_after_is_obeyed_up_to_a_minute() {
        assert_eq!(
            delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(delay(1, Some(MAX_RETRY_AFTER)), MAX_RETRY_AFTER);
        assert!(delay(1, Some(Duration::from_secs(61))) <= Duration::from_millis(500));
    }

    #[test]
    fn retry_after_headers_in_every_form() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_470); // 07:27:50
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            retry_after(&h(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&h(&[("retry-after", "1.5")]), now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(&h(&[("retry-after-ms", "250"), ("retry-after", "9")]), now),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after(&h(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]), now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after(&h(&[("retry-after", "Wed, 21 Oct 2015 07:00:00 GMT")]), now),
            Some(Duration::ZERO)
        );
        for junk in [
            "soon",
            "-3",
            "NaN",
            "1e3",
            ".5",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            // Found in review: this year overflowed the clock and crashed weft.
            "Wed, 21 Oct 300000000000 07:28:00 GMT",
            "Wed, 21 Oct -5 07:28:00 GMT",
            "99999999999999999999",
            "",
        ] {
            assert_eq!(
                retry_after(&h(&[("retry-after", junk)]), now),
                None,
                "{junk}"
            );
        }
        assert_eq!(retry_after(&[], now), None);
    }
}
