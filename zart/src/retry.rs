//! Retry policies for [`crate::TaskContext::step_with_retry`].

use std::time::Duration;

/// How a step is retried: how many attempts in all, and how long to wait between them.
///
/// A back-off longer than [`crate::WorkerConfig::durable_backoff_threshold`] is durable: the
/// attempt is recorded, the execution is suspended and rescheduled, and no worker slot is held
/// while it waits. Shorter back-offs sleep in the worker.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use zart::RetryConfig;
///
/// // 3 attempts in all: waits 2 s after the first failure, then 4 s.
/// let retry = RetryConfig::exponential(3, Duration::from_secs(2));
/// assert_eq!(retry.delay_after(1), Duration::from_secs(2));
/// assert_eq!(retry.delay_after(2), Duration::from_secs(4));
///
/// let capped = RetryConfig::exponential(10, Duration::from_secs(1))
///     .with_max_delay(Duration::from_secs(30))
///     .with_jitter(0.2);
/// assert!(capped.delay_after(9) <= Duration::from_secs(36));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    max_attempts: u32,
    base_delay: Duration,
    multiplier: f64,
    max_delay: Duration,
    jitter: f64,
    attempt_timeout: Option<Duration>,
}

impl RetryConfig {
    /// `max_attempts` attempts in all (the first included; 0 counts as 1), waiting
    /// `base_delay`, then twice that, and so on, up to a maximum delay of one hour.
    pub fn exponential(max_attempts: u32, base_delay: Duration) -> Self {
        RetryConfig {
            max_attempts: max_attempts.max(1),
            base_delay,
            multiplier: 2.0,
            max_delay: Duration::from_secs(3600),
            jitter: 0.0,
            attempt_timeout: None,
        }
    }

    /// `max_attempts` attempts in all (0 counts as 1), waiting the same `delay` between them.
    pub fn fixed(max_attempts: u32, delay: Duration) -> Self {
        RetryConfig {
            multiplier: 1.0,
            ..RetryConfig::exponential(max_attempts, delay)
        }
    }

    /// No retry: one attempt.
    pub fn none() -> Self {
        RetryConfig::fixed(1, Duration::ZERO)
    }

    /// Caps every delay at `max_delay` (before jitter; at most [`crate::limits::MAX_WAIT`]).
    pub fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay.min(crate::limits::MAX_WAIT);
        self
    }

    /// Adds up to `fraction` of each delay at random (0.0 to 1.0; 0.2 = up to +20%), so that
    /// many executions failing together do not retry in lockstep.
    pub fn with_jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Fails an attempt that runs longer than `timeout` (kind `timeout`); it is retried like
    /// any failed attempt.
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// The per-attempt timeout, if any.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.attempt_timeout
    }

    /// Attempts in all, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait after failed attempt number `attempt` (1-based), without jitter.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let secs = self.base_delay.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = secs.min(self.max_delay.min(crate::limits::MAX_WAIT).as_secs_f64());
        Duration::try_from_secs_f64(capped).unwrap_or(self.max_delay)
    }

    /// The wait after failed attempt `attempt`, with jitter applied.
    pub fn jittered_delay_after(&self, attempt: u32) -> Duration {
        let delay = self.delay_after(attempt);
        if self.jitter == 0.0 {
            return delay;
        }
        let extra = delay.as_secs_f64() * self.jitter * rand::random::<f64>();
        delay + Duration::try_from_secs_f64(extra).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_doubles_and_caps() {
        let r = RetryConfig::exponential(5, Duration::from_millis(100))
            .with_max_delay(Duration::from_millis(350));
        let delays: Vec<_> = (1..=4).map(|a| r.delay_after(a).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 350, 350]);
        assert_eq!(r.max_attempts(), 5);
    }

    #[test]
    fn fixed_stays_put_and_jitter_is_bounded() {
        let r = RetryConfig::fixed(3, Duration::from_secs(1)).with_jitter(0.5);
        assert_eq!(r.delay_after(7), Duration::from_secs(1));
        for _ in 0..100 {
            let d = r.jittered_delay_after(2);
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_millis(1500));
        }
    }

    #[test]
    fn zero_attempts_means_one() {
        assert_eq!(
            RetryConfig::exponential(0, Duration::ZERO).max_attempts(),
            1
        );
        assert_eq!(RetryConfig::none().max_attempts(), 1);
    }
}
