//! What happens to a job after an attempt: the retry and backoff policy.

use super::JobState;
use jiff::{SignedDuration, Timestamp};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Delay before retry k is `backoff_base ^ k` seconds.
    pub backoff_base: f64,
    /// Upper bound on any single delay.
    pub backoff_max: Duration,
}

impl RetryPolicy {
    /// The delay after the job's `failures`-th failed attempt.
    pub fn delay(&self, failures: u32) -> Duration {
        let seconds = self.backoff_base.powf(f64::from(failures));
        let capped = seconds.min(self.backoff_max.as_secs_f64());
        Duration::from_secs_f64(if capped.is_finite() {
            capped.max(0.0)
        } else {
            0.0
        })
    }
}

/// How one attempt ended. The same names appear in `show` and the SQL schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded,
    /// Non-zero exit, killed by a signal, or could not start.
    Failed,
    TimedOut,
    Cancelled,
    /// The worker stopped renewing its lease (killed, frozen, host lost).
    LeaseExpired,
    /// The worker was told to stop at once; not the job's fault.
    Interrupted,
}

impl AttemptOutcome {
    pub const ALL: [AttemptOutcome; 6] = [
        AttemptOutcome::Succeeded,
        AttemptOutcome::Failed,
        AttemptOutcome::TimedOut,
        AttemptOutcome::Cancelled,
        AttemptOutcome::LeaseExpired,
        AttemptOutcome::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::TimedOut => "timed_out",
            AttemptOutcome::Cancelled => "cancelled",
            AttemptOutcome::LeaseExpired => "lease_expired",
            AttemptOutcome::Interrupted => "interrupted",
        }
    }

    pub fn parse(text: &str) -> Option<AttemptOutcome> {
        AttemptOutcome::ALL.into_iter().find(|o| o.as_str() == text)
    }

    /// Outcomes that spend one of the job's retries.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            AttemptOutcome::Failed | AttemptOutcome::TimedOut | AttemptOutcome::LeaseExpired
        )
    }
}

/// Where a job goes after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextState {
    pub state: JobState,
    /// When it is next due; only meaningful for `Pending` and `Failed`.
    pub run_at: Timestamp,
    /// Failed attempts so far, including this one.
    pub failures: u32,
}

/// The job state machine's one rule for leaving `processing`.
///
/// `max_retries` counts re-runs after the first attempt: a job is tried at
/// most `max_retries + 1` times before it goes to the dead letter queue.
/// Interrupted attempts (worker shut down at once) do not count.
///
/// A job whose cancel was requested while it ran ends `cancelled` whatever
/// the attempt's outcome (it may have ended before the worker could stop
/// it): `cancel` promised that. A failure still counts as one.
pub fn next_state(
    outcome: AttemptOutcome,
    cancel_requested: bool,
    failures_before: u32,
    max_retries: u32,
    policy: &RetryPolicy,
    now: Timestamp,
) -> NextState {
    let stay = |state| NextState {
        state,
        run_at: now,
        failures: failures_before,
    };
    if cancel_requested {
        return NextState {
            state: JobState::Cancelled,
            run_at: now,
            failures: failures_before.saturating_add(u32::from(outcome.is_failure())),
        };
    }
    match outcome {
        AttemptOutcome::Succeeded => stay(JobState::Completed),
        AttemptOutcome::Cancelled => stay(JobState::Cancelled),
        AttemptOutcome::Interrupted => stay(JobState::Pending),
        AttemptOutcome::Failed | AttemptOutcome::TimedOut | AttemptOutcome::LeaseExpired => {
            let failures = failures_before.saturating_add(1);
            if failures > max_retries {
                return NextState {
                    state: JobState::Dead,
                    run_at: now,
                    failures,
                };
            }
            let delay =
                SignedDuration::try_from(policy.delay(failures)).unwrap_or(SignedDuration::MAX);
            NextState {
                state: JobState::Failed,
                run_at: now.checked_add(delay).unwrap_or(Timestamp::MAX),
                failures,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(base: f64, max_secs: u64) -> RetryPolicy {
        RetryPolicy {
            backoff_base: base,
            backoff_max: Duration::from_secs(max_secs),
        }
    }

    #[test]
    fn delay_is_base_to_the_power_of_failures_capped() {
        let p = policy(2.0, 3600);
        let cases = [
            (0, 1),
            (1, 2),
            (2, 4),
            (3, 8),
            (10, 1024),
            (12, 3600),
            (500, 3600),
        ];
        for (failures, secs) in cases {
            assert_eq!(
                p.delay(failures),
                Duration::from_secs(secs),
                "failures={failures}"
            );
        }
        assert_eq!(policy(1.5, 100).delay(2), Duration::from_secs_f64(2.25));
        assert_eq!(policy(1.0, 100).delay(50), Duration::from_secs(1));
    }

    #[test]
    fn max_retries_allows_that_many_reruns_then_dead() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        let p = policy(2.0, 3600);
        // max_retries = 3: failures 1, 2, 3 are retried, the 4th attempt's failure is final.
        let mut failures = 0;
        let mut runs = 0;
        loop {
            runs += 1;
            let next = next_state(AttemptOutcome::Failed, false, failures, 3, &p, now);
            failures = next.failures;
            if next.state == JobState::Dead {
                break;
            }
            assert_eq!(next.state, JobState::Failed);
            assert_eq!(
                next.run_at.duration_since(now),
                SignedDuration::from_secs(2i64.pow(failures))
            );
        }
        assert_eq!((runs, failures), (4, 4));
        let once = next_state(AttemptOutcome::TimedOut, false, 0, 0, &p, now);
        assert_eq!(once.state, JobState::Dead);
    }

    #[test]
    fn non_failures_do_not_spend_retries() {
        let now = Timestamp::from_second(10).unwrap();
        let p = policy(2.0, 60);
        for (outcome, state) in [
            (AttemptOutcome::Succeeded, JobState::Completed),
            (AttemptOutcome::Cancelled, JobState::Cancelled),
            (AttemptOutcome::Interrupted, JobState::Pending),
        ] {
            let next = next_state(outcome, false, 2, 2, &p, now);
            assert_eq!((next.state, next.failures, next.run_at), (state, 2, now));
        }
        let lost = next_state(AttemptOutcome::LeaseExpired, false, 0, 5, &p, now);
        assert_eq!((lost.state, lost.failures), (JobState::Failed, 1));
    }

    proptest::proptest! {
        /// Whatever the history of outcomes, a job dies exactly when its
        /// failures exceed max_retries, and only failures move the count.
        #[test]
        fn dead_exactly_when_failures_exceed_max_retries(
            max_retries in 0u32..20,
            outcomes in proptest::collection::vec((0usize..6, proptest::bool::weighted(0.1)), 1..60),
            base in 1.0f64..10.0,
        ) {
            let p = policy(base, 3600);
            let now = Timestamp::from_second(1_000).unwrap();
            let mut failures = 0;
            for (index, cancel_requested) in outcomes {
                let outcome = AttemptOutcome::ALL[index];
                let next = next_state(outcome, cancel_requested, failures, max_retries, &p, now);
                let expected_failures = failures + u32::from(outcome.is_failure());
                proptest::prop_assert_eq!(next.failures, expected_failures);
                // A requested cancel is kept whatever the attempt did.
                proptest::prop_assert_eq!(next.state == JobState::Cancelled, cancel_requested || outcome == AttemptOutcome::Cancelled);
                if outcome.is_failure() && !cancel_requested {
                    proptest::prop_assert_eq!(next.state == JobState::Dead, expected_failures > max_retries);
                    proptest::prop_assert!(next.run_at >= now);
                }
                if next.state.is_terminal() {
                    break;
                }
                failures = next.failures;
            }
        }
    }

    #[test]
    fn a_requested_cancel_wins_over_any_outcome() {
        let now = Timestamp::from_second(10).unwrap();
        let p = policy(2.0, 60);
        for outcome in AttemptOutcome::ALL {
            let next = next_state(outcome, true, 1, 1, &p, now);
            assert_eq!(next.state, JobState::Cancelled, "{outcome:?}");
            assert_eq!(next.failures, 1 + u32::from(outcome.is_failure()));
        }
    }

    #[test]
    fn outcome_names_round_trip() {
        for outcome in AttemptOutcome::ALL {
            assert_eq!(AttemptOutcome::parse(outcome.as_str()), Some(outcome));
        }
    }
}
