//! `weft`: the command line of the weft serverless runtime.

mod client;
mod cluster;
mod cmd;
mod instance;
mod oci;
mod signals;
mod state;
mod sync;
mod up;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use weft_autoscaler::Metric;

// Each request allocates a store, a WASI context and buffers; mimalloc keeps
// that off glibc malloc's global locks (see bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "weft", version, about = "weft: serverless WebAssembly functions, scaled from zero")]
struct Cli {
    /// State directory of the local platform.
    #[arg(long, global = true, env = "WEFT_STATE", default_value = ".weft")]
    state: PathBuf,
    #[command(subcommand)]
    command: Command,
}

/// Platform-wide autoscaling defaults; Knative's values unless set. Functions
/// override most of them with `autoscaling.weft.dev/*` annotations.
#[derive(clap::Args, Clone)]
struct ScalingFlags {
    /// What to scale on: requests in flight or requests per second.
    #[arg(long, default_value = "concurrency", value_parser = ["concurrency", "rps"])]
    metric: String,
    /// Target requests in flight per instance.
    #[arg(long, default_value_t = 100.0)]
    target_concurrency: f64,
    /// Target requests per second per instance (with --metric rps).
    #[arg(long, default_value_t = 200.0)]
    target_rps: f64,
    /// Share of the target to aim for, in percent.
    #[arg(long, default_value_t = 70.0)]
    target_utilization: f64,
    /// `containerConcurrency` of functions that do not set it (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    container_concurrency: u32,
    /// Stable window (e.g. 60s).
    #[arg(long, default_value = "60s", value_parser = duration)]
    stable_window: Duration,
    /// Panic window, in percent of the stable window.
    #[arg(long, default_value_t = 10.0)]
    panic_window_percentage: f64,
    /// Panic when the panic-window load reaches this percent of capacity.
    #[arg(long, default_value_t = 200.0)]
    panic_threshold_percentage: f64,
    /// Most a revision may grow per decision, as a factor of its ready instances.
    #[arg(long, default_value_t = 1000.0)]
    max_scale_up_rate: f64,
    /// Most a revision may shrink per decision, as a divisor of its ready instances.
    #[arg(long, default_value_t = 2.0)]
    max_scale_down_rate: f64,
    /// Instances a routed revision keeps at least.
    #[arg(long, default_value_t = 0)]
    min_scale: u32,
    /// Instances a revision runs at most (0 = unbounded).
    #[arg(long, default_value_t = 0)]
    max_scale: u32,
    /// Instances a new revision starts with.
    #[arg(long, default_value_t = 1)]
    initial_scale: u32,
    /// A scale-down waits until the lower count has held this long (e.g. 30s).
    #[arg(long, default_value = "0s", value_parser = duration)]
    scale_down_delay: Duration,
    /// Time a revision stays at one instance, activator in front, before zero.
    #[arg(long, default_value = "30s", value_parser = duration)]
    scale_to_zero_grace: Duration,
    /// Time the last instance is kept after the revision went idle.
    #[arg(long, default_value = "0s", value_parser = duration)]
    scale_to_zero_pod_retention_period: Duration,
    /// Spare capacity to keep before the activator leaves the request path
    /// (0: only at zero; -1: always in the path).
    #[arg(long, default_value_t = 200.0, allow_negative_numbers = true)]
    target_burst_capacity: f64,
    /// Let functions start at zero instances (`autoscaling.weft.dev/initial-scale: "0"`).
    #[arg(long)]
    allow_zero_initial_scale: bool,
    /// Never scale an idle revision below one instance.
    #[arg(long)]
    no_scale_to_zero: bool,
    /// Function host processes; each serves replicas of any revision, so a
    /// cold start needs no process start (default: one per core).
    #[arg(long, default_value_t = weft_sidecar::serve::default_workers())]
    hosts: usize,
    /// How often the autoscaler decides.
    #[arg(long, default_value = "2s", value_parser = duration)]
    tick: Duration,
}

fn duration(s: &str) -> Result<Duration, String> {
    weft_autoscaler::spec::parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration (e.g. 30s, 1m, 500ms)"))
}

impl ScalingFlags {
    /// The platform's defaults; an error names the flag out of range.
    fn defaults(&self) -> Result<weft_autoscaler::Defaults, String> {
        let d = weft_autoscaler::Defaults {
            metric: if self.metric == "rps" { Metric::Rps } else { Metric::Concurrency },
            target_concurrency: self.target_concurrency,
            target_utilization: self.target_utilization / 100.0,
            target_rps: self.target_rps,
            stable_window: self.stable_window,
            panic_window_percentage: self.panic_window_percentage,
            panic_threshold_percentage: self.panic_threshold_percentage,
            max_scale_up_rate: self.max_scale_up_rate,
            max_scale_down_rate: self.max_scale_down_rate,
            tick: self.tick,
            scale_to_zero_grace: self.scale_to_zero_grace,
            target_burst_capacity: self.target_burst_capacity,
            min_scale: self.min_scale,
            max_scale: self.max_scale,
            initial_scale: self.initial_scale,
            scale_down_delay: self.scale_down_delay,
            scale_to_zero_retention: self.scale_to_zero_pod_retention_period,
            container_concurrency: self.container_concurrency,
            allow_zero_initial_scale: self.allow_zero_initial_scale,
            enable_scale_to_zero: !self.no_scale_to_zero,
        };
        d.check().map(|()| d)
    }
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Where an event went: ingested, matched triggers, attempts, outcome.
    Trace {
        id: String,
        /// Print the record as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run the local platform in the foreground (Ctrl-C stops it).
    Up {
        /// Gateway address (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        gateway: SocketAddr,
        /// Control API address.
        #[arg(long, default_value = "127.0.0.1:8081")]
        api: SocketAddr,
        /// Domain of host routes: <function>.<namespace>.<domain>.
        #[arg(long, default_value = "localhost")]
        domain: String,
        /// Broker ingress address: events are POSTed to http://ADDR/<namespace>/<broker>.
        #[arg(long, default_value = "127.0.0.1:8082")]
        events: SocketAddr,
        /// Kafka bootstrap servers, for Brokers with `spec.backend: kafka`.
        #[arg(long)]
        kafka_bootstrap: Option<String>,
        /// Most events `weft events trace` keeps records of (kept up to an hour;
        /// about 1.5 KB each; 0 keeps none).
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
        trace_events: u32,
        /// DNS responder of interface-name addressing: answers each function's
        /// names and declared interfaces with its own loopback address.
        #[arg(long, default_value = "127.0.0.1:8053")]
        dns: SocketAddr,
        #[command(flatten)]
        scaling: ScalingFlags,
    },
    /// Apply resources from a YAML file (`-` reads stdin).
    Apply {
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// Return without waiting for readiness.
        #[arg(long)]
        no_wait: bool,
        /// How long to wait for readiness, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Push a wasm module to an OCI registry, for `wasm.oci` (prints the
    /// reference pinned to its digest). Credentials come from the Docker
    /// config (`docker login`); loopback registries are spoken to over HTTP.
    Push {
        /// The .wasm file.
        module: PathBuf,
        /// Where: registry/repository:tag.
        reference: String,
        /// Speak plain HTTP to this registry (e.g. one inside a cluster).
        #[arg(long)]
        insecure: bool,
    },
    /// Send one CloudEvent to a broker (prints its id once it is durable).
    Send {
        #[arg(long, default_value = "default")]
        broker: String,
        #[arg(short, long, default_value = "default")]
        namespace: String,
        /// The event's type, e.g. com.example.order.created.
        #[arg(long = "type")]
        type_: String,
        #[arg(long, default_value = "weft-cli")]
        source: String,
        /// Default: a random id.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        subject: Option<String>,
        /// The data (JSON is sent as application/json).
        #[arg(short, long)]
        data: Option<String>,
        #[arg(long)]
        content_type: Option<String>,
        /// An extension attribute, name=value (repeatable), e.g. partitionkey=user-7.
        #[arg(short = 'e', long = "extension")]
        extensions: Vec<String>,
    },
    /// Inspect events: `weft events trace ID` shows where an event went.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// List or show resources: functions (fn), revisions (rev), brokers, triggers, pingsources.
    Get {
        kind: String,
        name: Option<String>,
        #[arg(short, long, default_value = "default")]
        namespace: String,
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[arg(short, long, value_enum, default_value = "table")]
        output: cmd::get::Output,
    },
    /// Delete a resource (a function's revisions and instances go with it).
    Delete {
        kind: String,
        name: String,
        #[arg(short, long, default_value = "default")]
        namespace: String,
        /// Return without waiting for the instances to stop.
        #[arg(long)]
        no_wait: bool,
    },
    /// Send one request to a function through the gateway and print the reply.
    Invoke {
        name: String,
        #[arg(short, long, default_value = "default")]
        namespace: String,
        /// Request body (POST unless --method says otherwise).
        #[arg(short, long)]
        data: Option<String>,
        /// Path below the function.
        #[arg(long, default_value = "/")]
        path: String,
        #[arg(short = 'X', long)]
        method: Option<String>,
        /// Extra header, `name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
    },
    /// Print a function's instance logs.
    Logs {
        name: String,
        #[arg(short, long, default_value = "default")]
        namespace: String,
        /// Lines per instance log.
        #[arg(long, default_value_t = 200)]
        tail: usize,
    },
    /// Print (or --apply) everything a Kubernetes cluster needs: the CRDs, RBAC
    /// and the controller, gateway and event-bus Deployments.
    Install {
        #[arg(long, default_value = "weft-system")]
        namespace: String,
        /// The weft image components and instances run.
        #[arg(long, default_value = concat!("weft:", env!("CARGO_PKG_VERSION")))]
        image: String,
        /// Domain of function URLs: <function>.<namespace>.<domain>.
        #[arg(long, default_value = "example.com")]
        domain: String,
        /// Kafka bootstrap servers, for Brokers with `spec.backend: kafka`.
        #[arg(long)]
        kafka_bootstrap: Option<String>,
        /// A registry (host[:port]) of `wasm.oci` modules reached over plain
        /// HTTP, e.g. an in-cluster registry; repeatable.
        #[arg(long = "insecure-registry")]
        insecure_registries: Vec<String>,
        /// Apply to the cluster of the current kubeconfig (server-side apply)
        /// instead of printing.
        #[arg(long)]
        apply: bool,
    },
    /// Run the Function and Revision controllers against the Kubernetes API
    /// (what the weft-controller Deployment runs).
    Controller {
        #[command(flatten)]
        args: cluster::controller::ControllerArgs,
    },
    /// Run the gateway, activator and autoscaler against the Kubernetes API
    /// (what the weft-gateway Deployment runs).
    Gateway {
        #[command(flatten)]
        args: cluster::gateway::GatewayArgs,
    },
    /// Run the broker ingress, Trigger dispatchers and PingSources against the
    /// Kubernetes API (what the weft-eventbus Deployment runs).
    Eventbus {
        #[command(flatten)]
        args: cluster::eventbus::EventbusArgs,
    },
    /// Run one function instance (a cluster Pod), or a function host that
    /// `weft up` drives over stdin (`--host`).
    Instance {
        /// Instance configuration as JSON.
        #[arg(long, required_unless_present = "host")]
        config: Option<String>,
        /// Serve replicas of any revision, started and stopped by JSON lines on stdin.
        #[arg(long, conflicts_with = "config")]
        host: bool,
    },
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    // hickory-server logs every DNS query at info; weft counts them in
    // weft_dns_queries_total instead. Access lines (one per RPC request, an
    // unbuffered write each) are opt-in, as Envoy's are:
    // WEFT_LOG=info,weft::access=info.
    let filter = EnvFilter::try_from_env("WEFT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,hickory_server=warn,weft::access=off"));
    // Instance logs go to files: colour only on a terminal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    cluster::tls_provider();
    if matches!(
        cli.command,
        Command::Up { .. }
            | Command::Instance { .. }
            | Command::Controller { .. }
            | Command::Gateway { .. }
            | Command::Eventbus { .. }
    ) {
        init_tracing();
    }
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    let state = state::StateDir::new(cli.state);
    let connect = || client::Client::connect(&state);
    match cli.command {
        Command::Up { gateway, api, domain, events, kafka_bootstrap: kafka, trace_events, dns, scaling: flags } => {
            let scaling = flags.defaults().map_err(anyhow::Error::msg)?;
            let (hosts, trace_events) = (flags.hosts, trace_events as usize);
            let args = up::UpArgs {
                state: state.clone(),
                gateway,
                api,
                domain,
                scaling,
                hosts,
                events,
                kafka,
                trace_events,
                dns,
            };
            up::run(args).await
        }
        Command::Send { broker, namespace, type_, source, id, subject, data, content_type, extensions } => {
            let args =
                cmd::events::SendArgs { broker, namespace, type_, source, id, subject, data, content_type, extensions };
            cmd::events::send(&connect()?, &args).await
        }
        Command::Events { command: EventsCommand::Trace { id, json } } => {
            cmd::events::trace(&connect()?, &id, json).await
        }
        Command::Instance { config: Some(config), .. } => instance::run(&config).await,
        Command::Instance { config: None, .. } => instance::host::run().await,
        Command::Apply { file, no_wait, timeout } => {
            let args = cmd::apply::ApplyArgs { file, wait: !no_wait, timeout: Duration::from_secs(timeout) };
            cmd::apply::run(&connect()?, &args).await
        }
        Command::Push { module, reference, insecure } => cmd::push::run(&module, &reference, insecure).await,
        Command::Get { kind, name, namespace, all_namespaces, output } => {
            let args = cmd::get::GetArgs { kind, name, namespace, all_namespaces, output };
            cmd::get::run(&connect()?, &args).await
        }
        Command::Delete { kind, name, namespace, no_wait } => {
            cmd::delete::run(&connect()?, &kind, &name, &namespace, !no_wait).await
        }
        Command::Invoke { name, namespace, data, path, method, headers } => {
            let args = cmd::invoke::InvokeArgs { name, namespace, data, path, method, headers };
            cmd::invoke::run(&connect()?, &args).await
        }
        Command::Install { namespace, image, domain, kafka_bootstrap, insecure_registries, apply } => {
            let options = weft_controller::cluster::install::InstallOptions {
                namespace,
                image,
                domain,
                kafka_bootstrap,
                insecure_registries,
            };
            cluster::install::run(&options, apply).await
        }
        Command::Controller { args } => cluster::controller::run(args).await,
        Command::Gateway { args } => cluster::gateway::run(args).await,
        Command::Eventbus { args } => cluster::eventbus::run(args).await,
        Command::Logs { name, namespace, tail } => cmd::logs::run(&connect()?, &name, &namespace, tail).await,
    }
}
