//! The scale-down delay: the largest desired count seen within the delay, so a
//! scale-down happens only after the lower count has held for the whole delay.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct MaxWindow {
    delay: Duration,
    /// `(when, value)`, kept decreasing in value so the front is the maximum.
    entries: VecDeque<(Instant, u32)>,
}

impl MaxWindow {
    pub fn new(delay: Duration) -> Self {
        Self { delay, entries: VecDeque::new() }
    }

    /// Records `value` at `now` and returns the maximum over the last `delay`.
    pub fn record(&mut self, now: Instant, value: u32) -> u32 {
        while self.entries.front().is_some_and(|(t, _)| now.saturating_duration_since(*t) >= self.delay) {
            self.entries.pop_front();
        }
        while self.entries.back().is_some_and(|(_, v)| *v <= value) {
            self.entries.pop_back();
        }
        self.entries.push_back((now, value));
        self.entries.front().map_or(value, |(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_maximum_for_the_delay() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut w = MaxWindow::new(Duration::from_secs(30));
        assert_eq!(w.record(s(0), 10), 10);
        assert_eq!(w.record(s(10), 3), 10);
        assert_eq!(w.record(s(29), 4), 10);
        assert_eq!(w.record(s(30), 2), 4, "10 is 30 s old: the max of what is left");
        assert_eq!(w.record(s(31), 12), 12, "scale-up is never delayed");
    }
}
