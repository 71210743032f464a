//! The analyzer's messages-log lines: `Oct  7 09:14:51 HOST SF-IMS[analyze]: [frame N] ...`.
//!
//! The line and its escaping are [`crate::sftunnel::Line`], the one format the tunnel logs in
//! too; this module only fills it in for a finding: stamped with the packet's time (UTC), logged
//! by the host that received what the line is about, naming the frame.

use std::io::{self, Write};

use crate::capture::Timestamp;
use crate::sftunnel::{At, Component, Level, Line, Pid, TidOrFrame};

/// Writes one messages-log line (and its newline) about `frame` at `ts`, logged by `host`.
pub(super) fn write_line(
    w: &mut impl Write,
    ts: &Timestamp,
    host: &str,
    frame: Option<u64>,
    level: Level,
    text: &str,
) -> io::Result<()> {
    let raw;
    let at = match ts.to_datetime() {
        Some(t) => At::Time(t),
        None => {
            raw = ts.to_string();
            At::Raw(&raw)
        }
    };
    let line = Line {
        at,
        host,
        pid: Pid::Analyze,
        tid_or_frame: frame.map(TidOrFrame::Frame),
        component: Component::SfSsl,
        level,
        text,
    };
    writeln!(w, "{line}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_stamped_with_the_packet_time_or_the_raw_one() {
        let mut out = Vec::new();
        // 2024-10-07T09:14:51Z
        let ts = Timestamp::new(1728292491, 5);
        write_line(&mut out, &ts, "10.0.0.2", Some(4), Level::Info, "x").unwrap();
        // Beyond year 9999: no calendar date, so the capture's own number.
        let far = Timestamp::new(i64::MAX / 2, 0);
        write_line(&mut out, &far, "h", None, Level::Error, "y\nz").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "Oct  7 09:14:51 10.0.0.2 SF-IMS[analyze]: [frame 4] sftunnel:sf_ssl [INFO] x\n\
                 {far} h SF-IMS[analyze]: sftunnel:sf_ssl [ERROR] y\\x0Az\n"
            )
        );
    }
}
