//! How sfdiag writes a time: RFC 3339 for reports, JSON and messages, and the syslog stamp that
//! opens a messages-log line. Both print UTC and never fail.

use std::fmt::Write as _;

use serde::Serializer;
use time::{OffsetDateTime, UtcOffset};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// RFC 3339 in UTC: `2034-10-05T12:16:56Z`.
///
/// The fraction of a second is printed only when there is one, with as many digits as it needs
/// and no trailing zeros (`.684766`, `.5`): a certificate's times stay whole, a packet's keep
/// the capture's precision. Pass a clock reading through [`whole_seconds`] first where a
/// report shows it to the second. Infallible: a year RFC 3339 cannot hold (below 0) is written
/// with its sign, as ISO 8601's expanded form does (`-0001-01-01T00:00:00Z`).
pub fn rfc3339(t: &OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let mut s = String::with_capacity(30);
    let year = t.year();
    if year < 0 {
        s.push('-');
    }
    let _ = write!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        year.unsigned_abs(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond();
    if nanos != 0 {
        let digits = format!("{nanos:09}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Serializes an optional time as [`rfc3339`] or `null` (`#[serde(serialize_with = ...)]`).
pub fn serialize_opt_rfc3339<S: Serializer>(
    t: &Option<OffsetDateTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339(t)),
        None => s.serialize_none(),
    }
}

/// `t` without its fraction of a second: what a status or a lab line shows of a running clock.
pub fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    // Infallible: 0 is always a valid nanosecond.
    t.replace_nanosecond(0).unwrap_or(t)
}

/// The syslog stamp of a messages-log line, in UTC: `Oct  7 09:14:51` (`%b %e %H:%M:%S`, the
/// day padded with a space), so lines sort and grep like the appliance's own log.
pub fn syslog_stamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A date as OpenSSL prints one (`openssl x509 -enddate`, `ASN1_TIME_print`), in UTC:
/// `Oct  9 10:12:50 2034 GMT` (`%b %e %H:%M:%S %Y GMT`, the day padded with a space), the
/// form `generate_certs.pl` quotes the InternalCA's end in.
pub fn openssl_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!("{} {} GMT", syslog_stamp(t), t.year())
}

/// A time as the FTD CLI's `sftunnel-status-brief` prints one, in UTC (C's `ctime` and a zone):
/// `Wed Jun 10 14:27:12 2020 UTC` (`%a %b %e %H:%M:%S %Y UTC`).
pub fn ctime_utc(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{} {} {} UTC",
        WEEKDAYS[usize::from(t.weekday().number_days_from_monday())],
        syslog_stamp(t),
        t.year()
    )
}

/// The stamp `copy_sftunnel_certs.py` opens each line with, in UTC: `2024-11-12 14:07:36`.
pub fn script_stamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;
    use time::macros::datetime;

    #[test]
    fn rfc3339_is_utc_with_the_fraction_it_needs() {
        assert_eq!(
            rfc3339(&datetime!(2034-10-05 12:16:56 UTC)),
            "2034-10-05T12:16:56Z"
        );
        assert_eq!(
            rfc3339(&datetime!(2034-10-05 14:16:56 +02:00)),
            "2034-10-05T12:16:56Z"
        );
        assert_eq!(
            rfc3339(&datetime!(2015-10-22 20:31:09.684766 UTC)),
            "2015-10-22T20:31:09.684766Z"
        );
        assert_eq!(
            rfc3339(&datetime!(2015-10-22 20:31:09.5 UTC)),
            "2015-10-22T20:31:09.5Z"
        );
        assert_eq!(
            rfc3339(&datetime!(2015-10-22 20:31:09.000000001 UTC)),
            "2015-10-22T20:31:09.000000001Z"
        );
        assert_eq!(
            rfc3339(&datetime!(0000-01-01 00:00 UTC)),
            "0000-01-01T00:00:00Z"
        );
        assert_eq!(
            rfc3339(&datetime!(-0001-12-31 23:59:59 UTC)),
            "-0001-12-31T23:59:59Z"
        );
        assert_eq!(
            rfc3339(&datetime!(9999-12-31 23:59:59 UTC)),
            "9999-12-31T23:59:59Z"
        );
    }

    #[test]
    fn rfc3339_agrees_with_the_time_crate_where_it_can_format() {
        // Fractions, offsets and the edges of the range `time` formats, compared with its own
        // RFC 3339 of the same instant in UTC.
        for t in [
            datetime!(1970-01-01 00:00 UTC),
            datetime!(2026-11-26 15:21:19.827598 UTC),
            datetime!(2049-12-31 23:59:59.999999999 -11:30),
            datetime!(0001-01-01 00:00:00.1 +00:01),
            datetime!(2024-02-29 12:00 UTC),
        ] {
            let theirs = t.to_offset(UtcOffset::UTC).format(&Rfc3339).unwrap();
            assert_eq!(rfc3339(&t), theirs, "{t}");
        }
    }

    #[test]
    fn whole_seconds_drops_only_the_fraction() {
        assert_eq!(
            rfc3339(&whole_seconds(datetime!(2034-10-05 12:16:56.999 UTC))),
            "2034-10-05T12:16:56Z"
        );
    }

    #[test]
    fn openssl_and_ctime_dates_as_the_appliance_prints_them() {
        // APPLIANCE.md: `Current ca_root expires in 3646 days - at Oct  9 10:12:50 2034 GMT`.
        assert_eq!(
            openssl_date(datetime!(2034-10-09 10:12:50 UTC)),
            "Oct  9 10:12:50 2034 GMT"
        );
        assert_eq!(
            openssl_date(datetime!(2034-10-19 12:12:50 +02:00)),
            "Oct 19 10:12:50 2034 GMT"
        );
        // sftunnel-status-brief: `Wed Jun 10 14:27:12 2020 UTC`, `Mon Jun 15 09:02:08 2020 UTC`.
        assert_eq!(
            ctime_utc(datetime!(2020-06-10 14:27:12 UTC)),
            "Wed Jun 10 14:27:12 2020 UTC"
        );
        assert_eq!(
            ctime_utc(datetime!(2020-06-15 09:02:08.9 UTC)),
            "Mon Jun 15 09:02:08 2020 UTC"
        );
        assert_eq!(
            script_stamp(datetime!(2024-11-12 14:07:36.7 UTC)),
            "2024-11-12 14:07:36"
        );
        assert_eq!(
            ctime_utc(datetime!(2034-10-01 00:00 UTC)),
            "Sun Oct  1 00:00:00 2034 UTC"
        );
    }

    #[test]
    fn syslog_stamps_pad_the_day_and_are_utc() {
        assert_eq!(
            syslog_stamp(datetime!(2024-10-07 09:14:51.000005 UTC)),
            "Oct  7 09:14:51"
        );
        assert_eq!(
            syslog_stamp(datetime!(2024-11-26 10:20:00 UTC)),
            "Nov 26 10:20:00"
        );
        assert_eq!(
            syslog_stamp(datetime!(2024-01-01 01:00 +02:00)),
            "Dec 31 23:00:00"
        );
    }
}
