//! Certificate validity times: UTCTime and GeneralizedTime to `OffsetDateTime` (UTC).
//!
//! Read leniently the way OpenSSL 1.0.2 did (missing seconds, `+hhmm` offsets, fractions of a
//! second) so that a capture's odd certificate still gets its dates; UTCTime years 50-99 are
//! 19xx and 00-49 are 20xx (RFC 5280), so `69` is 1969 as in the tls-pre-1970 capture.
//!
//! OpenSSL 1.1.1 and later read only RFC 5280's fixed forms when they compare a validity time
//! (`X509_cmp_time`: exactly `YYMMDDHHMMSSZ` or `YYYYMMDDHHMMSSZ`, digits, a real calendar
//! date with seconds up to 59) and report anything else as a format error (13/14), so
//! [`strict_form`] says why a time that reads leniently is not in that form; the judge decides
//! per OpenSSL flavour which reading applies.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::der::{self, Children};

const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One validity time as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimeRead {
    /// The lenient reading, or what was wrong.
    pub value: Result<OffsetDateTime, String>,
    /// Why OpenSSL 1.1.1+ refuses it, when it is not RFC 5280's fixed form.
    pub lax: Option<&'static str>,
    /// The element is not a UTCTime/GeneralizedTime TLV at all: `d2i_X509` itself fails.
    pub structural: bool,
}

/// notBefore and notAfter of a Validity SEQUENCE at `range`; each `Err` names what was wrong.
pub(crate) fn parse_validity(data: &[u8], range: std::ops::Range<usize>) -> (TimeRead, TimeRead) {
    let broken = |e: &str| TimeRead {
        value: Err(e.to_string()),
        lax: None,
        structural: true,
    };
    let Some(seq) = der::read_tlv(data, range.start).filter(|t| t.tag == der::SEQUENCE) else {
        let e = "validity is not a SEQUENCE";
        return (broken(e), broken(e));
    };
    let mut it = Children::new(data, seq.content);
    let mut one = |what: &str| match it.next() {
        Some(t) => TimeRead {
            value: parse_time(t.tag, &data[t.content.clone()]).map_err(|e| format!("{what}: {e}")),
            lax: strict_form(t.tag, &data[t.content.clone()]).err(),
            structural: !matches!(t.tag, UTC_TIME | GENERALIZED_TIME),
        },
        None => broken(&format!("{what}: missing")),
    };
    let nb = one("notBefore");
    let na = one("notAfter");
    (nb, na)
}

/// Parses one Time (tag + content octets).
pub(crate) fn parse_time(tag: u8, s: &[u8]) -> Result<OffsetDateTime, String> {
    let (year, rest) = match tag {
        UTC_TIME => {
            let yy = i32::from(two_digits(s, 0)?);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        GENERALIZED_TIME => (i32::from(digits(s, 0, 4)?), &s[4..]),
        t => {
            return Err(format!(
                "tag 0x{t:02x} is neither UTCTime nor GeneralizedTime"
            ));
        }
    };
    let month = two_digits(rest, 0)?;
    let day = two_digits(rest, 2)?;
    let hour = two_digits(rest, 4)?;
    let minute = two_digits(rest, 6)?;
    let mut pos = 8;
    let mut second = 0;
    if rest.get(pos).is_some_and(u8::is_ascii_digit) {
        second = two_digits(rest, pos)?;
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
            // Two digits are at most 99, which an i8 holds.
            let h = two_digits(rest, pos + 1)?.cast_signed();
            let m = two_digits(rest, pos + 3)?.cast_signed();
            let (h, m) = if sign == b'-' { (-h, -m) } else { (h, m) };
            UtcOffset::from_hms(h, m, 0).map_err(|e| e.to_string())?
        }
        _ => return Err(format!("bad time zone in {:?}", String::from_utf8_lossy(s))),
    };
    let month = Month::try_from(month).map_err(|e| e.to_string())?;
    let date = Date::from_calendar_date(year, month, day).map_err(|e| e.to_string())?;
    // 23:59:60 (a leap second) is legal in ASN.1; fold it onto :59 rather than refuse.
    let time = Time::from_hms(hour, minute, second.min(59)).map_err(|e| e.to_string())?;
    Ok(PrimitiveDateTime::new(date, time)
        .assume_offset(offset)
        .to_offset(UtcOffset::UTC))
}

/// Why OpenSSL 1.1.1+'s `X509_cmp_time` refuses a time (tag + content octets) that may still
/// read leniently, or `Ok` when it is in RFC 5280's fixed form with a valid date.
pub(crate) fn strict_form(tag: u8, s: &[u8]) -> Result<(), &'static str> {
    let year_len = match tag {
        UTC_TIME => 2,
        GENERALIZED_TIME => 4,
        _ => return Err("neither UTCTime nor GeneralizedTime"),
    };
    if s.len() != year_len + 11 {
        return Err(match (tag, s.len() < year_len + 11) {
            (UTC_TIME, true) => "UTCTime without seconds",
            (UTC_TIME, false) => "UTCTime with a time zone offset",
            (_, true) => "GeneralizedTime without seconds",
            (_, false) => "GeneralizedTime with fractions of a second or an offset",
        });
    }
    let (body, zone) = s.split_at(s.len() - 1);
    if !body.iter().all(u8::is_ascii_digit) {
        return Err(if s.contains(&b'+') || s.contains(&b'-') {
            "time with a time zone offset"
        } else {
            "time with a non-digit"
        });
    }
    if zone != b"Z" {
        return Err("time not ending in Z");
    }
    // ASN1_TIME_diff -> ossl_asn1_time_to_tm checks every field's range and the day of month.
    // Two checked digits: at most 99.
    let num = |at: usize| (body[at] - b'0') * 10 + (body[at + 1] - b'0');
    let year = match tag {
        UTC_TIME => match num(0) {
            yy if yy >= 50 => 1900 + i32::from(yy),
            yy => 2000 + i32::from(yy),
        },
        _ => i32::from(num(0)) * 100 + i32::from(num(2)),
    };
    let f = year_len;
    let (month, day, hour, minute, second) =
        (num(f), num(f + 2), num(f + 4), num(f + 6), num(f + 8));
    let month = Month::try_from(month).map_err(|_| "month out of range")?;
    Date::from_calendar_date(year, month, day).map_err(|_| "day out of range")?;
    if hour > 23 || minute > 59 || second > 59 {
        return Err("time of day out of range");
    }
    Ok(())
}

/// Two decimal digits at `at` (0 to 99).
#[allow(clippy::cast_possible_truncation)] // why: two decimal digits are at most 99.
fn two_digits(s: &[u8], at: usize) -> Result<u8, String> {
    digits(s, at, 2).map(|v| v as u8)
}

/// `n` (at most 4) decimal digits at `at`.
fn digits(s: &[u8], at: usize, n: usize) -> Result<u16, String> {
    debug_assert!(n <= 4, "up to 9999 fits a u16");
    let part = s
        .get(at..at + n)
        .ok_or_else(|| format!("time {:?} too short", String::from_utf8_lossy(s)))?;
    part.iter().try_fold(0u16, |acc, &b| {
        if b.is_ascii_digit() {
            Ok(acc * 10 + u16::from(b - b'0'))
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

    #[test]
    fn strict_form_is_rfc5280_only() {
        assert_eq!(strict_form(UTC_TIME, b"991231235959Z"), Ok(()));
        assert_eq!(strict_form(GENERALIZED_TIME, b"20540601000000Z"), Ok(()));
        assert_eq!(strict_form(GENERALIZED_TIME, b"20240229120000Z"), Ok(()));
        for (tag, bad, why) in [
            (UTC_TIME, &b"9912312359Z"[..], "UTCTime without seconds"),
            (
                UTC_TIME,
                b"991231235959+0100",
                "UTCTime with a time zone offset",
            ),
            (
                UTC_TIME,
                b"9912312359+0100",
                "UTCTime with a time zone offset",
            ),
            (
                GENERALIZED_TIME,
                b"20540601000000.5Z",
                "GeneralizedTime with fractions",
            ),
            (UTC_TIME, b"991301000000Z", "month out of range"),
            (UTC_TIME, b"230229000000Z", "day out of range"),
            (UTC_TIME, b"991231235960Z", "time of day out of range"),
            (UTC_TIME, b"9912312359590", "time not ending in Z"),
        ] {
            let e = strict_form(tag, bad).unwrap_err();
            assert!(e.starts_with(why), "{bad:?}: {e}");
        }
        // What 1.1.1+ refuses still reads leniently (OpenSSL 1.0.2).
        assert!(parse_time(UTC_TIME, b"9912312359Z").is_ok());
        assert!(parse_time(UTC_TIME, b"991231235959+0100").is_ok());
    }
}
