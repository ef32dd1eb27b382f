//! When to try a delivery again, and whether to: the retry schedule, its jitter, `Retry-After`,
//! and the verdict on each partner answer. Pure functions, so the rules are tested directly.

use std::{str::FromStr, time::Duration};

use rand::Rng;

/// The default schedule of SPEC §6: the delays before the 2nd, 3rd, … attempts.
pub const DEFAULT_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,14h,20h,24h";

/// A partner's `Retry-After` is honoured up to this long; beyond it the schedule decides.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The delays between attempts; after the last one a delivery has failed for good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl FromStr for RetrySchedule {
    type Err = String;

    /// `5s,5m,30m`: humantime durations, comma-separated, at least one, none zero.
    fn from_str(text: &str) -> Result<Self, String> {
        let delays = text
            .split(',')
            .map(|part| {
                let delay = humantime::parse_duration(part.trim())
                    .map_err(|err| format!("{:?} is not a duration: {err}", part.trim()))?;
                if delay.is_zero() {
                    return Err("a retry delay must be longer than zero".to_owned());
                }
                Ok(delay)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RetrySchedule(delays))
    }
}

/// The schedule as it is written: `5s,5m,30m`.
impl std::fmt::Display for RetrySchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let delays: Vec<String> = self
            .0
            .iter()
            .map(|delay| crate::config::text::duration::format(*delay))
            .collect();
        f.write_str(&delays.join(","))
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        DEFAULT_SCHEDULE
            .parse()
            .expect("the default schedule parses")
    }
}

impl RetrySchedule {
    /// The delay before the next attempt after `failed_attempts` failures (counted since the
    /// latest replay), with ±20 % jitter so that a partner coming back is not hit by every
    /// retry at once; `None` when the schedule is exhausted.
    pub fn delay_after(&self, failed_attempts: i64, rng: &mut impl Rng) -> Option<Duration> {
        let index = usize::try_from(failed_attempts.checked_sub(1)?).ok()?;
        let base = *self.0.get(index)?;
        Some(base.mul_f64(rng.gen_range(0.8..=1.2)))
    }

    /// How many attempts a delivery gets in all.
    pub fn attempts(&self) -> usize {
        self.0.len() + 1
    }
}

/// What one attempt came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Worth trying again (5xx, 408, 429, timeout, connection error).
    Retry,
    /// Failed for good (another 4xx, a redirect, a refused address).
    Failed,
    /// 410: failed for good, and the subscription ends.
    Gone,
}

impl Verdict {
    pub fn of_status(status: u16) -> Verdict {
        match status {
            200..=299 => Verdict::Delivered,
            410 => Verdict::Gone,
            408 | 429 | 500..=599 => Verdict::Retry,
            // Redirects are not followed (a postback URL that moved is the partner's to fix),
            // and the rest of 4xx says the request itself is refused.
            _ => Verdict::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Delivered => "delivered",
            Verdict::Retry => "retry",
            Verdict::Failed => "failed",
            Verdict::Gone => "gone",
        }
    }
}

/// `Retry-After` as seconds or an HTTP date, relative to `now` (unix seconds); `None` when absent,
/// unreadable, or in the past. Dates are read by `httpdate` in the three forms RFC 9110 has
/// recipients accept (IMF-fixdate, RFC 850, asctime).
pub fn parse_retry_after(value: &str, now_unix: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at = i64::try_from(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs()).ok()?;
    u64::try_from(at - now_unix).ok().map(Duration::from_secs)
}

/// The wait before the next attempt: the partner's `Retry-After` when it gave one (capped at
/// [`MAX_RETRY_AFTER`], at least one second), else the schedule's. `None` once the schedule is
/// exhausted, whatever the partner asked.
pub fn next_delay(
    schedule: &RetrySchedule,
    failed_attempts: i64,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Option<Duration> {
    let scheduled = schedule.delay_after(failed_attempts, rng)?;
    Some(match retry_after {
        Some(asked) => asked.clamp(Duration::from_secs(1), MAX_RETRY_AFTER),
        None => scheduled,
    })
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn the_default_schedule_is_the_documented_one() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.attempts(), 10);
        assert_eq!(schedule.0[0], Duration::from_secs(5));
        assert_eq!(schedule.0[8], Duration::from_secs(24 * 3600));
    }

    #[test]
    fn delays_have_bounded_jitter_and_run_out() {
        let schedule: RetrySchedule = "10s,1m".parse().unwrap();
        assert_eq!(schedule.to_string(), "10s,1m");
        assert_eq!(RetrySchedule::default().to_string(), DEFAULT_SCHEDULE);
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..100 {
            let first = schedule.delay_after(1, &mut rng).unwrap();
            assert!(first >= Duration::from_secs(8) && first <= Duration::from_secs(12));
            let second = schedule.delay_after(2, &mut rng).unwrap();
            assert!(second >= Duration::from_secs(48) && second <= Duration::from_secs(72));
        }
        assert_eq!(schedule.delay_after(3, &mut rng), None);
        assert_eq!(schedule.delay_after(0, &mut rng), None);
    }

    #[test]
    fn bad_schedules_are_refused() {
        assert!("".parse::<RetrySchedule>().is_err());
        assert!("5s,,1m".parse::<RetrySchedule>().is_err());
        assert!("0s".parse::<RetrySchedule>().is_err());
        assert!("soon".parse::<RetrySchedule>().is_err());
    }

    #[test]
    fn statuses_get_their_verdicts() {
        assert_eq!(Verdict::of_status(200), Verdict::Delivered);
        assert_eq!(Verdict::of_status(204), Verdict::Delivered);
        for retry in [408, 429, 500, 502, 503, 504] {
            assert_eq!(Verdict::of_status(retry), Verdict::Retry, "{retry}");
        }
        for fail in [301, 302, 400, 401, 403, 404, 409, 422] {
            assert_eq!(Verdict::of_status(fail), Verdict::Failed, "{fail}");
        }
        assert_eq!(Verdict::of_status(410), Verdict::Gone);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
        // 1994-11-06T08:49:37Z is 784111777.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_700),
            Some(Duration::from_secs(77))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_800),
            None
        );
        // The obsolete forms a recipient must still accept.
        for obsolete in ["Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
            assert_eq!(
                parse_retry_after(obsolete, 784_111_700),
                Some(Duration::from_secs(77)),
                "{obsolete}"
            );
        }
        assert_eq!(parse_retry_after("later", 0), None);
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let schedule: RetrySchedule = "5s,5s".parse().unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let mut asked = |secs| next_delay(&schedule, 1, Some(Duration::from_secs(secs)), &mut rng);
        assert_eq!(asked(90), Some(Duration::from_secs(90)));
        assert_eq!(asked(0), Some(Duration::from_secs(1)));
        assert_eq!(asked(10 * 24 * 3600), Some(MAX_RETRY_AFTER));
        assert_eq!(
            next_delay(&schedule, 3, Some(Duration::from_secs(5)), &mut rng),
            None
        );
    }
}
