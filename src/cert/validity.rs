//! Certificate validity times: UTCTime and GeneralizedTime to `OffsetDateTime` (UTC).
//!
//! Read leniently the way OpenSSL does (missing seconds, `+hhmm` offsets) so that a capture's odd
//! certificate still gets its dates; UTCTime years 50-99 are 19xx and 00-49 are 20xx (RFC 5280),
//! so `69` is 1969 as in the tls-pre-1970 capture.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::der::{self, Children};

const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// notBefore and notAfter of a Validity SEQUENCE at `range`; each `Err` names what was wrong.
pub(crate) fn parse_validity(
    data: &[u8],
    range: std::ops::Range<usize>,
) -> (
    Result<OffsetDateTime, String>,
    Result<OffsetDateTime, String>,
) {
    let Some(seq) = der::read_tlv(data, range.start).filter(|t| t.tag == der::SEQUENCE) else {
        let e = "validity is not a SEQUENCE".to_string();
        return (Err(e.clone()), Err(e));
    };
    let mut it = Children::new(data, seq.content);
    let mut one = |what: &str| match it.next() {
        Some(t) => parse_time(t.tag, &data[t.content]).map_err(|e| format!("{what}: {e}")),
        None => Err(format!("{what}: missing")),
    };
    let nb = one("notBefore");
    let na = one("notAfter");
    (nb, na)
}

/// Parses one Time (tag + content octets).
pub(crate) fn parse_time(tag: u8, s: &[u8]) -> Result<OffsetDateTime, String> {
    let (year, rest) = match tag {
        UTC_TIME => {
            let yy = digits(s, 0, 2)? as i32;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        GENERALIZED_TIME => (digits(s, 0, 4)? as i32, &s[4..]),
        t => {
            return Err(format!(
                "tag 0x{t:02x} is neither UTCTime nor GeneralizedTime"
            ));
        }
    };
    let month = digits(rest, 0, 2)?;
    let day = digits(rest, 2, 2)?;
    let hour = digits(rest, 4, 2)?;
    let minute = digits(rest, 6, 2)?;
    let mut pos = 8;
    let mut second = 0;
    if rest.get(pos).is_some_and(u8::is_ascii_digit) {
        second = digits(rest, pos, 2)?;
        pos += 2;
    }
    if tag == GENERALIZED_TIME && matches!(rest.get(pos), Some(b'.' | b',')) {
        pos += 1;
        while rest.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1; // fractions of a second do not matter for validity
        }
    }
    let offset = match rest.get(pos) {
        Some(b'Z') if pos + 1 == rest.len() => UtcOffset::UTC,
        Some(&sign @ (b'+' | b'-')) if pos + 5 == rest.len() => {
            let h = digits(rest, pos + 1, 2)? as i8;
            let m = digits(rest, pos + 3, 2)? as i8;
            let (h, m) = if sign == b'-' { (-h, -m) } else { (h, m) };
            UtcOffset::from_hms(h, m, 0).map_err(|e| e.to_string())?
        }
        _ => return Err(format!("bad time zone in {:?}", String::from_utf8_lossy(s))),
    };
    let month = Month::try_from(month as u8).map_err(|e| e.to_string())?;
    let date = Date::from_calendar_date(year, month, day as u8).map_err(|e| e.to_string())?;
    // 23:59:60 (a leap second) is legal in ASN.1; fold it onto :59 rather than refuse.
    let time = Time::from_hms(hour as u8, minute as u8, (second as u8).min(59))
        .map_err(|e| e.to_string())?;
    Ok(PrimitiveDateTime::new(date, time)
        .assume_offset(offset)
        .to_offset(UtcOffset::UTC))
}

fn digits(s: &[u8], at: usize, n: usize) -> Result<u32, String> {
    let part = s
        .get(at..at + n)
        .ok_or_else(|| format!("time {:?} too short", String::from_utf8_lossy(s)))?;
    part.iter().try_fold(0u32, |acc, &b| {
        if b.is_ascii_digit() {
            Ok(acc * 10 + u32::from(b - b'0'))
        } else {
            Err(format!(
                "non-digit in time {:?}",
                String::from_utf8_lossy(s)
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn utctime_century_window() {
        assert_eq!(
            parse_time(UTC_TIME, b"691231000000Z").unwrap(),
            datetime!(1969-12-31 00:00:00 UTC)
        );
        assert_eq!(
            parse_time(UTC_TIME, b"491231235959Z").unwrap(),
            datetime!(2049-12-31 23:59:59 UTC)
        );
        assert_eq!(
            parse_time(UTC_TIME, b"500101000000Z").unwrap(),
            datetime!(1950-01-01 00:00:00 UTC)
        );
    }

    #[test]
    fn generalized_and_lenient_forms() {
        assert_eq!(
            parse_time(GENERALIZED_TIME, b"20540601000000Z").unwrap(),
            datetime!(2054-06-01 00:00:00 UTC)
        );
        assert_eq!(
            parse_time(GENERALIZED_TIME, b"20540601000000.123Z").unwrap(),
            datetime!(2054-06-01 00:00:00 UTC)
        );
        assert_eq!(
            parse_time(UTC_TIME, b"3701161300+0100").unwrap(),
            datetime!(2037-01-16 12:00:00 UTC)
        );
        for bad in [
            &b""[..],
            b"99",
            b"991301000000Z",
            b"990101000000",
            b"9901010000xxZ",
        ] {
            assert!(parse_time(UTC_TIME, bad).is_err(), "{bad:?}");
        }
        assert!(parse_time(0x04, b"991231000000Z").is_err());
    }
}
