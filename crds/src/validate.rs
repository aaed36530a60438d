//! Validation of resources as written by users. Every error names the field that
//! is wrong and says how to fix it; all problems are reported at once.

use crate::function::{Function, FunctionSpec, ResilienceSpec, TrafficTarget};
use crate::names::{MAX_FUNCTION_NAME, check_dns_label};
use crate::quantity::parse_memory;
use crate::revision::{MAX_MEMORY_BYTES, MAX_TIMEOUT_SECONDS, RevisionSpec};
use crate::{AUTOSCALING_PREFIX, TemplateMetadata};
use std::collections::BTreeSet;
use std::fmt;

/// Knative's upper bound for `containerConcurrency`.
pub const MAX_CONTAINER_CONCURRENCY: u32 = 1000;
/// Smallest memory cap: one wasm page.
const MIN_MEMORY_BYTES: u64 = 64 << 10;
const PROTOCOLS: [&str; 5] = ["dubbo", "bolt", "wrpc", "grpc", "http"];

/// One problem, at a field path such as `spec.traffic[1].percent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// All problems found in one resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub(crate) fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }

    pub(crate) fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for ValidationErrors {}

/// Validates a Function as applied by a user.
pub fn validate_function(f: &Function) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    let name = f.metadata.name.as_deref().unwrap_or("");
    if let Err(m) = check_dns_label(name, MAX_FUNCTION_NAME) {
        errs.add("metadata.name", m);
    }
    if let Some(ns) = f.metadata.namespace.as_deref()
        && let Err(m) = check_dns_label(ns, 63)
    {
        errs.add("metadata.namespace", m);
    }
    check_function_spec(&f.spec, &mut errs);
    errs.into_result()
}

fn check_function_spec(spec: &FunctionSpec, errs: &mut ValidationErrors) {
    check_template_metadata(&spec.template.metadata, errs);
    check_revision_spec(&spec.template.spec, "spec.template.spec", errs);
    check_traffic(&spec.traffic, errs);
    for (i, iface) in spec.interfaces.iter().enumerate() {
        if iface.name.trim().is_empty() {
            errs.add(format!("spec.interfaces[{i}].name"), "must not be empty");
        }
        if !PROTOCOLS.contains(&iface.protocol.as_str()) {
            errs.add(format!("spec.interfaces[{i}].protocol"), format!("must be one of {}", PROTOCOLS.join(", ")));
        }
    }
    if let Some(r) = &spec.resilience {
        check_resilience(r, errs);
    }
}

fn check_resilience(r: &ResilienceSpec, errs: &mut ValidationErrors) {
    let at = "spec.resilience";
    if r.timeout_ms.is_some_and(|t| !(1..=3_600_000).contains(&t)) {
        errs.add(format!("{at}.timeoutMs"), "must be between 1 and 3600000");
    }
    if let Some(n) = r.retries.as_ref().and_then(|x| x.attempts).filter(|n| !(1..=10).contains(n)) {
        errs.add(format!("{at}.retries.attempts"), format!("{n} must be between 1 and 10"));
    }
    if let Some(b) = &r.circuit_breaker {
        if b.consecutive_failures == 0 {
            errs.add(format!("{at}.circuitBreaker.consecutiveFailures"), "must be at least 1");
        }
        if b.eject_seconds.is_some_and(|s| !(1..=3600).contains(&s)) {
            errs.add(format!("{at}.circuitBreaker.ejectSeconds"), "must be between 1 and 3600");
        }
    }
    if r.rate_limit.as_ref().is_some_and(|l| l.requests_per_second == 0) {
        errs.add(format!("{at}.rateLimit.requestsPerSecond"), "must be at least 1");
    }
    if let Some(f) = &r.fault {
        for (name, v) in [("abortPercent", f.abort_percent), ("delayPercent", f.delay_percent)] {
            if v > 100 {
                errs.add(format!("{at}.fault.{name}"), "must be between 0 and 100");
            }
        }
        if f.delay_ms > 3_600_000 {
            errs.add(format!("{at}.fault.delayMs"), "must be at most 3600000");
        }
    }
}

/// Checks a revision spec; `at` is the path prefix used in messages.
pub fn check_revision_spec(spec: &RevisionSpec, at: &str, errs: &mut ValidationErrors) {
    check_source(spec, at, errs);
    let timeout = spec.timeout_seconds();
    if timeout == 0 || timeout > MAX_TIMEOUT_SECONDS {
        errs.add(format!("{at}.timeoutSeconds"), format!("must be between 1 and {MAX_TIMEOUT_SECONDS}"));
    }
    match parse_memory(spec.memory()) {
        Ok(b) if !(MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&b) => {
            errs.add(format!("{at}.limits.memory"), "must be between 64Ki and 4Gi")
        }
        Ok(_) => {}
        Err(e) => errs.add(format!("{at}.limits.memory"), e.to_string()),
    }
    if spec.container_concurrency.unwrap_or(0) > MAX_CONTAINER_CONCURRENCY {
        errs.add(format!("{at}.containerConcurrency"), format!("must be 0 (unlimited) to {MAX_CONTAINER_CONCURRENCY}"));
    }
    for (i, e) in spec.env.iter().enumerate() {
        if !is_env_name(&e.name) {
            errs.add(format!("{at}.env[{i}].name"), "must be letters, digits and '_', not starting with a digit");
        }
    }
}

fn check_source(spec: &RevisionSpec, at: &str, errs: &mut ValidationErrors) {
    let count = [spec.wasm.is_some(), spec.process.is_some(), spec.image.is_some()].iter().filter(|b| **b).count();
    if count != 1 {
        errs.add(at, "set exactly one of wasm, process or image");
    }
    if let Some(w) = &spec.wasm {
        if w.path.is_none() && w.url.is_none() && w.config_map.is_none() && w.oci.is_none() && w.digest.is_none() {
            errs.add(format!("{at}.wasm"), "set path (a local .wasm file), url, configMap or oci");
        }
        check_oci(w, at, errs);
        if let Some(u) = &w.url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            errs.add(format!("{at}.wasm.url"), "must be an http:// or https:// URL");
        }
        if let Some(c) = &w.config_map {
            if let Err(m) = c.name.split('.').try_for_each(|label| check_dns_label(label, 63)) {
                errs.add(format!("{at}.wasm.configMap.name"), format!("must be a DNS subdomain: {m}"));
            }
            if c.key().is_empty() {
                errs.add(format!("{at}.wasm.configMap.key"), "must not be empty");
            }
        }
        if let Some(d) = &w.digest
            && !is_sha256_digest(d)
        {
            errs.add(format!("{at}.wasm.digest"), "must be sha256:<64 hex digits>");
        }
    }
    if let Some(p) = &spec.process
        && p.command.first().is_none_or(|c| c.is_empty())
    {
        errs.add(format!("{at}.process.command"), "must name a program");
    }
}

fn check_template_metadata(meta: &TemplateMetadata, errs: &mut ValidationErrors) {
    let scale = |key: &str| meta.annotations.get(&format!("{AUTOSCALING_PREFIX}{key}"));
    let mut parsed = [None, None];
    for (i, key) in ["min-scale", "max-scale"].iter().enumerate() {
        if let Some(v) = scale(key) {
            match v.parse::<u32>() {
                Ok(n) => parsed[i] = Some(n),
                Err(_) => errs.add(
                    format!("spec.template.metadata.annotations[{AUTOSCALING_PREFIX}{key}]"),
                    format!("{v:?} is not a non-negative integer"),
                ),
            }
        }
    }
    if let [Some(min), Some(max)] = parsed
        && max > 0
        && min > max
    {
        errs.add(
            format!("spec.template.metadata.annotations[{AUTOSCALING_PREFIX}min-scale]"),
            format!("min-scale {min} is above max-scale {max}"),
        );
    }
}

fn check_traffic(traffic: &[TrafficTarget], errs: &mut ValidationErrors) {
    let mut tags = BTreeSet::new();
    let mut sum = 0u32;
    for (i, t) in traffic.iter().enumerate() {
        let at = format!("spec.traffic[{i}]");
        let latest = t.latest_revision.unwrap_or(false);
        match (&t.revision_name, latest) {
            (Some(_), true) => errs.add(&at, "set either revisionName or latestRevision: true, not both"),
            (None, false) => errs.add(&at, "set revisionName or latestRevision: true"),
            (Some(r), false) => {
                if let Err(m) = check_dns_label(r, 63) {
                    errs.add(format!("{at}.revisionName"), m);
                }
            }
            (None, true) => {}
        }
        let p = t.percent.unwrap_or(0);
        if p > 100 {
            errs.add(format!("{at}.percent"), "must be between 0 and 100");
        }
        sum += p;
        if let Some(tag) = &t.tag {
            if let Err(m) = check_dns_label(tag, 63) {
                errs.add(format!("{at}.tag"), m);
            } else if !tags.insert(tag.clone()) {
                errs.add(format!("{at}.tag"), format!("tag {tag:?} is used twice"));
            }
        }
    }
    if !traffic.is_empty() && sum != 100 {
        errs.add("spec.traffic", format!("percents add up to {sum}; they must add up to 100"));
    }
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `sha256:` followed by 64 lowercase hex digits.
fn check_oci(w: &crate::WasmSource, at: &str, errs: &mut ValidationErrors) {
    if let Some(r) = &w.oci
        && let Err(m) = check_oci_reference(r)
    {
        errs.add(format!("{at}.wasm.oci"), m);
    }
    if let Some(secret) = &w.pull_secret {
        if w.oci.is_none() {
            errs.add(format!("{at}.wasm.pullSecret"), "is only used with wasm.oci");
        }
        if let Err(m) = secret.split('.').try_for_each(|label| check_dns_label(label, 63)) {
            errs.add(format!("{at}.wasm.pullSecret"), format!("must be a DNS subdomain: {m}"));
        }
    }
}

/// An OCI reference as the distribution spec writes it:
/// `[registry[:port]/]repository[:tag][@sha256:hex]`, with a lowercase repository.
pub fn check_oci_reference(r: &str) -> Result<(), String> {
    if r.contains("://") {
        return Err("an OCI reference has no scheme: write registry/repository:tag".into());
    }
    let (name, digest) = match r.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (r, None),
    };
    if digest.is_some_and(|d| !is_sha256_digest(d)) {
        return Err("the digest after '@' must be sha256:<64 hex digits>".into());
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // A first part with a dot or a port, or `localhost`, names the registry.
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        parts.remove(0);
    }
    let last = parts.pop().unwrap_or_default();
    let (last, tag) = match last.split_once(':') {
        Some((l, t)) => (l, Some(t)),
        None => (last, None),
    };
    if let Some(t) = tag
        && !is_tag(t)
    {
        return Err(format!("tag {t:?}: letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-'"));
    }
    match parts.iter().chain([&last]).find(|p| !is_path_component(p)) {
        Some(p) => Err(format!("repository part {p:?}: lowercase letters and digits, separated by '.', '_' or '-'")),
        None => Ok(()),
    }
}

fn is_tag(t: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    (1..=128).contains(&t.len()) && !t.starts_with(['.', '-']) && t.chars().all(ok)
}

fn is_path_component(p: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !p.is_empty()
        && p.starts_with(alnum)
        && p.ends_with(alnum)
        && p.chars().all(|c| alnum(c) || matches!(c, '.' | '_' | '-'))
}

pub fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)))
}

#[cfg(test)]
mod tests;
