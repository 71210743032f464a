//! `--at`, `--not-before`, `--not-after` values: RFC 3339 (`2034-10-05T12:16:56Z`) or an offset
//! from a given "now" (`+90d`, `-3h`, `+30m`, `+10s`, `+2w`, `+1y` = 365 days).
//!
//! Parsing takes "now" as an argument so it never reads the clock itself.

use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

/// A time given on the command line, resolved against `now`.
pub fn parse_time(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let s = s.trim();
    if let Some(rest) = s
        .strip_prefix('+')
        .map(|r| (1i64, r))
        .or_else(|| s.strip_prefix('-').map(|r| (-1i64, r)))
    {
        let (sign, body) = rest;
        let d = parse_duration(body)?;
        return Ok(now + d * sign as i32);
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .map(|t| t.to_offset(time::UtcOffset::UTC))
        .map_err(|e| format!("invalid time {s:?}: expected RFC 3339 like 2034-10-05T12:16:56Z or an offset like +90d ({e})"))
}

/// `90d`, `3h`, `15m`, `10s`, `2w`, `1y` (365 days).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!("invalid offset {s:?}: expected a number and a unit s, m, h, d, w or y (e.g. 90d)")
    };
    let unit = s.chars().last().ok_or_else(bad)?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let d = match unit {
        's' => Duration::seconds(n),
        'm' => Duration::minutes(n),
        'h' => Duration::hours(n),
        'd' => Duration::days(n),
        'w' => Duration::weeks(n),
        'y' => Duration::days(365 * n),
        _ => return Err(bad()),
    };
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn rfc3339_and_offsets() {
        let now = datetime!(2026-11-26 12:00:00 UTC);
        assert_eq!(
            parse_time("2034-10-05T12:16:56Z", now).unwrap(),
            datetime!(2034-10-05 12:16:56 UTC)
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
    }
}
