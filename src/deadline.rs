//! The time an invocation has. Lambda gives each invocation a deadline; every wait on the
//! database or the bus is bounded by what is left of it, so an invocation always answers
//! (with a retryable error if it must) before Lambda would kill it.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Kept back from Lambda's deadline for reporting the answer.
pub const DEFAULT_MARGIN: Duration = Duration::from_millis(300);

/// How long an invocation may take when nobody says otherwise (tests, tools).
pub const UNBOUNDED: Duration = Duration::from_secs(30);

/// The instant by which the work must be done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

/// The deadline passed before the work was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the invocation ran out of time")]
pub struct OutOfTime;

impl Deadline {
    pub fn at(instant: Instant) -> Self {
        Self(instant)
    }

    pub fn after(duration: Duration) -> Self {
        Self(Instant::now() + duration)
    }

    /// Lambda's deadline (milliseconds since the Unix epoch), less `margin`.
    ///
    /// Lambda sends an instant; cargo-lambda's emulator sends the timeout itself (600000).
    /// A value too small to be an instant of this century is read as milliseconds from now.
    pub fn from_epoch_millis(deadline_ms: u64, margin: Duration) -> Self {
        const YEAR_2001_MS: u64 = 978_307_200_000;
        let left = if deadline_ms < YEAR_2001_MS {
            Duration::from_millis(deadline_ms)
        } else {
            (UNIX_EPOCH + Duration::from_millis(deadline_ms))
                .duration_since(SystemTime::now())
                .unwrap_or_default()
        };
        Self::after(left.saturating_sub(margin))
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn is_past(&self) -> bool {
        self.remaining().is_zero()
    }

    /// The earlier of this deadline and `duration` from now.
    pub fn capped(&self, duration: Duration) -> Self {
        (*self).min(Self::after(duration))
    }

    /// Runs `work` until it ends or the deadline passes, whichever comes first.
    pub async fn run<F: Future>(&self, work: F) -> Result<F::Output, OutOfTime> {
        tokio::time::timeout_at(self.0.into(), work)
            .await
            .map_err(|_| OutOfTime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_from_lambda_keeps_the_margin_back() {
        let in_two_seconds = SystemTime::now() + Duration::from_secs(2);
        let millis = in_two_seconds
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();

        let deadline = Deadline::from_epoch_millis(millis, Duration::from_millis(500));

        let left = deadline.remaining();
        assert!(left <= Duration::from_millis(1_500), "{left:?}");
        assert!(left > Duration::from_millis(1_000), "{left:?}");
    }

    #[test]
    fn a_deadline_already_past_has_nothing_left() {
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3_600);
        let millis = an_hour_ago
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();

        let deadline = Deadline::from_epoch_millis(millis, DEFAULT_MARGIN);

        assert!(deadline.is_past());
        assert_eq!(deadline.remaining(), Duration::ZERO);
    }

    #[test]
    fn an_emulators_timeout_instead_of_an_instant_counts_from_now() {
        let deadline = Deadline::from_epoch_millis(600_000, DEFAULT_MARGIN);

        let left = deadline.remaining();
        assert!(
            left > Duration::from_secs(590) && left <= Duration::from_secs(600),
            "{left:?}"
        );
    }

    #[tokio::test]
    async fn work_past_the_deadline_is_cut_off() {
        let deadline = Deadline::after(Duration::from_millis(20));

        let slow = deadline
            .run(tokio::time::sleep(Duration::from_secs(5)))
            .await;
        let quick = Deadline::after(Duration::from_secs(5))
            .run(async { 7 })
            .await;

        assert_eq!(slow, Err(OutOfTime));
        assert_eq!(quick, Ok(7));
    }
}
