//! Expiry thresholds for `sfdiag check`: (notBefore, notAfter, at) -> OK / WARNING / CRITICAL.
//!
//! Pure: the moment to judge at is an argument, and nothing here reads files or formats a
//! report. The monitoring-plugin convention decides the order (OK < WARNING < CRITICAL <
//! UNKNOWN) and the exit codes 0..3; "within N days" means notAfter comes less than N days
//! after `at`. A certificate is expired when `at` is after notAfter and not yet valid when
//! `at` is before notBefore (both bounds themselves are inside, as in OpenSSL and webpki).

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

/// Where `at` falls in the validity window, in whole days (rounded toward zero).
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
    /// Expired this many whole days before `at`.
    Expired {
        /// Whole days since notAfter.
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
    /// Whole days from `at` to notAfter (negative once expired).
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
    let days_left = left.whole_days();
    let standing = if at < not_before {
        Standing::NotYetValid {
            starts_in_days: (not_before - at).whole_days(),
        }
    } else if at > not_after {
        Standing::Expired {
            days_ago: (at - not_after).whole_days(),
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
        // notAfter itself is still valid; one second later is expired 0 days ago.
        assert_eq!(judge(-1, 0).standing, Standing::Valid { days_left: 0 });
        let just = assess(
            AT - Duration::DAY,
            AT - Duration::SECOND,
            AT,
            &Thresholds::default(),
        );
        assert_eq!(just.standing, Standing::Expired { days_ago: 0 });
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
