//! The time the domain runs on. One clock per `App`, passed to whatever asks "is it expired yet?"
//! (alert validation, the inbox, the sweeper), so that tests can stand at an exact instant
//! instead of sleeping until it comes.

use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

/// The system clock, unless pinned to an instant.
#[derive(Debug)]
pub struct Clock {
    /// Unix nanoseconds of the pinned instant, or [`FOLLOW_SYSTEM`].
    pinned: AtomicI64,
}

const FOLLOW_SYSTEM: i64 = i64::MIN;

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    pub fn system() -> Self {
        Clock {
            pinned: AtomicI64::new(FOLLOW_SYSTEM),
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        match self.pinned.load(Ordering::Relaxed) {
            FOLLOW_SYSTEM => OffsetDateTime::now_utc(),
            nanos => OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
                .expect("a pinned instant is a valid timestamp"),
        }
    }

    /// Stops the clock at `at` (a test seam; the server never pins its clock).
    pub fn pin(&self, at: OffsetDateTime) {
        let nanos = i64::try_from(at.unix_timestamp_nanos())
            .expect("pinned instants lie between 1677 and 2262");
        self.pinned.store(nanos, Ordering::Relaxed);
    }

    /// Follows the system clock again.
    pub fn unpin(&self) {
        self.pinned.store(FOLLOW_SYSTEM, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_pinned_clock_stands_still_until_unpinned() {
        let clock = Clock::system();
        let at = datetime!(2030-01-02 03:04:05.678 UTC);
        clock.pin(at);
        assert_eq!(clock.now(), at);
        assert_eq!(clock.now(), at);
        clock.unpin();
        assert!(clock.now() > at - time::Duration::days(36500) && clock.now() != at);
    }
}
