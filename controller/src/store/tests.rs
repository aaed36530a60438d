use super::*;
use weft_crds::{Function, FunctionSpec, FunctionStatus, Revision};

fn function(name: &str, greeting: &str) -> Function {
    let mut spec = FunctionSpec::default();
    spec.template.spec.env.push(weft_crds::EnvVar { name: "GREETING".into(), value: greeting.into() });
    let mut f = Function::new(name, spec);
    f.metadata.namespace = Some("default".into());
    f
}

fn open() -> (tempfile::TempDir, EmbeddedStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
    (dir, store)
}

#[test]
fn apply_sets_server_metadata_and_bumps_generation_on_spec_change_only() {
    let (_d, store) = open();
    let (f, outcome) = store.apply(&function("hello", "Hi")).unwrap();
    assert_eq!(outcome, ApplyOutcome::Created);
    assert_eq!(f.metadata.generation, Some(1));
    let uid = f.metadata.uid.clone().unwrap();
    assert!(f.metadata.creation_timestamp.is_some());

    let (_, outcome) = store.apply(&function("hello", "Hi")).unwrap();
    assert_eq!(outcome, ApplyOutcome::Unchanged);

    let mut labelled = function("hello", "Hi");
    labelled.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    let (f, outcome) = store.apply(&labelled).unwrap();
    assert_eq!((outcome, f.metadata.generation), (ApplyOutcome::Configured, Some(1)));

    let (f, _) = store.apply(&function("hello", "Hej")).unwrap();
    assert_eq!(f.metadata.generation, Some(2));
    assert_eq!(f.metadata.uid.as_deref(), Some(uid.as_str()));
}

#[test]
fn status_survives_apply_and_equal_status_is_a_no_op() {
    let (_d, store) = open();
    store.apply(&function("hello", "Hi")).unwrap();
    let mut rx = store.watch();
    let status = FunctionStatus { url: Some("http://x".into()), ..Default::default() };
    assert!(store.update_status::<Function>("default", "hello", &status).unwrap());
    assert_eq!(rx.try_recv().unwrap().name, "hello");
    assert!(store.update_status::<Function>("default", "hello", &status).unwrap());
    assert!(rx.try_recv().is_err(), "equal status must not notify");
    let (f, _) = store.apply(&function("hello", "Hej")).unwrap();
    assert_eq!(f.status.unwrap().url.as_deref(), Some("http://x"));
    assert!(!store.update_status::<Function>("default", "nope", &status).unwrap());
}

#[test]
fn list_is_scoped_by_kind_and_namespace_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let store = EmbeddedStore::open(&path).unwrap();
        store.apply(&function("a", "1")).unwrap();
        let mut other = function("b", "1");
        other.metadata.namespace = Some("prod".into());
        store.apply(&other).unwrap();
        let mut rev = Revision::new("a-00001", Default::default());
        rev.metadata.namespace = Some("default".into());
        store.apply(&rev).unwrap();
    }
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.list::<Function>(None).unwrap().len(), 2);
    assert_eq!(store.list::<Function>(Some("default")).unwrap().len(), 1);
    assert_eq!(store.list::<Revision>(None).unwrap().len(), 1);
    assert!(store.delete::<Function>("prod", "b").unwrap());
    assert!(!store.delete::<Function>("prod", "b").unwrap());
    assert!(store.get::<Function>("prod", "b").unwrap().is_none());
}
