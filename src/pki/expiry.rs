//! Expiry thresholds for `sfdiag check`: (notBefore, notAfter, at) -> OK / WARNING / CRITICAL.
//!
//! Pure: the moment to judge at is an argument, and nothing here reads files or formats a
//! report. The monitoring-plugin convention decides the order (OK < WARNING < CRITICAL <
//! UNKNOWN) and the exit codes 0..3; "within N days" means notAfter comes less than N days
//! after `at`. A certificate is not yet valid when `at` is before notBefore and expired from
//! notAfter on: notBefore is inside the window, notAfter is not, as OpenSSL's `X509_cmp_time`
//! decides it (`openssl verify -attime notAfter` fails with err 10, "certificate has
//! expired"), so a report never calls valid what the chain check calls expired.

use std::fmt;

use time::{Duration, OffsetDateTime};

/// The two thresholds, in days.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// WARNING when notAfter is less than this many days away (default 90).
    pub warn_days: u32,
    /// CRITICAL when notAfter is less than this many days away (default 30).
    pub critical_days: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            warn_days: 90,
            critical_days: 30,
        }
    }
}

/// A monitoring-plugin status; `Ord` puts the worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Exit 0.
    Ok,
    /// Exit 1.
    Warning,
    /// Exit 2.
    Critical,
    /// Exit 3: the input could not be read.
    Unknown,
}

impl Status {
    /// The plugin exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    /// `OK`, `WARNING`, `CRITICAL`, `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where `at` falls in the validity window, in whole days.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// `at` is before notBefore; it starts in this many days.
    NotYetValid {
        /// Whole days until notBefore.
        starts_in_days: i64,
    },
    /// Valid at `at` for this many more whole days.
    Valid {
        /// Whole days until notAfter.
        days_left: i64,
    },
    /// Expired at or before `at`.
    Expired {
        /// Days since notAfter, counted up: 1 during the first 24 hours from notAfter on
        /// (notAfter itself included), so never 0; always `-days_left`.
        days_ago: i64,
    },
}

impl fmt::Display for Standing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Standing::NotYetValid { starts_in_days } => {
                write!(
                    f,
                    "not yet valid, starts in {starts_in_days} {}",
                    day_s(starts_in_days)
                )
            }
            Standing::Valid { days_left } => {
                write!(f, "valid for {days_left} more {}", day_s(days_left))
            }
            Standing::Expired { days_ago } => {
                write!(f, "expired {days_ago} {} ago", day_s(days_ago))
            }
        }
    }
}

fn day_s(n: i64) -> &'static str {
    if n == 1 { "day" } else { "days" }
}

/// The verdict on one certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// OK, WARNING or CRITICAL.
    pub status: Status,
    /// Where `at` falls.
    pub standing: Standing,
    /// Whole days from `at` to notAfter, rounded down: at least -1 once expired (from
    /// notAfter on), so an expired certificate never shows 0.
    pub days_left: i64,
}

/// Judges a validity window at `at`.
pub fn assess(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    at: OffsetDateTime,
    t: &Thresholds,
) -> Assessment {
    let left = not_after - at;
    let expired = at >= not_after;
    // Floor, not truncation: 12 hours past notAfter is day -1, as 12 hours before it is day 0.
    let days_left = if expired {
        left.whole_seconds().div_euclid(86_400).min(-1)
    } else {
        left.whole_days()
    };
    let standing = if at < not_before {
        Standing::NotYetValid {
            starts_in_days: (not_before - at).whole_days(),
        }
    } else if expired {
        Standing::Expired {
            days_ago: -days_left,
        }
    } else {
        Standing::Valid { days_left }
    };
    let status = match standing {
        Standing::NotYetValid { .. } | Standing::Expired { .. } => Status::Critical,
        Standing::Valid { .. } if left < Duration::days(t.critical_days.into()) => Status::Critical,
        Standing::Valid { .. } if left < Duration::days(t.warn_days.into()) => Status::Warning,
        Standing::Valid { .. } => Status::Ok,
    };
    Assessment {
        status,
        standing,
        days_left,
    }
}

/// The worst of several statuses (OK when there are none).
pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Status {
    statuses.into_iter().max().unwrap_or(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const AT: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);

    fn judge(nb_days: i64, na_days: i64) -> Assessment {
        assess(
            AT + Duration::days(nb_days),
            AT + Duration::days(na_days),
            AT,
            &Thresholds::default(),
        )
    }

    #[test]
    fn the_four_bands() {
        assert_eq!(judge(-1, 3650).status, Status::Ok);
        assert_eq!(judge(-1, 60).status, Status::Warning);
        assert_eq!(judge(-1, 20).status, Status::Critical);
        let e = judge(-3650, -12);
        assert_eq!(e.status, Status::Critical);
        assert_eq!(e.standing, Standing::Expired { days_ago: 12 });
        assert_eq!(e.days_left, -12);
        let n = judge(5, 400);
        assert_eq!(n.status, Status::Critical);
        assert_eq!(n.standing, Standing::NotYetValid { starts_in_days: 5 });
    }

    #[test]
    fn boundaries() {
        // Exactly 90 / 30 days left: not "within" the threshold.
        assert_eq!(judge(-1, 90).status, Status::Ok);
        assert_eq!(judge(-1, 30).status, Status::Warning);
        let almost = assess(
            AT - Duration::DAY,
            AT + Duration::days(30) - Duration::SECOND,
            AT,
            &Thresholds::default(),
        );
        assert_eq!(almost.status, Status::Critical);
        assert_eq!(almost.days_left, 29);
        // One second before notAfter is valid for 0 more days; notAfter itself is expired
        // (OpenSSL's err 10), and the first 24 hours after it are day -1, never 0.
        let at_ = |na: OffsetDateTime| assess(AT - Duration::DAY, na, AT, &Thresholds::default());
        let last = at_(AT + Duration::SECOND);
        assert_eq!(last.standing, Standing::Valid { days_left: 0 });
        assert_eq!(last.status, Status::Critical);
        for ago in [
            Duration::ZERO,
            Duration::SECOND,
            Duration::hours(12),
            Duration::DAY,
        ] {
            let e = at_(AT - ago);
            assert_eq!(e.standing, Standing::Expired { days_ago: 1 }, "{ago}");
            assert_eq!((e.days_left, e.status), (-1, Status::Critical), "{ago}");
        }
        let e = at_(AT - Duration::DAY - Duration::SECOND);
        assert_eq!(
            (e.standing, e.days_left),
            (Standing::Expired { days_ago: 2 }, -2)
        );
        assert_eq!(judge(-1, 0).standing.to_string(), "expired 1 day ago");
        // notBefore itself is inside.
        assert_eq!(judge(0, 400).standing, Standing::Valid { days_left: 400 });
    }

    #[test]
    fn wording_and_worst() {
        assert_eq!(
            Standing::Valid { days_left: 1 }.to_string(),
            "valid for 1 more day"
        );
        assert_eq!(
            Standing::Expired { days_ago: 540 }.to_string(),
            "expired 540 days ago"
        );
        assert_eq!(
            worst([Status::Ok, Status::Critical, Status::Warning]),
            Status::Critical
        );
        assert_eq!(worst([]), Status::Ok);
        assert_eq!(Status::Unknown.exit_code(), 3);
    }
}
