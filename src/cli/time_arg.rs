//! `--at`, `--not-before`, `--not-after` values: RFC 3339 (`2034-10-05T12:16:56Z`), a plain
//! date (`2034-10-05`, midnight UTC) or an offset from a given "now" (`+90d`, `-3h`, `+30m`,
//! `+10s`, `+2w`, `+1y` = 365 days).
//!
//! Parsing takes "now" as an argument so it never reads the clock itself. An offset that
//! leaves the range of times (`+999999999d`) is a usage error naming the value, never a panic.

use time::{
    Date, Duration, OffsetDateTime, format_description::well_known::Rfc3339,
    macros::format_description,
};

/// A time given on the command line, resolved against `now`.
pub(crate) fn parse_time(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let s = s.trim();
    if let Some((sign, body)) = s
        .strip_prefix('+')
        .map(|r| (1i64, r))
        .or_else(|| s.strip_prefix('-').map(|r| (-1i64, r)))
    {
        let d = parse_duration(body).map_err(|e| format!("invalid time {s:?}: {e}"))?;
        let d = if sign < 0 { d.checked_neg() } else { Some(d) };
        return d
            .and_then(|d| now.checked_add(d))
            .ok_or_else(|| format!("invalid time {s:?}: the offset is too large"));
    }
    if let Ok(d) = Date::parse(s, format_description!("[year]-[month]-[day]")) {
        return Ok(d.midnight().assume_utc());
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .map(|t| t.to_offset(time::UtcOffset::UTC))
        .map_err(|e| format!("invalid time {s:?}: expected RFC 3339 like 2034-10-05T12:16:56Z, a date like 2034-10-05 or an offset like +90d ({e})"))
}

/// `90d`, `3h`, `15m`, `10s`, `2w`, `1y` (365 days).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!("invalid offset {s:?}: expected a number and a unit s, m, h, d, w or y (e.g. 90d)")
    };
    let too_large = || format!("invalid offset {s:?}: too large");
    let unit = s.chars().last().ok_or_else(bad)?;
    let digits = &s[..s.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = digits.parse().map_err(|_| too_large())?;
    let secs_per = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        'y' => 365 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs_per)
        .map(Duration::seconds)
        .ok_or_else(too_large)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn rfc3339_dates_and_offsets() {
        let now = datetime!(2026-11-26 12:00:00 UTC);
        assert_eq!(
            parse_time("2034-10-05T12:16:56Z", now).unwrap(),
            datetime!(2034-10-05 12:16:56 UTC)
        );
        assert_eq!(
            parse_time("2030-01-01", now).unwrap(),
            datetime!(2030-01-01 00:00:00 UTC)
        );
        assert_eq!(
            parse_time("+90d", now).unwrap(),
            datetime!(2027-02-24 12:00:00 UTC)
        );
        assert_eq!(
            parse_time("-3h", now).unwrap(),
            datetime!(2026-11-26 09:00:00 UTC)
        );
        assert!(
            parse_time("tomorrow", now)
                .unwrap_err()
                .contains("tomorrow")
        );
        assert!(parse_time("+5x", now).is_err());
        assert!(parse_time("+d", now).is_err());
        assert!(parse_time("+-5d", now).is_err());
        assert!(parse_time("2030-02-30", now).is_err());
    }

    #[test]
    fn offsets_too_large_are_errors_not_panics() {
        let now = datetime!(2026-11-26 12:00:00 UTC);
        for s in [
            "+999999999d",
            "+99999999w",
            "+9999999y",
            "-9999999y",
            "+99999999999999999999d",
            "+9223372036854775807s",
            "-9223372036854775807y",
        ] {
            let e = parse_time(s, now).unwrap_err();
            assert!(e.contains(s) && e.contains("too large"), "{s}: {e}");
        }
        // The largest offsets that still land in time's range work.
        assert!(parse_time("+7000y", now).is_ok());
    }
}
