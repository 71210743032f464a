//! The appliance's messages-log line, the one format CLI.md promises for every line sfdiag
//! logs or reports:
//! `Sep 20 04:10:47 FTD-hostname SF-IMS[50792]: [51982] sftunnel:sf_ssl [ERROR] err 10:...`.
//!
//! The tunnel logs with a process and thread id, the analyzer with `SF-IMS[analyze]` and the
//! frame number; both go through [`Line`]'s `Display`, the only formatter. It escapes the host
//! and the text, since both may carry what a peer or a capture supplied (a
//! HELLO's name, a certificate's subject, an error message): a newline in them cannot start a
//! forged line, nor a control character reach a terminal.

use std::fmt;

use time::OffsetDateTime;

use super::escape::write_line_safe as write_escaped;
use super::timefmt::syslog_stamp;

/// Severity as the appliance prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// `DEBUG`: detail, for tracing a run.
    Debug,
    /// `INFO`: what happened, nothing wrong with it.
    Info,
    /// `WARN`: something off that the run goes on past.
    Warn,
    /// `ERROR`: a failure (a refused handshake, a dropped channel).
    Error,
}

impl Level {
    /// `DEBUG`, `INFO`, `WARN`, `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `sftunnel:<component>` part of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Component {
    /// TLS: handshakes, certificates, alerts.
    SfSsl,
    /// Peer bookkeeping: identity, pushes.
    SfPeers,
    /// Heartbeats.
    SfHeartbeat,
}

impl Component {
    /// `sf_ssl`, `sf_peers`, `sf_heartbeat`.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::SfSsl => "sf_ssl",
            Component::SfPeers => "sf_peers",
            Component::SfHeartbeat => "sf_heartbeat",
        }
    }
}

/// The `SF-IMS[...]` part: who logged the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pid {
    /// A (live or emulated) sftunnel process.
    Process(u32),
    /// `sfdiag analyze`, reporting what a capture shows: no process logged it.
    Analyze,
}

/// The bracket after `SF-IMS[...]: `: the logging thread, or the frame a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TidOrFrame {
    /// `[51982]`: the appliance logs per thread.
    Tid(u32),
    /// `[frame 17]`: the capture's frame number.
    Frame(u64),
}

/// When a line happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At<'a> {
    /// A time on the calendar, stamped as syslog does (UTC).
    Time(OffsetDateTime),
    /// A capture time beyond what a calendar date holds (a year past ±9999), printed as the
    /// capture gave it rather than invented.
    Raw(&'a str),
}

impl From<OffsetDateTime> for At<'_> {
    fn from(t: OffsetDateTime) -> Self {
        At::Time(t)
    }
}

/// One messages-log line, without its newline. `Display` is the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// The stamp that opens the line.
    pub at: At<'a>,
    /// The logging host (the emulated appliance's name, or the receiver's address in a report).
    pub host: &'a str,
    /// Who logged it (`SF-IMS[...]`).
    pub pid: Pid,
    /// `None` leaves the bracket out.
    pub tid_or_frame: Option<TidOrFrame>,
    /// The part of sftunnel it is about (`sftunnel:<component>`).
    pub component: Component,
    /// The `[LEVEL]` bracket.
    pub level: Level,
    /// What happened; escaped when printed.
    pub text: &'a str,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            At::Time(t) => f.write_str(&syslog_stamp(t))?,
            At::Raw(s) => write_escaped(f, s)?,
        }
        f.write_str(" ")?;
        write_escaped(f, self.host)?;
        match self.pid {
            Pid::Process(p) => write!(f, " SF-IMS[{p}]: ")?,
            Pid::Analyze => f.write_str(" SF-IMS[analyze]: ")?,
        }
        match self.tid_or_frame {
            Some(TidOrFrame::Tid(t)) => write!(f, "[{t}] ")?,
            Some(TidOrFrame::Frame(n)) => write!(f, "[frame {n}] ")?,
            None => {}
        }
        write!(
            f,
            "sftunnel:{} [{}] ",
            self.component.as_str(),
            self.level.as_str()
        )?;
        write_escaped(f, self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn tunnel_line<'a>(at: OffsetDateTime, host: &'a str, text: &'a str) -> Line<'a> {
        Line {
            at: at.into(),
            host,
            pid: Pid::Process(50792),
            tid_or_frame: Some(TidOrFrame::Tid(51982)),
            component: Component::SfSsl,
            level: Level::Error,
            text,
        }
    }

    #[test]
    fn the_line_of_cli_md() {
        let l = tunnel_line(
            datetime!(2024-09-20 04:10:47 UTC),
            "FTD-hostname",
            "err 10:certificate has expired",
        );
        assert_eq!(
            l.to_string(),
            "Sep 20 04:10:47 FTD-hostname SF-IMS[50792]: [51982] sftunnel:sf_ssl [ERROR] err 10:certificate has expired"
        );
    }

    #[test]
    fn analyzer_lines_name_the_frame_or_nothing() {
        let mut l = Line {
            at: datetime!(2024-10-07 09:14:51.000005 UTC).into(),
            host: "10.0.0.1",
            pid: Pid::Analyze,
            tid_or_frame: Some(TidOrFrame::Frame(17)),
            component: Component::SfSsl,
            level: Level::Info,
            text: "x",
        };
        assert_eq!(
            l.to_string(),
            "Oct  7 09:14:51 10.0.0.1 SF-IMS[analyze]: [frame 17] sftunnel:sf_ssl [INFO] x"
        );
        l.tid_or_frame = None;
        l.at = At::Raw("999999999999.000000000");
        l.component = Component::SfHeartbeat;
        l.level = Level::Warn;
        assert_eq!(
            l.to_string(),
            "999999999999.000000000 10.0.0.1 SF-IMS[analyze]: sftunnel:sf_heartbeat [WARN] x"
        );
    }

    #[test]
    fn a_peer_cannot_forge_a_line() {
        let forged = "ok\nSep 20 04:10:48 FMC SF-IMS[1]: [1] sftunnel:sf_peers [INFO] \
                      Peer ftd9 registered\r\x1b[2J\u{2028}\u{85}Zürich \\x0A";
        let l = tunnel_line(datetime!(2024-09-20 04:10:47 UTC), "ftd\n1", forged).to_string();
        assert_eq!(l.lines().count(), 1, "{l}");
        assert!(!l.chars().any(super::super::escape::is_unsafe), "{l}");
        assert!(
            l.starts_with("Sep 20 04:10:47 ftd\\x0A1 SF-IMS[50792]: "),
            "{l}"
        );
        assert!(
            l.ends_with(
                "[ERROR] ok\\x0ASep 20 04:10:48 FMC SF-IMS[1]: [1] sftunnel:sf_peers [INFO] \
                 Peer ftd9 registered\\x0D\\x1B[2J\\u{2028}\\x85Zürich \\x0A"
            ),
            "{l}"
        );
        let tab = tunnel_line(datetime!(2024-09-20 04:10:47 UTC), "h", "a\tb").to_string();
        assert!(tab.ends_with("[ERROR] a\\x09b"), "{tab}");
    }
}
