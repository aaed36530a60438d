use super::cesql::{self, like};
use super::*;

fn event() -> BTreeMap<String, String> {
    [
        ("id", "1"),
        ("source", "/shop/web"),
        ("type", "com.example.order.created"),
        ("subject", "order-42"),
        ("amount", "250"),
        ("vip", "TRUE"),
        ("region", "eu-west"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn spec(yaml: &str) -> Vec<FilterSpec> {
    serde_json::from_value(yaml_to_json(yaml)).unwrap()
}

fn yaml_to_json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

fn matches(filters: &str) -> bool {
    Filter::compile(&spec(filters), None).unwrap().matches(&event())
}

#[test]
fn dialects() {
    let table = [
        (r#"[{"exact": {"type": "com.example.order.created"}}]"#, true),
        (r#"[{"exact": {"type": "com.example.order"}}]"#, false),
        (r#"[{"exact": {"TYPE": "com.example.order.created"}}]"#, true),
        (r#"[{"exact": {"type": "com.example.order.created", "source": "/other"}}]"#, false),
        (r#"[{"exact": {"missing": ""}}]"#, false),
        (r#"[{"prefix": {"type": "com.example."}}]"#, true),
        (r#"[{"prefix": {"type": "org."}}]"#, false),
        (r#"[{"suffix": {"type": ".created"}}]"#, true),
        (r#"[{"suffix": {"subject": "-41"}}]"#, false),
        (r#"[{"all": [{"prefix": {"type": "com."}}, {"suffix": {"type": "created"}}]}]"#, true),
        (r#"[{"all": [{"prefix": {"type": "com."}}, {"suffix": {"type": "deleted"}}]}]"#, false),
        (r#"[{"any": [{"prefix": {"type": "org."}}, {"suffix": {"type": "created"}}]}]"#, true),
        (r#"[{"any": [{"prefix": {"type": "org."}}, {"suffix": {"type": "deleted"}}]}]"#, false),
        (r#"[{"not": {"exact": {"region": "us"}}}]"#, true),
        (r#"[{"not": {"exact": {"region": "eu-west"}}}]"#, false),
        (r#"[{"not": {"exact": {"nothere": "x"}}}]"#, true),
        (r#"[{"cesql": "type LIKE 'com.example.%'"}]"#, true),
        (r#"[{"prefix": {"type": "com."}}, {"exact": {"region": "us"}}]"#, false),
        ("[]", true),
    ];
    for (filters, want) in table {
        assert_eq!(matches(filters), want, "{filters}");
    }
}

#[test]
fn legacy_attributes_are_exact_and_empty_means_any() {
    let legacy: BTreeMap<String, String> =
        [("type".to_string(), "com.example.order.created".to_string()), ("source".to_string(), String::new())].into();
    assert!(Filter::compile(&[], Some(&legacy)).unwrap().matches(&event()));
    let legacy: BTreeMap<String, String> = [("type".to_string(), "other".to_string())].into();
    assert!(!Filter::compile(&[], Some(&legacy)).unwrap().matches(&event()));
}

#[test]
fn bad_filters_name_the_field() {
    let err = Filter::compile(&spec(r#"[{"exact": {"a": "b"}, "prefix": {"a": "b"}}]"#), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "spec.filters[0]: a filter needs exactly one of exact, prefix, suffix, all, any, not, cesql (found 2)"
    );
    let err = Filter::compile(&spec(r#"[{"any": [{"exact": {}}]}]"#), None).unwrap_err();
    assert_eq!(err.to_string(), "spec.filters[0].any[0]: exact needs at least one attribute");
    let err = Filter::compile(&spec(r#"[{"not": {"cesql": "type = "}}]"#), None).unwrap_err();
    assert_eq!(err.to_string(), "spec.filters[0].not.cesql: expression ends too early at character 7");
    assert!(serde_json::from_str::<Vec<FilterSpec>>(r#"[{"exactly": {}}]"#).is_err(), "unknown dialect");
}

fn sql(q: &str) -> bool {
    cesql::parse(q).unwrap_or_else(|e| panic!("{q}: {e}")).matches(&event())
}

#[test]
fn cesql_operators_and_coercion() {
    let table = [
        ("type = 'com.example.order.created'", true),
        ("type = \"com.example.order.created\"", true),
        ("type != 'x'", true),
        ("type <> 'com.example.order.created'", false),
        // integers: the attribute string is cast
        ("amount = 250", true),
        ("amount > 100", true),
        ("amount >= 250 AND amount <= 250", true),
        ("amount < -1", false),
        ("amount > '100'", true),
        ("'10' < '9'", false), // order comparisons are numeric, not lexical
        // booleans: 'TRUE' casts, any case
        ("vip = TRUE", true),
        ("vip", true),
        ("NOT vip", false),
        ("vip = false", false),
        // logic and precedence: AND binds tighter than OR
        ("region = 'us' OR region = 'eu-west' AND amount > 1", true),
        ("(region = 'us' OR region = 'eu-west') AND amount > 1000", false),
        ("region = 'us' XOR amount = 250", true),
        ("not (region = 'us')", true),
        // LIKE
        ("subject LIKE 'order-%'", true),
        ("subject LIKE 'order-__'", true),
        ("subject LIKE 'order-_'", false),
        ("subject NOT LIKE '%42'", false),
        ("source LIKE '/shop/%'", true),
        // EXISTS and IN
        ("EXISTS subject", true),
        ("EXISTS partitionkey", false),
        ("NOT EXISTS partitionkey", true),
        ("region IN ('us', 'eu-west')", true),
        ("region NOT IN ('us', 'eu-west')", false),
        ("amount IN (1, 250)", true),
        // missing attributes and failed casts are errors: no match, either way
        ("partitionkey = 'a'", false),
        ("NOT (partitionkey = 'a')", false),
        ("type > 3", false),
        ("subject = TRUE", false),
        ("EXISTS partitionkey AND partitionkey = 'a' OR TRUE", true),
    ];
    for (q, want) in table {
        assert_eq!(sql(q), want, "{q}");
    }
}

#[test]
fn cesql_parse_errors_say_where() {
    let table = [
        ("type =", "expression ends too early at character 6"),
        ("type = 'x", "unterminated string at character 7"),
        ("type LIKE 3", "LIKE needs a string pattern at character 10"),
        ("type IN 'a'", "expected '(' after IN at character 8"),
        ("(type = 'a'", "expected ')' at character 11"),
        ("type = 'a' 'b'", "unexpected string \"b\" at character 11"),
        ("type ! 'a'", "'!' must be followed by '=' at character 5"),
        ("AND type", "unexpected keyword AND at character 0"),
        ("type # 1", "unexpected character '#' at character 5"),
        ("type NOT = 'a'", "NOT here must be followed by LIKE or IN at character 5"),
    ];
    for (q, want) in table {
        assert_eq!(cesql::parse(q).unwrap_err().to_string(), want, "{q}");
    }
}

#[test]
fn like_patterns() {
    let table = [
        ("abc", "abc", true),
        ("abc", "a%", true),
        ("abc", "%c", true),
        ("abc", "%b%", true),
        ("abc", "a_c", true),
        ("abc", "a_", false),
        ("", "%", true),
        ("", "_", false),
        ("a%c", "a\\%c", true),
        ("abc", "a\\%c", false),
        ("a_c", "a\\_c", true),
        ("aXbXc", "a%b%c", true),
        ("mississippi", "m%iss%ppi", true),
        ("mississippi", "m%iss%ppx", false),
    ];
    for (s, p, want) in table {
        assert_eq!(like(s, p), want, "{s:?} LIKE {p:?}");
    }
}
