//! Per-second metric buckets. Each instance reports, about once a second, its
//! average concurrency and request count over that second; reports landing in
//! the same second add up (several instances). A window average divides by the
//! seconds the window spans, counting only from the first report, so a revision
//! that just started is judged on what it has seen, as Knative's collector does.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Buckets {
    origin: Instant,
    /// `(second since origin, sum of reports)`, ascending.
    buckets: VecDeque<(u64, f64)>,
    first: Option<u64>,
    retain: Duration,
}

impl Buckets {
    /// Keeps reports for `retain` (the longest window asked for).
    pub fn new(origin: Instant, retain: Duration) -> Self {
        Self { origin, buckets: VecDeque::new(), first: None, retain }
    }

    fn second(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.origin).as_secs()
    }

    pub fn record(&mut self, now: Instant, value: f64) {
        let s = self.second(now);
        self.first.get_or_insert(s);
        match self.buckets.back_mut() {
            Some((last, sum)) if *last == s => *sum += value,
            _ => self.buckets.push_back((s, value)),
        }
        let keep_from = s.saturating_sub(self.retain.as_secs());
        while self.buckets.front().is_some_and(|(b, _)| *b < keep_from) {
            self.buckets.pop_front();
        }
    }

    /// Average per second over the `window` ending at `now`; `None` when nothing
    /// was reported within it (no data: the caller keeps the current scale).
    pub fn average(&self, now: Instant, window: Duration) -> Option<f64> {
        let end = self.second(now);
        let span = window.as_secs().max(1);
        let start = (end + 1).saturating_sub(span).max(self.first?);
        let mut in_window = self.buckets.iter().filter(|(b, _)| (start..=end).contains(b)).map(|(_, v)| v).peekable();
        in_window.peek()?;
        Some(in_window.sum::<f64>() / (end - start + 1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_over_the_window_and_over_what_was_seen_so_far() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut b = Buckets::new(t0, Duration::from_secs(60));
        b.record(s(0), 10.0);
        b.record(s(0), 5.0); // a second instance in the same second
        b.record(s(1), 15.0);
        assert_eq!(b.average(s(1), Duration::from_secs(60)), Some(15.0));
        assert_eq!(b.average(s(1), Duration::from_secs(1)), Some(15.0));
        for i in 2..10 {
            b.record(s(i), 0.0);
        }
        assert_eq!(b.average(s(9), Duration::from_secs(60)), Some(3.0));
        assert_eq!(b.average(s(9), Duration::from_secs(6)), Some(0.0));
    }

    #[test]
    fn no_reports_in_the_window_is_no_data() {
        let t0 = Instant::now();
        let mut b = Buckets::new(t0, Duration::from_secs(60));
        assert_eq!(b.average(t0, Duration::from_secs(60)), None);
        b.record(t0, 4.0);
        assert_eq!(b.average(t0 + Duration::from_secs(100), Duration::from_secs(60)), None);
        assert!(b.buckets.len() == 1);
        b.record(t0 + Duration::from_secs(200), 1.0);
        assert_eq!(b.buckets.len(), 1, "old buckets are dropped");
    }
}
