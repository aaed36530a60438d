//! Scaling knobs. Names and defaults are Knative's (`autoscaling.knative.dev/*`
//! becomes `autoscaling.weft.dev/*`), so a Knative user's annotations mean the
//! same here.

use std::collections::BTreeMap;
use std::time::Duration;
use thiserror::Error;

/// Annotation prefix of the scaling knobs.
pub const PREFIX: &str = "autoscaling.weft.dev/";

/// What the autoscaler scales on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Requests in flight per instance.
    Concurrency,
    /// Requests per second per instance.
    Rps,
}

/// Platform-wide defaults (`weft up` flags), Knative's values (its
/// `config-autoscaler` and `config-defaults`). Annotations override them per
/// Function, except the rates, the tick, the grace and the switches.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub metric: Metric,
    pub target_concurrency: f64,
    pub target_utilization: f64,
    pub target_rps: f64,
    pub stable_window: Duration,
    pub panic_window_percentage: f64,
    pub panic_threshold_percentage: f64,
    pub max_scale_up_rate: f64,
    pub max_scale_down_rate: f64,
    pub tick: Duration,
    pub scale_to_zero_grace: Duration,
    pub target_burst_capacity: f64,
    pub min_scale: u32,
    /// 0 = unbounded.
    pub max_scale: u32,
    pub initial_scale: u32,
    pub scale_down_delay: Duration,
    pub scale_to_zero_retention: Duration,
    /// `containerConcurrency` of a revision that does not set it (0 = unlimited).
    pub container_concurrency: u32,
    pub allow_zero_initial_scale: bool,
    pub enable_scale_to_zero: bool,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            metric: Metric::Concurrency,
            target_concurrency: 100.0,
            target_utilization: 0.7,
            target_rps: 200.0,
            stable_window: Duration::from_secs(60),
            panic_window_percentage: 10.0,
            panic_threshold_percentage: 200.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            tick: Duration::from_secs(2),
            scale_to_zero_grace: Duration::from_secs(30),
            target_burst_capacity: 200.0,
            min_scale: 0,
            max_scale: 0,
            initial_scale: 1,
            scale_down_delay: Duration::ZERO,
            scale_to_zero_retention: Duration::ZERO,
            container_concurrency: 0,
            allow_zero_initial_scale: false,
            enable_scale_to_zero: true,
        }
    }
}

impl Defaults {
    /// Checks the ranges Knative's config accepts; the error names the setting
    /// by its `weft up` flag.
    pub fn check(&self) -> Result<(), String> {
        let range = |flag: &str, v: f64, min: f64, max: f64| {
            if v.is_finite() && (min..=max).contains(&v) {
                Ok(())
            } else {
                Err(format!("--{flag} {v} must be from {min} to {max}"))
            }
        };
        range("target-concurrency", self.target_concurrency, 0.01, f64::MAX)?;
        range("target-utilization", self.target_utilization * 100.0, 1.0, 100.0)?;
        range("target-rps", self.target_rps, 0.01, f64::MAX)?;
        range("panic-window-percentage", self.panic_window_percentage, 1.0, 100.0)?;
        range("panic-threshold-percentage", self.panic_threshold_percentage, 110.0, 1000.0)?;
        range("max-scale-up-rate", self.max_scale_up_rate, 1.000_001, f64::MAX)?;
        range("max-scale-down-rate", self.max_scale_down_rate, 1.000_001, f64::MAX)?;
        range("target-burst-capacity", self.target_burst_capacity, -1.0, f64::MAX)?;
        if self.stable_window < Duration::from_secs(6) || self.stable_window > Duration::from_secs(3600) {
            return Err(format!("--stable-window {:?} must be from 6s to 1h", self.stable_window));
        }
        if self.tick.is_zero() {
            return Err("--tick must be above 0".into());
        }
        if self.max_scale > 0 && self.min_scale > self.max_scale {
            return Err(format!("--min-scale {} is above --max-scale {}", self.min_scale, self.max_scale));
        }
        if self.initial_scale == 0 && !self.allow_zero_initial_scale {
            return Err("--initial-scale 0 needs --allow-zero-initial-scale".into());
        }
        Ok(())
    }

    /// The `containerConcurrency` a revision runs with.
    pub fn container_concurrency(&self, from_spec: Option<u32>) -> u32 {
        from_spec.unwrap_or(self.container_concurrency)
    }
}

/// The knobs in force for one revision.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingSpec {
    pub metric: Metric,
    /// Per-instance value to aim for: target × utilization.
    pub target_value: f64,
    /// Per-instance capacity: `containerConcurrency`, or the target when unlimited.
    pub total_value: f64,
    pub stable_window: Duration,
    pub panic_window: Duration,
    /// Ratio (2.0 = 200 %).
    pub panic_threshold: f64,
    pub max_scale_up_rate: f64,
    pub max_scale_down_rate: f64,
    pub min_scale: u32,
    /// 0 = unbounded.
    pub max_scale: u32,
    pub initial_scale: u32,
    pub scale_down_delay: Duration,
    pub scale_to_zero_grace: Duration,
    pub scale_to_zero_retention: Duration,
    /// -1 = the activator stays in the path; 0 = only at zero.
    pub target_burst_capacity: f64,
    pub enable_scale_to_zero: bool,
}

/// A bad annotation, named.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("annotation {PREFIX}{key}: {message}")]
pub struct SpecError {
    pub key: String,
    pub message: String,
}

struct Annotations<'a>(&'a BTreeMap<String, String>);

impl Annotations<'_> {
    fn raw(&self, key: &str) -> Option<&str> {
        self.0.get(&format!("{PREFIX}{key}")).map(String::as_str)
    }

    fn err(key: &str, message: impl Into<String>) -> SpecError {
        SpecError { key: key.into(), message: message.into() }
    }

    fn number(&self, key: &str, min: f64, max: f64) -> Result<Option<f64>, SpecError> {
        let Some(v) = self.raw(key) else {
            return Ok(None);
        };
        match v.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(Self::err(key, format!("{v:?} must be a number from {min} to {max}"))),
        }
    }

    fn count(&self, key: &str) -> Result<Option<u32>, SpecError> {
        let Some(v) = self.raw(key) else {
            return Ok(None);
        };
        v.trim().parse().map(Some).map_err(|_| Self::err(key, format!("{v:?} must be a non-negative integer")))
    }

    /// Go-style durations as Knative writes them: `60s`, `1m30s`, `500ms`, `2h`.
    fn duration(&self, key: &str, max: Duration) -> Result<Option<Duration>, SpecError> {
        let Some(v) = self.raw(key) else {
            return Ok(None);
        };
        match parse_duration(v.trim()) {
            Some(d) if d <= max => Ok(Some(d)),
            Some(_) => Err(Self::err(key, format!("{v:?} is longer than {max:?}"))),
            None => Err(Self::err(key, format!("{v:?} is not a duration (e.g. 60s, 1m30s, 500ms)"))),
        }
    }
}

/// Parses `1h2m3s`, `500ms`, `0s`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(unit)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

impl ScalingSpec {
    /// The spec of a revision from its template annotations, the platform
    /// defaults and its `containerConcurrency` (0 = unlimited).
    pub fn from_annotations(
        a: &BTreeMap<String, String>,
        d: &Defaults,
        container_concurrency: u32,
    ) -> Result<Self, SpecError> {
        let a = Annotations(a);
        let metric = match a.raw("metric") {
            None => d.metric,
            Some("concurrency") => Metric::Concurrency,
            Some("rps") => Metric::Rps,
            Some(other) => {
                return Err(Annotations::err("metric", format!("{other:?} must be concurrency or rps")));
            }
        };
        let default_target = match metric {
            Metric::Concurrency => d.target_concurrency,
            Metric::Rps => d.target_rps,
        };
        let mut target = a.number("target", 0.01, f64::MAX)?.unwrap_or(default_target);
        if metric == Metric::Concurrency && container_concurrency > 0 {
            // A soft target above the hard limit could never be reached.
            target = target.min(f64::from(container_concurrency));
        }
        let utilization =
            a.number("target-utilization-percentage", 1.0, 100.0)?.map_or(d.target_utilization, |p| p / 100.0);
        let stable_window = a.duration("window", Duration::from_secs(3600))?.unwrap_or(d.stable_window);
        if stable_window < Duration::from_secs(6) {
            return Err(Annotations::err("window", "must be at least 6s"));
        }
        let panic_pct = a.number("panic-window-percentage", 1.0, 100.0)?.unwrap_or(d.panic_window_percentage);
        let min_scale = a.count("min-scale")?.unwrap_or(d.min_scale);
        let max_scale = a.count("max-scale")?.unwrap_or(d.max_scale);
        if max_scale > 0 && min_scale > max_scale {
            return Err(Annotations::err("min-scale", format!("{min_scale} is above max-scale {max_scale}")));
        }
        let initial_scale = a.count("initial-scale")?.unwrap_or(d.initial_scale);
        if initial_scale == 0 && !d.allow_zero_initial_scale && a.raw("initial-scale").is_some() {
            return Err(Annotations::err(
                "initial-scale",
                "0 is not allowed on this platform (allow-zero-initial-scale is off)",
            ));
        }
        Ok(Self {
            metric,
            target_value: (target * utilization).max(0.01),
            total_value: if container_concurrency > 0 && metric == Metric::Concurrency {
                f64::from(container_concurrency)
            } else {
                target
            },
            stable_window,
            panic_window: stable_window.mul_f64(panic_pct / 100.0).max(Duration::from_secs(1)),
            panic_threshold: a
                .number("panic-threshold-percentage", 110.0, 1000.0)?
                .unwrap_or(d.panic_threshold_percentage)
                / 100.0,
            max_scale_up_rate: d.max_scale_up_rate,
            max_scale_down_rate: d.max_scale_down_rate,
            min_scale,
            max_scale,
            initial_scale,
            scale_down_delay: a.duration("scale-down-delay", Duration::from_secs(3600))?.unwrap_or(d.scale_down_delay),
            scale_to_zero_grace: d.scale_to_zero_grace,
            scale_to_zero_retention: a
                .duration("scale-to-zero-pod-retention-period", Duration::from_secs(3600))?
                .unwrap_or(d.scale_to_zero_retention),
            target_burst_capacity: a
                .number("target-burst-capacity", -1.0, f64::MAX)?
                .unwrap_or(d.target_burst_capacity),
            enable_scale_to_zero: d.enable_scale_to_zero,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_knatives() {
        let s = ScalingSpec::from_annotations(&BTreeMap::new(), &Defaults::default(), 0).unwrap();
        assert_eq!(s.metric, Metric::Concurrency);
        assert!((s.target_value - 70.0).abs() < 1e-9);
        assert_eq!(s.total_value, 100.0);
        assert_eq!(s.stable_window, Duration::from_secs(60));
        assert_eq!(s.panic_window, Duration::from_secs(6));
        assert_eq!(s.panic_threshold, 2.0);
        assert_eq!((s.min_scale, s.max_scale, s.initial_scale), (0, 0, 1));
        assert_eq!(s.target_burst_capacity, 200.0);
    }

    #[test]
    fn annotations_override_and_container_concurrency_caps_the_target() {
        let a = ann(&[
            ("target", "50"),
            ("target-utilization-percentage", "80"),
            ("window", "2m"),
            ("panic-window-percentage", "20"),
            ("min-scale", "2"),
            ("max-scale", "9"),
            ("scale-down-delay", "1m30s"),
        ]);
        let s = ScalingSpec::from_annotations(&a, &Defaults::default(), 10).unwrap();
        assert!((s.target_value - 8.0).abs() < 1e-9, "min(50, cc 10) x 0.8");
        assert_eq!(s.total_value, 10.0);
        assert_eq!(s.panic_window, Duration::from_secs(24));
        assert_eq!((s.min_scale, s.max_scale), (2, 9));
        assert_eq!(s.scale_down_delay, Duration::from_secs(90));
        let s = ScalingSpec::from_annotations(&ann(&[("metric", "rps"), ("target", "150")]), &Defaults::default(), 0)
            .unwrap();
        assert_eq!(s.metric, Metric::Rps);
        assert!((s.target_value - 105.0).abs() < 1e-9);
    }

    #[test]
    fn platform_defaults_apply_where_annotations_are_silent() {
        let d = Defaults {
            metric: Metric::Rps,
            target_rps: 50.0,
            min_scale: 2,
            max_scale: 8,
            scale_down_delay: Duration::from_secs(20),
            scale_to_zero_retention: Duration::from_secs(40),
            panic_window_percentage: 50.0,
            panic_threshold_percentage: 300.0,
            max_scale_up_rate: 10.0,
            target_burst_capacity: -1.0,
            ..Defaults::default()
        };
        let s = ScalingSpec::from_annotations(&BTreeMap::new(), &d, 0).unwrap();
        assert_eq!(s.metric, Metric::Rps);
        assert!((s.target_value - 35.0).abs() < 1e-9, "50 rps x 70 %");
        assert_eq!((s.min_scale, s.max_scale), (2, 8));
        assert_eq!((s.scale_down_delay, s.scale_to_zero_retention), (Duration::from_secs(20), Duration::from_secs(40)));
        assert_eq!((s.panic_window, s.panic_threshold), (Duration::from_secs(30), 3.0));
        assert_eq!((s.max_scale_up_rate, s.target_burst_capacity), (10.0, -1.0));
        let a = ann(&[("metric", "concurrency"), ("min-scale", "0"), ("max-scale", "3"), ("scale-down-delay", "0s")]);
        let s = ScalingSpec::from_annotations(&a, &d, 0).unwrap();
        assert_eq!(s.metric, Metric::Concurrency, "an annotation wins");
        assert_eq!((s.min_scale, s.max_scale, s.scale_down_delay), (0, 3, Duration::ZERO));
        assert_eq!(d.container_concurrency(None), 0);
        assert_eq!(Defaults { container_concurrency: 4, ..d.clone() }.container_concurrency(None), 4);
        assert_eq!(Defaults { container_concurrency: 4, ..d }.container_concurrency(Some(1)), 1);
    }

    #[test]
    fn bad_platform_defaults_name_the_flag() {
        assert_eq!(Defaults::default().check(), Ok(()));
        let bad = [
            (Defaults { max_scale_down_rate: 1.0, ..Defaults::default() }, "--max-scale-down-rate 1 must be from"),
            (Defaults { panic_threshold_percentage: 50.0, ..Defaults::default() }, "--panic-threshold-percentage 50"),
            (Defaults { target_utilization: 1.5, ..Defaults::default() }, "--target-utilization 150"),
            (Defaults { target_burst_capacity: -2.0, ..Defaults::default() }, "--target-burst-capacity -2"),
            (Defaults { min_scale: 3, max_scale: 2, ..Defaults::default() }, "--min-scale 3 is above --max-scale 2"),
            (Defaults { initial_scale: 0, ..Defaults::default() }, "--initial-scale 0 needs"),
            (Defaults { stable_window: Duration::from_secs(5), ..Defaults::default() }, "--stable-window 5s"),
        ];
        for (d, want) in bad {
            let err = d.check().unwrap_err();
            assert!(err.starts_with(want), "{err}");
        }
    }

    #[test]
    fn bad_annotations_are_named() {
        let d = Defaults::default();
        let e = ScalingSpec::from_annotations(&ann(&[("metric", "cpu")]), &d, 0).unwrap_err();
        assert_eq!(e.key, "metric");
        let e = ScalingSpec::from_annotations(&ann(&[("window", "5s")]), &d, 0).unwrap_err();
        assert_eq!(e.key, "window");
        let e = ScalingSpec::from_annotations(&ann(&[("scale-down-delay", "soon")]), &d, 0).unwrap_err();
        assert!(e.to_string().contains("autoscaling.weft.dev/scale-down-delay"), "{e}");
        let e = ScalingSpec::from_annotations(&ann(&[("min-scale", "3"), ("max-scale", "2")]), &d, 0).unwrap_err();
        assert_eq!(e.key, "min-scale");
        assert!(ScalingSpec::from_annotations(&ann(&[("initial-scale", "0")]), &d, 0).is_err());
        assert!(ScalingSpec::from_annotations(&ann(&[("target-burst-capacity", "-2")]), &d, 0).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("1x"), None);
    }
}
