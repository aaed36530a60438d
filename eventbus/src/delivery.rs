//! What a delivery attempt's result means, and when to try again — Knative's
//! `delivery` spec as pure functions of the attempt number, so the schedule is
//! tested exactly without waiting.
//!
//! - Retried: 5xx, 408, 429, a timeout, a connection error.
//! - Not retried, dead-lettered at once: any other 4xx (the event itself is
//!   wrong for the subscriber; sending it again cannot help).
//! - Success: 2xx. (1xx and 3xx are failures that are not retried either:
//!   a subscriber must answer, not redirect.)
//! - The wait before retry `n` (1-based) is `backoffDelay * n` (linear) or
//!   `backoffDelay * 2^n` (exponential), at most `backoffMax`. On 429 and 503 a
//!   `Retry-After` is honoured: the longer of it (at most `retryAfterMax`) and
//!   the backoff is used.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackoffPolicy {
    Linear,
    #[default]
    Exponential,
}

/// A Trigger's (or its Broker's) `delivery`, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryPolicy {
    /// Retries after the first attempt.
    pub retry: u32,
    pub policy: BackoffPolicy,
    pub delay: Duration,
    pub max: Option<Duration>,
    pub retry_after_max: Option<Duration>,
    /// Per attempt.
    pub timeout: Duration,
}

impl Default for DeliveryPolicy {
    /// No retries and a 30 s attempt timeout, like a Knative Trigger without `delivery`.
    fn default() -> Self {
        Self {
            retry: 0,
            policy: BackoffPolicy::Exponential,
            delay: Duration::from_millis(200),
            max: None,
            retry_after_max: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Attempt {
    /// The subscriber answered with this status.
    Status { code: u16, retry_after: Option<Duration> },
    /// No answer within the timeout.
    Timeout,
    /// Could not connect, or the connection broke.
    ConnectionError,
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    Done,
    RetryAfter(Duration),
    /// Give up: to the dead-letter sink (if any), with why.
    DeadLetter(GiveUp),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// A failure that is not retried (4xx other than 408 and 429, 1xx, 3xx).
    NotRetryable,
    /// `retry` retries were made.
    RetriesExhausted,
}

impl GiveUp {
    /// The metric label (`reason`); the dead-letter attribute uses dashes.
    pub fn as_str(self) -> &'static str {
        match self {
            GiveUp::NotRetryable => "not_retryable",
            GiveUp::RetriesExhausted => "retries_exhausted",
        }
    }
}

impl DeliveryPolicy {
    /// `attempt` is the number of attempts made so far, this one included (1 = first).
    pub fn next(&self, attempt: u32, result: Attempt) -> Next {
        let retry_after = match result {
            Attempt::Status { code, .. } if (200..300).contains(&code) => return Next::Done,
            Attempt::Status { code, retry_after } if retryable_status(code) => match code {
                429 | 503 => retry_after,
                _ => None,
            },
            Attempt::Status { .. } => return Next::DeadLetter(GiveUp::NotRetryable),
            Attempt::Timeout | Attempt::ConnectionError => None,
        };
        if attempt > self.retry {
            return Next::DeadLetter(GiveUp::RetriesExhausted);
        }
        let backoff = self.backoff(attempt);
        let asked = retry_after.map(|r| self.retry_after_max.map_or(r, |m| r.min(m)));
        Next::RetryAfter(asked.map_or(backoff, |a| a.max(backoff)))
    }

    /// The wait before retry `n` (1-based).
    pub fn backoff(&self, n: u32) -> Duration {
        let d = match self.policy {
            BackoffPolicy::Linear => self.delay.saturating_mul(n),
            BackoffPolicy::Exponential => self.delay.saturating_mul(2u32.saturating_pow(n)),
        };
        self.max.map_or(d, |m| d.min(m))
    }
}

fn retryable_status(code: u16) -> bool {
    code >= 500 || code == 408 || code == 429
}

/// Parses an ISO 8601 duration as Knative takes it: `PT0.5S`, `PT1M30S`,
/// `PT2H`, `P1DT12H` (weeks, days, hours, minutes, fractional seconds; a day is
/// 24 h; no months or years, no negative values). Parsing is jiff's.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = |why: String| format!("{s:?} is not an ISO 8601 duration like PT0.5S, PT1M or P1DT2H: {why}");
    // jiff also takes its "friendly" form (`10s`); Knative's fields are ISO only.
    if !s.starts_with(['P', 'p']) {
        return Err(bad("it must start with P".into()));
    }
    let span: jiff::Span = s.parse().map_err(|e: jiff::Error| bad(e.to_string()))?;
    let signed = span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()).map_err(|e| bad(e.to_string()))?;
    Duration::try_from(signed).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn status(code: u16) -> Attempt {
        Attempt::Status { code, retry_after: None }
    }

    fn schedule(p: &DeliveryPolicy, result: Attempt) -> Vec<Next> {
        (1..=p.retry + 1).map(|n| p.next(n, result)).collect()
    }

    #[test]
    fn exponential_and_linear_schedules_are_exact_and_capped() {
        let p = DeliveryPolicy { retry: 4, delay: ms(100), ..DeliveryPolicy::default() };
        let r = |n| Next::RetryAfter(ms(n));
        let give_up = Next::DeadLetter(GiveUp::RetriesExhausted);
        assert_eq!(schedule(&p, status(500)), [r(200), r(400), r(800), r(1600), give_up]);
        let capped = DeliveryPolicy { max: Some(ms(500)), ..p.clone() };
        assert_eq!(schedule(&capped, Attempt::Timeout), [r(200), r(400), r(500), r(500), give_up]);
        let linear = DeliveryPolicy { policy: BackoffPolicy::Linear, ..p.clone() };
        assert_eq!(schedule(&linear, Attempt::ConnectionError), [r(100), r(200), r(300), r(400), give_up]);
        let none = DeliveryPolicy::default();
        assert_eq!(schedule(&none, status(503)), [give_up], "no retry configured: dead letter at once");
    }

    #[test]
    fn what_is_retried() {
        let p = DeliveryPolicy { retry: 1, delay: ms(10), ..DeliveryPolicy::default() };
        for code in [200, 201, 202, 204, 299] {
            assert_eq!(p.next(1, status(code)), Next::Done, "{code}");
        }
        for code in [500, 502, 503, 504, 408, 429] {
            assert_eq!(p.next(1, status(code)), Next::RetryAfter(ms(20)), "{code}");
        }
        for code in [100, 301, 304, 400, 401, 403, 404, 409, 413, 422] {
            assert_eq!(p.next(1, status(code)), Next::DeadLetter(GiveUp::NotRetryable), "{code}");
        }
    }

    #[test]
    fn retry_after_is_honoured_on_429_and_503_only_and_capped() {
        let p = DeliveryPolicy { retry: 3, delay: ms(100), ..DeliveryPolicy::default() };
        let ra = |code, secs| Attempt::Status { code, retry_after: Some(Duration::from_secs(secs)) };
        assert_eq!(p.next(1, ra(429, 5)), Next::RetryAfter(Duration::from_secs(5)));
        assert_eq!(p.next(1, ra(503, 5)), Next::RetryAfter(Duration::from_secs(5)));
        assert_eq!(p.next(1, ra(500, 5)), Next::RetryAfter(ms(200)), "not on 500");
        let small = Attempt::Status { code: 429, retry_after: Some(ms(1)) };
        assert_eq!(p.next(1, small), Next::RetryAfter(ms(200)), "the longer of the two");
        let capped = DeliveryPolicy { retry_after_max: Some(Duration::from_secs(2)), ..p };
        assert_eq!(capped.next(1, ra(429, 60)), Next::RetryAfter(Duration::from_secs(2)));
    }

    #[test]
    fn iso_durations() {
        let ok = [
            ("PT0.5S", ms(500)),
            ("PT1S", ms(1000)),
            ("PT0.2S", ms(200)),
            ("PT1M30S", ms(90_000)),
            ("PT2H", ms(7_200_000)),
            ("P1D", ms(86_400_000)),
            ("P1DT1S", ms(86_401_000)),
            ("PT0S", ms(0)),
        ];
        for (s, want) in ok {
            assert_eq!(parse_duration(s), Ok(want), "{s}");
        }
        assert_eq!(parse_duration("P1W"), Ok(ms(604_800_000)));
        for bad in ["", "P", "PT", "1S", "PT1", "PT1X", "P1H", "PTS", "PT-1S", "-PT1S", "10s", "P1M", "P1Y"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
