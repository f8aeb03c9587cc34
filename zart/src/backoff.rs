//! [`Backoff`]: the exponential back-off used for reconnects and retried database calls.

use std::time::Duration;

/// Exponential back-off: 100 ms, doubling up to 5 s.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let mut b = zart::Backoff::new();
/// assert_eq!(b.next(), Duration::from_millis(100));
/// assert_eq!(b.next(), Duration::from_millis(200));
/// b.reset();
/// assert_eq!(b.next(), Duration::from_millis(100));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    current: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    /// Starts at 100 ms.
    pub fn new() -> Self {
        Backoff {
            current: Duration::from_millis(100),
        }
    }

    /// The next delay; each call doubles it, up to 5 s.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Duration {
        let delay = self.current;
        self.current = (self.current * 2).min(Duration::from_secs(5));
        delay
    }

    /// Back to 100 ms, after a success.
    pub fn reset(&mut self) {
        self.current = Duration::from_millis(100);
    }
}
