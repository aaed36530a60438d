//! The route table: which function (and which revision of it) serves a request.
//!
//! Built by the control plane from the Functions' resolved traffic, swapped in
//! whole (readers never see half an update), and read on every request. A route
//! names revisions only; the endpoints of a revision live in [`crate::Endpoints`].

// Fx rather than SipHash: looked up per request with short keys; the tables
// are built from configuration, so keys from the wire cannot flood them.
use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

/// Revisions of one function with cumulative weights, for a weighted pick.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WeightedSplit {
    /// `(revision, cumulative weight)`, ascending; zero-weight entries dropped.
    entries: Vec<(String, u32)>,
}

impl WeightedSplit {
    /// Builds a split from `(revision, percent)`; the same revision may appear
    /// more than once (its shares add up).
    pub fn new<'a>(targets: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let mut total = 0;
        let entries = targets
            .into_iter()
            .filter(|(_, w)| *w > 0)
            .map(|(r, w)| {
                total += w;
                (r.to_string(), total)
            })
            .collect();
        Self { entries }
    }

    /// `(revision, cumulative weight)`, ascending.
    pub fn entries(&self) -> impl Iterator<Item = (&str, u32)> {
        self.entries.iter().map(|(r, cum)| (r.as_str(), *cum))
    }

    pub fn total(&self) -> u32 {
        self.entries.last().map_or(0, |e| e.1)
    }

    /// Picks a revision with probability proportional to its weight. `roll` is a
    /// uniform number in `0..total()` (injected so tests are deterministic).
    pub fn pick_with(&self, roll: u32) -> Option<&str> {
        let i = self.entries.partition_point(|(_, cum)| *cum <= roll);
        self.entries.get(i).map(|(r, _)| r.as_str())
    }

    /// Picks with the thread's fast random generator.
    pub fn pick(&self) -> Option<&str> {
        match self.total() {
            0 => None,
            t => self.pick_with(fastrand::u32(0..t)),
        }
    }
}

/// Everything needed to route to one function.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FunctionRoute {
    pub namespace: String,
    pub name: String,
    pub split: WeightedSplit,
    /// `(tag, revision)`.
    pub tags: Vec<(String, String)>,
    /// RPC interfaces the function serves: `(interface name, protocol)`.
    pub interfaces: Vec<(String, String)>,
    /// Timeouts, retries, ejection, rate limit and faults for its requests.
    pub policy: Arc<crate::resilience::Policy>,
}

/// Outcome of a lookup: the function, a pinned revision for a tag route, and how
/// much of the path belongs to the route (stripped before the function sees it).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub route: Arc<FunctionRoute>,
    pub tag_revision: Option<String>,
    /// Length of the path prefix `/<namespace>/<function>` for path routes.
    pub prefix_len: usize,
}

/// A lookup's outcome borrowed from the table, for the per-request paths:
/// no reference count of the shared route is touched (each would bounce its
/// cache line between the worker threads) and no string is copied.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    pub route: &'a Arc<FunctionRoute>,
    pub tag_revision: Option<&'a str>,
    /// As in [`Resolved::prefix_len`].
    pub prefix_len: usize,
}

impl Found<'_> {
    pub fn owned(self) -> Resolved {
        let (route, tag_revision) = (self.route.clone(), self.tag_revision.map(str::to_string));
        Resolved { route, tag_revision, prefix_len: self.prefix_len }
    }
}

impl Resolved {
    /// The revision to send this request to.
    pub fn pick_revision(&self) -> Option<&str> {
        self.tag_revision.as_deref().or_else(|| self.route.split.pick())
    }
}

#[derive(Debug, Clone)]
enum HostEntry {
    Function(Arc<FunctionRoute>),
    Tag(Arc<FunctionRoute>, String),
}

/// A function serving an interface, and the protocol it serves it over.
#[derive(Debug, Clone)]
struct InterfaceEntry {
    route: Arc<FunctionRoute>,
    protocol: String,
}

/// Host, path and interface routes of all functions.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    domain: String,
    hosts: HashMap<String, HostEntry>,
    /// By namespace, then name: looked up with the request's `&str`s.
    paths: HashMap<String, HashMap<String, Arc<FunctionRoute>>>,
    interfaces: HashMap<String, InterfaceEntry>,
}

/// Why an RPC service name does not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("no function serves interface {0:?}")]
    Unknown(String),
    #[error("interface {service:?} is served over {served}, not {asked}")]
    WrongProtocol { service: String, served: String, asked: String },
}

impl RouteTable {
    /// Builds the table; host routes are `<fn>.<ns>.<domain>`, `<fn>.<ns>`
    /// (the name weft's DNS answers) and `<tag>-<fn>.<ns>.<domain>`, and the
    /// names of interfaces served over `http` or `grpc`; path routes
    /// `/<ns>/<fn>/…`; interface routes the names in
    /// [`FunctionRoute::interfaces`]. Two functions claiming one
    /// interface: the first in (namespace, name) order keeps it, so the
    /// outcome does not depend on the order functions were listed in.
    pub fn new(domain: &str, routes: impl IntoIterator<Item = FunctionRoute>) -> Self {
        let mut table = Self { domain: domain.to_string(), ..Default::default() };
        let mut routes: Vec<Arc<FunctionRoute>> = routes.into_iter().map(Arc::new).collect();
        routes.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        for r in routes {
            for (iface, protocol) in &r.interfaces {
                let entry = InterfaceEntry { route: r.clone(), protocol: protocol.clone() };
                table.interfaces.entry(iface.clone()).or_insert(entry);
                if protocol == "http" || protocol == "grpc" {
                    let host = iface.to_ascii_lowercase();
                    table.hosts.entry(host).or_insert_with(|| HostEntry::Function(r.clone()));
                }
            }
            let (ns, name) = (&r.namespace, &r.name);
            table.hosts.insert(format!("{name}.{ns}.{domain}"), HostEntry::Function(r.clone()));
            table.hosts.insert(format!("{name}.{ns}"), HostEntry::Function(r.clone()));
            for (tag, rev) in &r.tags {
                table.hosts.insert(format!("{tag}-{name}.{ns}.{domain}"), HostEntry::Tag(r.clone(), rev.clone()));
            }
            table.paths.entry(ns.clone()).or_default().insert(name.clone(), r);
        }
        table
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Looks up by host first (port and case ignored), then by path.
    pub fn resolve(&self, host: Option<&str>, path: &str) -> Option<Resolved> {
        self.find(host, path).map(Found::owned)
    }

    /// [`Self::resolve`], borrowed from the table.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<Found<'_>> {
        self.find_host(host).or_else(|| self.find_path(path))
    }

    /// Looks up an RPC service by interface name, for a frame of `protocol`;
    /// `tag` (from a request header) pins the revision of a tagged target.
    pub fn resolve_service(&self, service: &str, protocol: &str, tag: Option<&str>) -> Result<Resolved, ServiceError> {
        let e = self.interfaces.get(service).ok_or_else(|| ServiceError::Unknown(service.to_string()))?;
        // gRPC is HTTP/2 on the wire: an interface declared `grpc` or `http` is
        // reached by any HTTP request.
        let http = |p: &str| p == "http" || p == "grpc";
        if e.protocol != protocol && !(http(&e.protocol) && http(protocol)) {
            return Err(ServiceError::WrongProtocol {
                service: service.to_string(),
                served: e.protocol.clone(),
                asked: protocol.to_string(),
            });
        }
        let tag_revision = tag.and_then(|t| e.route.tags.iter().find(|(name, _)| name == t)).map(|(_, r)| r.clone());
        Ok(Resolved { route: e.route.clone(), tag_revision, prefix_len: 0 })
    }

    /// Every function with a route.
    pub fn functions(&self) -> impl Iterator<Item = &Arc<FunctionRoute>> {
        self.paths.values().flat_map(|names| names.values())
    }

    /// The function that gets requests for interface `name`: `(namespace, function)`.
    pub fn interface_owner(&self, name: &str) -> Option<(&str, &str)> {
        self.interfaces.get(name).map(|e| (e.route.namespace.as_str(), e.route.name.as_str()))
    }

    /// Function `name` in `namespace`, as a route with no tag pinned.
    pub fn function(&self, namespace: &str, name: &str) -> Option<Resolved> {
        let route = self.paths.get(namespace)?.get(name)?.clone();
        Some(Resolved { route, tag_revision: None, prefix_len: 0 })
    }

    fn find_host(&self, host: Option<&str>) -> Option<Found<'_>> {
        let host = host?;
        // Hosts are usually lower case already: then nothing is allocated.
        let lower: std::borrow::Cow<'_, str> =
            if host.bytes().any(|b| b.is_ascii_uppercase()) { host.to_ascii_lowercase().into() } else { host.into() };
        let bare =
            lower.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(&*lower, |(h, _)| h);
        let (route, tag_revision) = match self.hosts.get(bare.trim_end_matches('.'))? {
            HostEntry::Function(r) => (r, None),
            HostEntry::Tag(r, rev) => (r, Some(rev.as_str())),
        };
        Some(Found { route, tag_revision, prefix_len: 0 })
    }

    fn find_path(&self, path: &str) -> Option<Found<'_>> {
        let rest = path.strip_prefix('/')?;
        let (ns, rest) = rest.split_once('/')?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let name = &rest[..end];
        let route = self.paths.get(ns)?.get(name)?;
        Some(Found { route, tag_revision: None, prefix_len: 1 + ns.len() + 1 + name.len() })
    }
}

#[cfg(test)]
mod tests;
