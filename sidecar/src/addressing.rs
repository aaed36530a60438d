//! Interface-name addressing: every function gets a loopback address of its
//! own, and every name it is known by — each declared interface
//! (`com.example.UserService`), `<fn>.<ns>` and `<fn>.<ns>.<domain>` —
//! resolves to it. The sidecar listens on each such address, so a legacy
//! client configured with a service's DNS name and port reaches the sidecar,
//! which routes on the frame's service name, and on the address when the frame
//! names a service nobody declared (one legacy process exporting several
//! interfaces does not have to declare them all).
//!
//! Pure: no sockets. The addresses are a hash of `<ns>/<fn>` in 127.128.0.0/9
//! (clear of 127.0.0.1 and Debian's 127.0.1.1), so a function keeps its
//! address across restarts and across changes to other functions, except on a
//! hash collision, resolved by probing in (namespace, name) order.

use crate::routing::RouteTable;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Where each function listens, and the names that resolve to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAddresses {
    /// Lowercase DNS name without the trailing dot -> address.
    by_name: HashMap<String, Ipv4Addr>,
    /// Address -> `(namespace, function)`.
    by_addr: HashMap<Ipv4Addr, (String, String)>,
}

impl ServiceAddresses {
    /// The addresses of every function in `table`.
    pub fn new(table: &RouteTable) -> Self {
        let mut functions: Vec<_> = table.functions().collect();
        functions.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let mut out = Self::default();
        for f in functions {
            let ip = out.free_address(&format!("{}/{}", f.namespace, f.name));
            out.by_addr.insert(ip, (f.namespace.clone(), f.name.clone()));
            let names =
                [format!("{}.{}", f.name, f.namespace), format!("{}.{}.{}", f.name, f.namespace, table.domain())];
            for name in names.into_iter().chain(f.interfaces.iter().map(|(i, _)| i.clone())) {
                // An interface two functions declare goes where the route table sends it.
                let owner = table.interface_owner(&name).unwrap_or((&f.namespace, &f.name));
                if owner == (f.namespace.as_str(), f.name.as_str()) {
                    out.by_name.insert(name.to_ascii_lowercase(), ip);
                }
            }
        }
        out
    }

    /// The address of `name` (any case, with or without the trailing dot).
    pub fn lookup(&self, name: &str) -> Option<Ipv4Addr> {
        self.by_name.get(name.trim_end_matches('.').to_ascii_lowercase().as_str()).copied()
    }

    /// The function listening at `ip`.
    pub fn function_at(&self, ip: Ipv4Addr) -> Option<(&str, &str)> {
        self.by_addr.get(&ip).map(|(ns, f)| (ns.as_str(), f.as_str()))
    }

    /// Every address in use.
    pub fn addrs(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.by_addr.keys().copied()
    }

    /// The first address, from the hash of `key` on, that no function holds.
    fn free_address(&self, key: &str) -> Ipv4Addr {
        let mut h = fnv1a(key.as_bytes());
        loop {
            let ip = address(h);
            if !self.by_addr.contains_key(&ip) {
                return ip;
            }
            h = h.wrapping_add(1);
        }
    }
}

/// 127.128.0.1 – 127.255.255.254: 23 bits of the hash, never .0 or .255 last.
fn address(h: u32) -> Ipv4Addr {
    let b = 128 | ((h >> 16) & 0x7f) as u8;
    let c = (h >> 8) as u8;
    let d = 1 + (h as u8 % 254);
    Ipv4Addr::new(127, b, c, d)
}

/// FNV-1a, 32 bits: stable across releases and platforms (std's hasher is not).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{FunctionRoute, WeightedSplit};

    fn route(ns: &str, name: &str, interfaces: &[&str]) -> FunctionRoute {
        FunctionRoute {
            namespace: ns.into(),
            name: name.into(),
            split: WeightedSplit::new([("r", 100)]),
            tags: vec![],
            interfaces: interfaces.iter().map(|i| (i.to_string(), "bolt".to_string())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn every_name_of_a_function_resolves_to_its_own_address() {
        let t = RouteTable::new(
            "localhost",
            [
                route("default", "users", &["com.example.UserService", "com.example.OrderService"]),
                route("default", "hello", &[]),
            ],
        );
        let a = ServiceAddresses::new(&t);
        let users = a.lookup("com.example.UserService").unwrap();
        assert_eq!(a.lookup("COM.EXAMPLE.ORDERSERVICE."), Some(users), "any case, trailing dot");
        assert_eq!(a.lookup("users.default"), Some(users));
        assert_eq!(a.lookup("users.default.localhost"), Some(users));
        assert_eq!(a.function_at(users), Some(("default", "users")));
        let hello = a.lookup("hello.default").unwrap();
        assert_ne!(hello, users);
        assert_eq!(a.lookup("com.example.Nope"), None);
        assert!(a.addrs().all(|ip| ip.octets()[0] == 127 && ip.octets()[1] >= 128 && ip.octets()[3] != 0));
    }

    #[test]
    fn a_function_keeps_its_address_when_others_come_and_go() {
        let one = ServiceAddresses::new(&RouteTable::new("localhost", [route("default", "users", &[])]));
        let many: Vec<_> = (0..200).map(|i| route("default", &format!("f{i}"), &[])).collect();
        let more = ServiceAddresses::new(&RouteTable::new(
            "localhost",
            many.into_iter().chain([route("default", "users", &[])]),
        ));
        assert_eq!(one.lookup("users.default"), more.lookup("users.default"));
        assert_eq!(more.addrs().count(), 201, "distinct addresses, collisions probed");
    }

    #[test]
    fn a_contested_interface_resolves_where_its_requests_are_routed() {
        let t =
            RouteTable::new("localhost", [route("default", "b", &["com.x.S"]), route("default", "a", &["com.x.S"])]);
        let a = ServiceAddresses::new(&t);
        assert_eq!(a.lookup("com.x.S"), a.lookup("a.default"), "the route table gives it to a");
    }
}
