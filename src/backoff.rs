//! How long to pause between tries of something that may mend itself: a first pause, doubled
//! after each failed try up to a longest one.
//!
//! One type for every retry loop that waits on a server (start-up's [`crate::startup::wait_for`],
//! the worker finishing a job through a Redis outage), so the doubling and the cap are written
//! and tested once. Deciding *whether* to try again stays with each loop.

use std::time::Duration;

/// The longest pause of [`Backoff::SLOW`].
const SLOW_MAX: Duration = Duration::from_secs(30);

/// How often to try: the first pause, doubled after each failed try up to the longest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The pause after the first failed try.
    pub first: Duration,
    /// The longest pause: doubling stops here. A `first` above it is still used once, as given.
    pub max: Duration,
}

impl Backoff {
    /// 1, 2, 4 … 30 s: for a server that takes its time to come up (MongoDB).
    pub const SLOW: Backoff = Backoff {
        first: Duration::from_secs(1),
        max: SLOW_MAX,
    };

    /// The pauses of one retry loop, starting again from [`Backoff::first`].
    pub fn pauses(self) -> Pauses {
        Pauses {
            next: self.first,
            max: self.max,
        }
    }
}

/// The pauses of one retry loop: each call to [`Pauses::next_pause`] gives the pause to sleep
/// after the latest failed try, and doubles the one after it (up to the cap).
#[derive(Debug, Clone)]
pub struct Pauses {
    /// The pause the next failed try waits.
    next: Duration,
    /// Where doubling stops.
    max: Duration,
}

impl Pauses {
    /// The pause to sleep now, after a failed try; the next one is twice as long, at most the
    /// backoff's `max`.
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = pause.saturating_mul(2).min(self.max);
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn pauses_double_up_to_the_cap_and_stay_there() {
        let mut pauses = Backoff {
            first: 100 * MS,
            max: 500 * MS,
        }
        .pauses();
        let got: Vec<_> = (0..6).map(|_| pauses.next_pause().as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 500, 500, 500]);

        let mut slow = Backoff::SLOW.pauses();
        let got: Vec<_> = (0..7).map(|_| slow.next_pause().as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 30, 30]);
    }

    /// A `first` above `max` is used once as given (as the loops did before this type), then
    /// the cap holds.
    #[test]
    fn a_first_pause_above_the_cap_is_used_once() {
        let mut pauses = Backoff {
            first: 10 * MS,
            max: 3 * MS,
        }
        .pauses();
        assert_eq!(pauses.next_pause(), 10 * MS);
        assert_eq!(pauses.next_pause(), 3 * MS);
        assert_eq!(pauses.next_pause(), 3 * MS);
    }

    /// Each loop starts again from the first pause: `pauses` copies the backoff, it does not
    /// share a running state.
    #[test]
    fn each_loop_starts_from_the_first_pause() {
        let backoff = Backoff::SLOW;
        let mut one = backoff.pauses();
        one.next_pause();
        one.next_pause();
        assert_eq!(backoff.pauses().next_pause(), Duration::from_secs(1));
    }
}
