//! Parsing the YAML documents users apply (`weft apply -f`), with errors that name
//! the document, the field and the fix.

use crate::SERVING_API_VERSION;
use crate::eventing::validate::{validate_broker, validate_ping_source, validate_trigger};
use crate::eventing::{Broker, EVENTING_API_VERSION, PingSource, Trigger};
use crate::function::Function;
use crate::revision::Revision;
use crate::validate::{ValidationErrors, validate_function};
use serde::Deserialize;
use thiserror::Error;

/// One resource from a YAML stream.
#[derive(Debug, Clone)]
pub enum Document {
    Function(Box<Function>),
    Revision(Box<Revision>),
    Broker(Box<Broker>),
    Trigger(Box<Trigger>),
    PingSource(Box<PingSource>),
}

/// Kinds a user may apply, for messages.
pub const KNOWN_KINDS: &str =
    "Function (serving.weft.dev/v1alpha1), Broker, Trigger and PingSource (eventing.weft.dev/v1alpha1)";

/// Why a document was refused. `index` counts documents from 1.
#[derive(Debug, Error)]
pub enum DocumentError {
    #[error("document {index}: not valid YAML: {source}")]
    Yaml {
        index: usize,
        #[source]
        source: yaml_serde::Error,
    },
    #[error("document {index}: missing field `{field}` (every resource needs apiVersion, kind and metadata.name)")]
    Missing { index: usize, field: &'static str },
    #[error("document {index}: unknown kind {kind:?} with apiVersion {api_version:?}; weft can apply {KNOWN_KINDS}")]
    UnknownKind { index: usize, api_version: String, kind: String },
    #[error("document {index} ({kind}): field {field}: {message}")]
    Shape { index: usize, kind: &'static str, field: String, message: String },
    #[error("document {index} ({kind} {name}): {source}")]
    Invalid {
        index: usize,
        kind: &'static str,
        name: String,
        #[source]
        source: ValidationErrors,
    },
    #[error("no resources in the input")]
    Empty,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    api_version: Option<String>,
    kind: Option<String>,
}

/// Parses a stream of YAML (or JSON) documents into validated resources.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, DocumentError> {
    let mut docs = Vec::new();
    for (i, de) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let value = yaml_serde::Value::deserialize(de).map_err(|source| DocumentError::Yaml { index, source })?;
        if value.is_null() {
            continue; // an empty document, e.g. a trailing `---`
        }
        docs.push(parse_one(index, value)?);
    }
    if docs.is_empty() {
        return Err(DocumentError::Empty);
    }
    Ok(docs)
}

fn parse_one(index: usize, value: yaml_serde::Value) -> Result<Document, DocumentError> {
    let meta: TypeMeta =
        yaml_serde::from_value(value.clone()).map_err(|source| DocumentError::Yaml { index, source })?;
    let api_version = meta.api_version.ok_or(DocumentError::Missing { index, field: "apiVersion" })?;
    let kind = meta.kind.ok_or(DocumentError::Missing { index, field: "kind" })?;
    match (api_version.as_str(), kind.as_str()) {
        (SERVING_API_VERSION, "Function") => {
            let f: Function = typed(index, "Function", value)?;
            check_name(index, "Function", f.metadata.name.as_deref())?;
            validate_function(&f).map_err(|source| DocumentError::Invalid {
                index,
                kind: "Function",
                name: f.metadata.name.clone().unwrap_or_default(),
                source,
            })?;
            Ok(Document::Function(Box::new(f)))
        }
        (SERVING_API_VERSION, "Revision") => Ok(Document::Revision(Box::new(typed(index, "Revision", value)?))),
        (EVENTING_API_VERSION, "Broker") => {
            let value = with_empty_spec(value); // a Broker needs no spec, as in Knative
            let b: Broker = checked(index, "Broker", value, |b: &Broker| &b.metadata, validate_broker)?;
            Ok(Document::Broker(Box::new(b)))
        }
        (EVENTING_API_VERSION, "Trigger") => {
            let t: Trigger = checked(index, "Trigger", value, |t: &Trigger| &t.metadata, validate_trigger)?;
            Ok(Document::Trigger(Box::new(t)))
        }
        (EVENTING_API_VERSION, "PingSource") => {
            let p = checked(index, "PingSource", value, |p: &PingSource| &p.metadata, validate_ping_source)?;
            Ok(Document::PingSource(Box::new(p)))
        }
        _ => Err(DocumentError::UnknownKind { index, api_version, kind }),
    }
}

fn with_empty_spec(mut value: yaml_serde::Value) -> yaml_serde::Value {
    if let Some(map) = value.as_mapping_mut()
        && !map.contains_key("spec")
    {
        map.insert("spec".into(), yaml_serde::Value::Mapping(Default::default()));
    }
    value
}

/// Deserializes, requires a name, and validates.
fn checked<T: serde::de::DeserializeOwned>(
    index: usize,
    kind: &'static str,
    value: yaml_serde::Value,
    meta: impl Fn(&T) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    validate: impl Fn(&T) -> Result<(), ValidationErrors>,
) -> Result<T, DocumentError> {
    let obj: T = typed(index, kind, value)?;
    let name = meta(&obj).name.clone();
    check_name(index, kind, name.as_deref())?;
    validate(&obj).map_err(|source| DocumentError::Invalid { index, kind, name: name.unwrap_or_default(), source })?;
    Ok(obj)
}

fn check_name(index: usize, kind: &'static str, name: Option<&str>) -> Result<(), DocumentError> {
    match name {
        Some(_) => Ok(()),
        None => Err(DocumentError::Shape { index, kind, field: "metadata.name".into(), message: "missing".into() }),
    }
}

/// Deserializes with the path of the failing field kept for the message.
fn typed<T: serde::de::DeserializeOwned>(
    index: usize,
    kind: &'static str,
    value: yaml_serde::Value,
) -> Result<T, DocumentError> {
    serde_path_to_error::deserialize(value).map_err(|e| DocumentError::Shape {
        index,
        kind,
        field: e.path().to_string(),
        message: e.inner().to_string(),
    })
}
