//! Load statistics of one instance for the autoscaler: the time-weighted average
//! of requests in flight and the number of requests, since the last report (as
//! Knative's queue-proxy reports them). The autoscaler reads and resets them about
//! once a second through the admin port's `/stats`.

use std::sync::Mutex;
use tokio::time::Instant;

/// One report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    /// Average requests in flight over the period.
    pub concurrency: f64,
    /// Requests that arrived in the period.
    pub requests: u64,
    /// Length of the period, seconds.
    pub seconds: f64,
}

impl Report {
    /// `{"concurrency":…,"requests":…,"seconds":…}`, what `/stats` answers.
    pub fn to_json(&self) -> String {
        format!(r#"{{"concurrency":{},"requests":{},"seconds":{}}}"#, self.concurrency, self.requests, self.seconds)
    }
}

#[derive(Debug)]
struct State {
    in_flight: u32,
    /// In-flight × seconds accumulated since `since`, up to `changed`.
    area: f64,
    changed: Instant,
    since: Instant,
    requests: u64,
}

#[derive(Debug)]
pub struct Stats {
    state: Mutex<State>,
}

impl State {
    fn advance(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.changed).as_secs_f64();
        self.area += f64::from(self.in_flight) * dt;
        self.changed = now;
    }
}

impl Stats {
    pub fn new(now: Instant) -> Self {
        Self { state: Mutex::new(State { in_flight: 0, area: 0.0, changed: now, since: now, requests: 0 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn start(&self, now: Instant) {
        let mut s = self.lock();
        s.advance(now);
        s.in_flight += 1;
        s.requests += 1;
    }

    pub fn finish(&self, now: Instant) {
        let mut s = self.lock();
        s.advance(now);
        s.in_flight = s.in_flight.saturating_sub(1);
    }

    /// The report since the last one, and a new period from `now`.
    pub fn report(&self, now: Instant) -> Report {
        let mut s = self.lock();
        s.advance(now);
        let seconds = now.saturating_duration_since(s.since).as_secs_f64();
        // A zero-length period (two reports at once) reports what is in flight.
        let concurrency = if seconds > 0.0 { s.area / seconds } else { f64::from(s.in_flight) };
        let report = Report { concurrency, requests: s.requests, seconds };
        (s.area, s.since, s.requests) = (0.0, now, 0);
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn time_weighted_average_and_reset() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let s = Stats::new(t0);
        s.start(ms(0));
        s.start(ms(500)); // two in flight for the second half
        let r = s.report(ms(1000));
        assert!((r.concurrency - 1.5).abs() < 1e-9, "{r:?}");
        assert_eq!(r.requests, 2);
        s.finish(ms(1500));
        s.finish(ms(2000));
        let r = s.report(ms(2000));
        assert!((r.concurrency - 1.5).abs() < 1e-9, "2 for 0.5 s, 1 for 0.5 s: {r:?}");
        assert_eq!(r.requests, 0);
        assert_eq!(s.report(ms(3000)).concurrency, 0.0);
    }
}
