use super::*;

fn hello(split: &[(&str, u32)], tags: &[(&str, &str)]) -> FunctionRoute {
    FunctionRoute {
        namespace: "default".into(),
        name: "hello".into(),
        split: WeightedSplit::new(split.iter().copied()),
        tags: tags.iter().map(|(t, r)| (t.to_string(), r.to_string())).collect(),
        interfaces: vec![],
        ..Default::default()
    }
}

#[test]
fn weighted_pick_covers_the_ranges_exactly() {
    let s = WeightedSplit::new([("a", 90), ("b", 10), ("c", 0)]);
    assert_eq!(s.total(), 100);
    assert_eq!(s.pick_with(0), Some("a"));
    assert_eq!(s.pick_with(89), Some("a"));
    assert_eq!(s.pick_with(90), Some("b"));
    assert_eq!(s.pick_with(99), Some("b"));
    assert_eq!(WeightedSplit::new([("a", 0)]).pick(), None);
}

#[test]
fn ninety_ten_split_is_ninety_ten_over_many_picks() {
    let s = WeightedSplit::new([("hello-00001", 90), ("hello-00002", 10)]);
    let mut rng = fastrand::Rng::with_seed(42);
    let n = 100_000;
    let b = (0..n).filter(|_| s.pick_with(rng.u32(0..s.total())) == Some("hello-00002")).count();
    // 10 % ± 0.6 %: over five standard deviations for n = 100 000.
    let share = b as f64 / n as f64;
    assert!((0.094..0.106).contains(&share), "share of b = {share}");
}

#[test]
fn host_routes_ignore_port_and_case_and_tags_pin_a_revision() {
    let t = RouteTable::new("localhost", [hello(&[("hello-00001", 100)], &[("canary", "hello-00002")])]);
    let r = t.resolve(Some("Hello.Default.localhost:8080"), "/x").unwrap();
    assert_eq!((r.route.name.as_str(), r.prefix_len), ("hello", 0));
    assert_eq!(r.pick_revision(), Some("hello-00001"));
    let r = t.resolve(Some("canary-hello.default.localhost"), "/").unwrap();
    assert_eq!(r.pick_revision(), Some("hello-00002"));
    assert!(t.resolve(Some("other.default.localhost"), "/").is_none());
}

#[test]
fn path_routes_match_whole_segments() {
    let t = RouteTable::new("localhost", [hello(&[("hello-00001", 100)], &[])]);
    for (path, prefix) in
        [("/default/hello/", 14), ("/default/hello", 14), ("/default/hello/a/b", 14), ("/default/hello?x=1", 14)]
    {
        let r = t.resolve(Some("127.0.0.1:8080"), path).unwrap();
        assert_eq!(r.prefix_len, prefix, "{path}");
    }
    for path in ["/default/hellox", "/default", "/", "/prod/hello/"] {
        assert!(t.resolve(Some("127.0.0.1"), path).is_none(), "{path}");
    }
}

#[test]
fn interfaces_resolve_by_name_and_protocol_with_tag_pins() {
    let mut users = hello(&[("users-00001", 90), ("users-00002", 10)], &[("canary", "users-00002")]);
    users.name = "users".into();
    users.interfaces = vec![("com.example.UserService".into(), "dubbo".into())];
    let mut other = hello(&[("a-00001", 100)], &[]);
    other.name = "a-claims-it-too".into();
    other.interfaces = vec![("com.example.UserService".into(), "bolt".into())];
    let t = RouteTable::new("localhost", [users, other]);
    // "a-claims-it-too" sorts first and keeps the interface, whatever the list order.
    assert!(matches!(
        t.resolve_service("com.example.UserService", "dubbo", None),
        Err(ServiceError::WrongProtocol { .. })
    ));
    let r = t.resolve_service("com.example.UserService", "bolt", None).unwrap();
    assert_eq!(r.route.name, "a-claims-it-too");
    assert!(matches!(t.resolve_service("com.example.Nope", "bolt", None), Err(ServiceError::Unknown(_))));
}

#[test]
fn interface_tag_header_pins_the_tagged_revision() {
    let mut users = hello(&[("users-00001", 100)], &[("canary", "users-00002")]);
    users.interfaces = vec![("com.example.UserService".into(), "bolt".into())];
    let t = RouteTable::new("localhost", [users]);
    let r = t.resolve_service("com.example.UserService", "bolt", Some("canary")).unwrap();
    assert_eq!(r.pick_revision(), Some("users-00002"));
    let r = t.resolve_service("com.example.UserService", "bolt", Some("unknown-tag")).unwrap();
    assert_eq!(r.pick_revision(), Some("users-00001"));
}

#[test]
fn the_names_weft_dns_answers_are_host_routes_too() {
    let mut users = hello(&[("users-00001", 100)], &[]);
    users.name = "users".into();
    users.interfaces = vec![("com.example.Web".into(), "http".into()), ("com.example.Rpc".into(), "dubbo".into())];
    let t = RouteTable::new("localhost", [users]);
    for host in ["users.default:8080", "com.example.web:8080", "COM.EXAMPLE.WEB"] {
        assert_eq!(t.resolve(Some(host), "/").map(|r| r.route.name.clone()).as_deref(), Some("users"), "{host}");
    }
    assert!(t.resolve(Some("com.example.rpc"), "/").is_none(), "an RPC interface is not an HTTP host");
}

#[test]
fn find_borrows_what_resolve_copies() {
    let t = RouteTable::new("localhost", [hello(&[("hello-00001", 100)], &[("canary", "hello-00002")])]);
    let route = t.function("default", "hello").unwrap().route;
    let count = Arc::strong_count(&route);
    let by_tag = t.find(Some("canary-hello.default.localhost"), "/").unwrap();
    let by_path = t.find(Some("127.0.0.1:8080"), "/default/hello/x").unwrap();
    assert_eq!(Arc::strong_count(&route), count, "no reference taken");
    assert!(Arc::ptr_eq(by_tag.route, &route) && Arc::ptr_eq(by_path.route, &route));
    assert_eq!((by_tag.tag_revision, by_tag.prefix_len), (Some("hello-00002"), 0));
    assert_eq!((by_path.tag_revision, by_path.prefix_len), (None, 14));
    let owned = by_tag.owned();
    assert_eq!((owned.tag_revision.as_deref(), Arc::strong_count(&route)), (Some("hello-00002"), count + 1));
    assert!(t.find(Some("HELLO.DEFAULT.LOCALHOST."), "/").is_some(), "case and a final dot ignored");
}
