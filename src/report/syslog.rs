//! The appliance's messages-log line: `Oct  7 09:14:51 HOST SF-IMS[analyze]: [frame N] ...`.
//!
//! Stamps are the packet's time in UTC, in syslog's `%b %e %H:%M:%S` form (day padded with a
//! space), so lines from a capture sort and grep like the appliance's own log.

use std::fmt::Write as _;

use crate::capture::Timestamp;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Oct  7 09:14:51` for a capture timestamp (UTC).
pub fn stamp(ts: &Timestamp) -> String {
    let Some(dt) = ts.to_datetime() else {
        return ts.to_string();
    };
    let mut s = String::with_capacity(15);
    let month = MONTHS[usize::from(u8::from(dt.month())) - 1];
    let _ = write!(
        s,
        "{month} {:>2} {:02}:{:02}:{:02}",
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    s
}

/// The start of a messages-log line for `frame`, logged by `host`.
pub(super) fn prefix(ts: &Timestamp, host: &str, frame: Option<u64>) -> String {
    let mut s = format!("{} {host} SF-IMS[analyze]: ", stamp(ts));
    if let Some(f) = frame {
        let _ = write!(s, "[frame {f}] ");
    }
    s.push_str("sftunnel:sf_ssl ");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_like_syslog() {
        // 2024-10-07T09:14:51Z
        assert_eq!(stamp(&Timestamp::new(1728292491, 5)), "Oct  7 09:14:51");
        assert_eq!(stamp(&Timestamp::new(1732616400, 0)), "Nov 26 10:20:00");
    }
}
