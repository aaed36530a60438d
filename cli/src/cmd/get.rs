//! `weft get <kind> [name]`: tables like kubectl's, or `-o yaml|json`.

use super::plural_kind;
use crate::client::Client;
use anyhow::{Result, bail};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Yaml,
    Json,
}

pub struct GetArgs {
    pub kind: String,
    pub name: Option<String>,
    pub namespace: String,
    pub all_namespaces: bool,
    pub output: Output,
}

pub async fn run(client: &Client, args: &GetArgs) -> Result<()> {
    let kind = plural_kind(&args.kind)?;
    let value: Value = match &args.name {
        Some(name) => client.get(&format!("/v1/{kind}/{}/{name}", args.namespace)).await?,
        None if args.all_namespaces => client.get(&format!("/v1/{kind}")).await?,
        None => client.get(&format!("/v1/{kind}?namespace={}", args.namespace)).await?,
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        Output::Yaml => print!("{}", yaml_serde::to_string(&value)?),
        Output::Table => {
            let items = match value {
                Value::Array(items) => items,
                one => vec![one],
            };
            if items.is_empty() {
                eprintln!(
                    "No {kind} found in {}.",
                    if args.all_namespaces { "any namespace".into() } else { format!("namespace {}", args.namespace) }
                );
                return Ok(());
            }
            print_table(kind, &items, args.all_namespaces)?;
        }
    }
    Ok(())
}

fn print_table(kind: &str, items: &[Value], with_ns: bool) -> Result<()> {
    let (header, rows): (Vec<&str>, Vec<Vec<String>>) = match kind {
        "functions" => (
            vec!["NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY", "REASON", "AGE"],
            items.iter().map(function_row).collect(),
        ),
        "revisions" => (
            vec!["NAME", "FUNCTION", "READY", "REASON", "DESIRED", "ACTUAL", "AVAILABLE", "AGE"],
            items.iter().map(revision_row).collect(),
        ),
        "brokers" => eventing_table(["URL", "BACKEND"], items, |i| {
            [s(&i["status"]["address"]["url"]), i["spec"]["backend"].as_str().unwrap_or("embedded").into()]
        }),
        "triggers" => eventing_table(["BROKER", "SUBSCRIBER"], items, |i| {
            [s(&i["spec"]["broker"]), s(&i["status"]["subscriberUri"])]
        }),
        "pingsources" => {
            eventing_table(["SCHEDULE", "SINK"], items, |i| [s(&i["spec"]["schedule"]), s(&i["status"]["sinkUri"])])
        }
        other => bail!("no table for {other}"),
    };
    let mut header: Vec<String> = header.into_iter().map(String::from).collect();
    let mut rows = rows;
    if with_ns {
        header.insert(0, "NAMESPACE".into());
        for (row, item) in rows.iter_mut().zip(items) {
            row.insert(0, s(&item["metadata"]["namespace"]));
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", cells.join("   ").trim_end());
    }
    Ok(())
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn ready_condition(item: &Value) -> (String, String) {
    let conds = item["status"]["conditions"].as_array().cloned().unwrap_or_default();
    conds
        .iter()
        .find(|c| c["type"] == "Ready")
        .map_or(("Unknown".into(), String::new()), |c| (s(&c["status"]), s(&c["reason"])))
}

fn function_row(item: &Value) -> Vec<String> {
    let (ready, reason) = ready_condition(item);
    let st = &item["status"];
    vec![
        s(&item["metadata"]["name"]),
        s(&st["url"]),
        s(&st["latestCreatedRevisionName"]),
        s(&st["latestReadyRevisionName"]),
        ready,
        reason,
        age(&item["metadata"]["creationTimestamp"]),
    ]
}

fn revision_row(item: &Value) -> Vec<String> {
    let (ready, reason) = ready_condition(item);
    let st = &item["status"];
    vec![
        s(&item["metadata"]["name"]),
        s(&item["metadata"]["labels"][weft_crds::FUNCTION_LABEL]),
        ready,
        reason,
        s(&st["desiredReplicas"]),
        s(&st["actualReplicas"]),
        s(&st["readyReplicas"]),
        age(&item["metadata"]["creationTimestamp"]),
    ]
}

/// The eventing kinds' tables: NAME, two columns of the kind, READY, REASON, AGE.
fn eventing_table(
    columns: [&'static str; 2],
    items: &[Value],
    cells: impl Fn(&Value) -> [String; 2],
) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let header = vec!["NAME", columns[0], columns[1], "READY", "REASON", "AGE"];
    let rows = items
        .iter()
        .map(|item| {
            let (ready, reason) = ready_condition(item);
            let [a, b] = cells(item);
            vec![s(&item["metadata"]["name"]), a, b, ready, reason, age(&item["metadata"]["creationTimestamp"])]
        })
        .collect();
    (header, rows)
}

/// `42s`, `5m`, `3h`, `2d`, as kubectl prints ages.
fn age(ts: &Value) -> String {
    let Some(t) = ts.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return String::new();
    };
    let secs = jiff::Timestamp::now().as_second().saturating_sub(t.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
