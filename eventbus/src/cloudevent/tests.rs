use super::*;
use http::HeaderValue;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

const BINARY: [(&str, &str); 5] = [
    ("ce-specversion", "1.0"),
    ("ce-id", "abc-1"),
    ("ce-source", "/shop/web"),
    ("ce-type", "com.example.order.created"),
    ("content-type", "application/json"),
];

fn structured(json: &str) -> Result<Vec<Event>, EventError> {
    decode_http(
        &headers(&[("content-type", "application/cloudevents+json; charset=utf-8")]),
        &Bytes::from(json.to_string()),
    )
}

#[test]
fn binary_mode_takes_headers_and_the_body_as_data() {
    let mut h = headers(&BINARY);
    h.insert("ce-partitionkey", HeaderValue::from_static("user-7"));
    let events = decode_http(&h, &Bytes::from_static(br#"{"total":3}"#)).unwrap();
    let e = &events[0];
    assert_eq!((e.id(), e.ty(), e.source().as_str()), ("abc-1", "com.example.order.created", "/shop/web"));
    assert_eq!(e.attribute("partitionkey").as_deref(), Some("user-7"));
    assert_eq!(e.attribute("datacontenttype").as_deref(), Some("application/json"));
    assert_eq!(e.attribute("subject"), None);
}

#[test]
fn structured_and_batched_modes() {
    let one = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"sub","data":{"a":1}}"#;
    let events = structured(one).unwrap();
    assert_eq!(events[0].attribute("subject").as_deref(), Some("sub"));
    let batch = format!("[{one},{}]", one.replace(r#""id":"1""#, r#""id":"2""#));
    let events = decode_http(&headers(&[("content-type", BATCH)]), &Bytes::from(batch)).unwrap();
    assert_eq!(events.iter().map(|e| e.id().to_string()).collect::<Vec<_>>(), ["1", "2"]);
    let empty = decode_http(&headers(&[("content-type", BATCH)]), &Bytes::from_static(b"[]")).unwrap();
    assert!(empty.is_empty());
}

#[test]
fn a_record_is_the_event_in_structured_json() {
    let e = structured(r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","myext":"v","data":"x"}"#).unwrap();
    let back = from_record(&to_record(&e[0]).unwrap()).unwrap();
    assert_eq!(back, e[0]);
}

#[test]
fn bad_events_name_the_attribute() {
    let base = r#""specversion":"1.0","id":"1","source":"/s","type":"t""#;
    let table = [
        (r#"{"id":"1","source":"/s","type":"t"}"#.to_string(), "attribute specversion: missing"),
        (
            format!("{{{}}}", base.replace(r#""1.0""#, r#""2.0""#)),
            "attribute specversion: \"2.0\" is not a supported version (1.0)",
        ),
        (format!("{{{}}}", base.replace(r#""id":"1","#, "")), "attribute id: missing"),
        (format!("{{{}}}", base.replace(r#""id":"1""#, r#""id":"""#)), "attribute id: must not be empty"),
        (format!("{{{}}}", base.replace(r#""id":"1""#, r#""id":7"#)), "attribute id: must be a string"),
        (format!("{{{}}}", base.replace(r#","source":"/s""#, "")), "attribute source: missing"),
        (format!("{{{}}}", base.replace(r#","type":"t""#, "")), "attribute type: missing"),
        (
            format!(r#"{{{base},"time":"yesterday"}}"#),
            "attribute time: \"yesterday\" is not RFC 3339: premature end of input",
        ),
        (
            format!(r#"{{{base},"dataschema":"no scheme"}}"#),
            "attribute dataschema: \"no scheme\" is not an absolute URI: relative URL without a base",
        ),
        (
            format!(r#"{{{base},"Bad-Ext":"x"}}"#),
            "attribute Bad-Ext: extension names are lower-case letters and digits",
        ),
        (format!(r#"{{{base},"ext":{{"a":1}}}}"#), "attribute ext: an extension is a string, boolean or integer"),
        ("[1]".to_string(), "body: event: a structured event is a JSON object"),
        ("{".to_string(), "body: not JSON: EOF while parsing an object at line 1 column 1"),
    ];
    for (json, want) in table {
        assert_eq!(structured(&json).unwrap_err().to_string(), want, "{json}");
    }
    let batch = format!(r#"[{{{base}}},{{"specversion":"1.0","id":"2","type":"t"}}]"#);
    let err = decode_http(&headers(&[("content-type", BATCH)]), &Bytes::from(batch)).unwrap_err();
    assert_eq!(err.to_string(), "attribute [1].source: missing", "the batch index is named");
}

#[test]
fn bad_binary_events_name_the_header_attribute() {
    let mut h = headers(&BINARY);
    h.remove("ce-source");
    assert_eq!(decode_http(&h, &Bytes::new()).unwrap_err().to_string(), "attribute source: missing");
    let mut h = headers(&BINARY);
    h.insert("ce-time", HeaderValue::from_static("2026-13-01T00:00:00Z"));
    let err = decode_http(&h, &Bytes::new()).unwrap_err().to_string();
    assert!(err.starts_with("attribute time: \"2026-13-01T00:00:00Z\" is not RFC 3339"), "{err}");
    let plain = headers(&[("content-type", "application/json")]);
    assert_eq!(decode_http(&plain, &Bytes::from_static(b"{}")).unwrap_err(), EventError::NotAnEvent);
}
