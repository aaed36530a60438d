//! From Functions' resolved traffic (API types) to the sidecar's route table.

use weft_crds::Function;
use weft_sidecar::{FunctionRoute, RouteTable, WeightedSplit};

/// The route of one Function, if it has resolved traffic.
pub fn route_of(f: &Function) -> Option<FunctionRoute> {
    let status = f.status.as_ref()?;
    if status.traffic.is_empty() {
        return None;
    }
    let split = WeightedSplit::new(
        status.traffic.iter().filter_map(|t| Some((t.revision_name.as_deref()?, t.percent.unwrap_or(0)))),
    );
    let tags = status.traffic.iter().filter_map(|t| Some((t.tag.clone()?, t.revision_name.clone()?))).collect();
    Some(FunctionRoute {
        namespace: f.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
        name: f.metadata.name.clone()?,
        split,
        tags,
        interfaces: f.spec.interfaces.iter().map(|i| (i.name.clone(), i.protocol.clone())).collect(),
    })
}

pub fn table(domain: &str, functions: &[Function]) -> RouteTable {
    RouteTable::new(domain, functions.iter().filter_map(route_of))
}
