//! The tunnel's clock: the system clock, or a lab clock that shows another time and keeps
//! running from there.
//!
//! This is the one place the tunnel reads "now". A lab clock is the system clock plus an offset,
//! so a lab can live ten years ahead (or jump forward) without touching the machine's clock; the
//! same `Clock` feeds rustls (as its `TimeProvider`), the certificate judge and the log stamps, so
//! all three agree on what time it is.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use rustls::time_provider::TimeProvider;
use rustls_pki_types::UnixTime;
use time::{Duration, OffsetDateTime};

/// A shared clock: clones see the same offset, so `set`/`advance` on one moves them all.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Nanoseconds added to the system clock; 0 for the real time.
    offset_ns: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A lab clock that shows `at` now and runs on from there.
    pub fn lab(at: OffsetDateTime) -> Self {
        let c = Self::default();
        c.set(at);
        c
    }

    /// A lab clock for `Some(at)`, the system clock for `None` (the `--at` flag).
    pub fn at(at: Option<OffsetDateTime>) -> Self {
        at.map_or_else(Self::system, Self::lab)
    }

    /// Makes the clock show `at` now.
    pub fn set(&self, at: OffsetDateTime) {
        let off = at - OffsetDateTime::now_utc();
        self.offset_ns
            .store(off.whole_nanoseconds() as i64, Ordering::Relaxed);
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        self.offset_ns
            .fetch_add(by.whole_nanoseconds() as i64, Ordering::Relaxed);
    }

    /// True when this clock does not show the system time.
    pub fn is_lab(&self) -> bool {
        self.offset_ns.load(Ordering::Relaxed) != 0
    }

    /// What time it is on this clock (UTC).
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + Duration::nanoseconds(self.offset_ns.load(Ordering::Relaxed))
    }
}

impl TimeProvider for Clock {
    fn current_time(&self) -> Option<UnixTime> {
        unix_time(self.now())
    }
}

/// `t` as rustls' `UnixTime`; `None` before 1970 (rustls then fails the handshake).
pub(super) fn unix_time(t: OffsetDateTime) -> Option<UnixTime> {
    let secs = u64::try_from(t.unix_timestamp()).ok()?;
    Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        secs,
    )))
}

/// rustls' `UnixTime` as a UTC date.
pub(super) fn from_unix_time(t: UnixTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.as_secs().min(i64::MAX as u64) as i64)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn lab_clock_shows_the_given_time_and_clones_share_it() {
        let c = Clock::lab(datetime!(2034-10-05 12:16:56 UTC));
        let shared = c.clone();
        assert!(c.is_lab());
        assert!((c.now() - datetime!(2034-10-05 12:16:56 UTC)).abs() < Duration::seconds(5));
        c.advance(Duration::days(1));
        assert!((shared.now() - datetime!(2034-10-06 12:16:56 UTC)).abs() < Duration::seconds(5));
        let ut = shared.current_time().unwrap();
        assert_eq!(from_unix_time(ut).year(), 2034);
    }

    #[test]
    fn system_clock_has_no_offset() {
        let c = Clock::system();
        assert!(!c.is_lab());
        assert!((c.now() - OffsetDateTime::now_utc()).abs() < Duration::seconds(5));
    }
}
