//! Trigger filters, as Knative's: the `filters` dialects (`exact`, `prefix`,
//! `suffix`, `all`, `any`, `not`, `cesql`) and the legacy `filter.attributes`
//! exact map. A filter is compiled once (CESQL parsed, errors reported with the
//! trigger) and then matched against each event's attributes.

pub mod cesql;

use std::borrow::Cow;
use std::collections::BTreeMap;
pub use weft_crds::eventing::FilterSpec;

/// What a filter reads from an event: its context attributes and extensions,
/// by lower-case name (`id`, `source`, `type`, `subject`, ..., `partitionkey`).
pub trait Attributes {
    fn attribute(&self, name: &str) -> Option<Cow<'_, str>>;
}

impl Attributes for BTreeMap<String, String> {
    fn attribute(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get(name).map(|v| Cow::Borrowed(v.as_str()))
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FilterError {
    #[error("{path}: a filter needs exactly one of exact, prefix, suffix, all, any, not, cesql (found {found})")]
    Dialects { path: String, found: usize },
    #[error("{path}: {dialect} needs at least one attribute")]
    Empty { path: String, dialect: &'static str },
    #[error("{path}.cesql: {error}")]
    Cesql { path: String, error: cesql::ParseError },
}

/// A compiled filter.
#[derive(Debug, Clone)]
pub enum Filter {
    Exact(Vec<(String, String)>),
    Prefix(Vec<(String, String)>),
    Suffix(Vec<(String, String)>),
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Not(Box<Filter>),
    Cesql(cesql::Expr),
}

impl Filter {
    /// Compiles a Trigger's `filters` (all must match) and legacy
    /// `filter.attributes` (each non-empty value must equal the attribute).
    /// `path` names the field in errors, e.g. `spec.filters`.
    pub fn compile(specs: &[FilterSpec], legacy: Option<&BTreeMap<String, String>>) -> Result<Filter, FilterError> {
        let mut all = specs
            .iter()
            .enumerate()
            .map(|(i, s)| compile_one(s, &format!("spec.filters[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(attrs) = legacy {
            // Knative: an empty value in the legacy map matches any value.
            let pairs = attrs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.to_lowercase(), v.clone()));
            all.push(Filter::Exact(pairs.collect()));
        }
        Ok(Filter::All(all))
    }

    pub fn matches(&self, event: &impl Attributes) -> bool {
        match self {
            Filter::Exact(p) => each(p, event, |v, want| v == want),
            Filter::Prefix(p) => each(p, event, |v, want| v.starts_with(want)),
            Filter::Suffix(p) => each(p, event, |v, want| v.ends_with(want)),
            Filter::All(fs) => fs.iter().all(|f| f.matches(event)),
            Filter::Any(fs) => fs.iter().any(|f| f.matches(event)),
            Filter::Not(f) => !f.matches(event),
            Filter::Cesql(e) => e.matches(event),
        }
    }
}

/// Every attribute present and passing `test` (a missing attribute fails).
fn each(pairs: &[(String, String)], event: &impl Attributes, test: impl Fn(&str, &str) -> bool) -> bool {
    pairs.iter().all(|(k, want)| event.attribute(k).is_some_and(|v| test(&v, want)))
}

fn compile_one(s: &FilterSpec, path: &str) -> Result<Filter, FilterError> {
    let found = [s.exact.is_some(), s.prefix.is_some(), s.suffix.is_some(), s.all.is_some(), s.any.is_some()]
        .into_iter()
        .chain([s.not.is_some(), s.cesql.is_some()])
        .filter(|b| *b)
        .count();
    if found != 1 {
        return Err(FilterError::Dialects { path: path.to_string(), found });
    }
    let pairs = |m: &BTreeMap<String, String>, dialect: &'static str| {
        if m.is_empty() {
            return Err(FilterError::Empty { path: path.to_string(), dialect });
        }
        Ok(m.iter().map(|(k, v)| (k.to_lowercase(), v.clone())).collect())
    };
    let list = |fs: &[FilterSpec], name: &str| -> Result<Vec<Filter>, FilterError> {
        fs.iter().enumerate().map(|(i, f)| compile_one(f, &format!("{path}.{name}[{i}]"))).collect()
    };
    Ok(match s {
        FilterSpec { exact: Some(m), .. } => Filter::Exact(pairs(m, "exact")?),
        FilterSpec { prefix: Some(m), .. } => Filter::Prefix(pairs(m, "prefix")?),
        FilterSpec { suffix: Some(m), .. } => Filter::Suffix(pairs(m, "suffix")?),
        FilterSpec { all: Some(fs), .. } => Filter::All(list(fs, "all")?),
        FilterSpec { any: Some(fs), .. } => Filter::Any(list(fs, "any")?),
        FilterSpec { not: Some(f), .. } => Filter::Not(Box::new(compile_one(f, &format!("{path}.not"))?)),
        FilterSpec { cesql: Some(q), .. } => {
            Filter::Cesql(cesql::parse(q).map_err(|error| FilterError::Cesql { path: path.to_string(), error })?)
        }
        _ => return Err(FilterError::Dialects { path: path.to_string(), found: 0 }),
    })
}

#[cfg(test)]
mod tests;
