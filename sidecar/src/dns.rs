//! The DNS responder of interface-name addressing (hickory-server): answers
//! the names in a [`ServiceAddresses`] with their loopback addresses, over UDP
//! and TCP on one port. Authoritative for those names only: anything else is
//! NXDOMAIN, so a resolver set up to ask weft for some names and the usual
//! servers for the rest never gets a wrong answer from it.

use crate::addressing::ServiceAddresses;
use arc_swap::ArcSwap;
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

/// Seconds a resolver may cache an answer: short, since addresses follow
/// functions being created and deleted.
const TTL: u32 = 5;

/// The names being served, swapped whole when functions change.
pub type Table = Arc<ArcSwap<ServiceAddresses>>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// `answered`, `no_data` (a known name, another record type), `nxdomain`, `bad_query`.
    pub result: &'static str,
}

/// `weft_dns_queries_total{result}`.
#[derive(Clone, Default)]
pub struct DnsMetrics {
    pub queries: Family<QueryLabels, Counter>,
}

impl DnsMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let reg = registry.sub_registry_with_prefix("weft_dns");
        reg.register("queries", "DNS queries answered by the interface-name responder, by result", m.queries.clone());
        m
    }
}

struct Responder {
    table: Table,
    metrics: DnsMetrics,
}

// hickory's handler traits are `async_trait`s.
#[async_trait::async_trait]
impl RequestHandler for Responder {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.authoritative = true;
        let builder = MessageResponseBuilder::from_message_request(request);
        let (answers, result) = self.answer(request);
        meta.response_code = match result {
            "answered" | "no_data" => ResponseCode::NoError,
            "nxdomain" => ResponseCode::NXDomain,
            _ => ResponseCode::FormErr,
        };
        self.metrics.queries.get_or_create(&QueryLabels { result }).inc();
        let none = std::iter::empty();
        let msg = builder.build(meta, answers.iter(), none.clone(), none.clone(), none);
        match response.send_response(msg).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "send a DNS answer");
                let mut meta = Metadata::response_from_request(&request.metadata);
                meta.response_code = ResponseCode::ServFail;
                hickory_server::proto::op::Header { metadata: meta, counts: Default::default() }.into()
            }
        }
    }
}

impl Responder {
    /// The answer records for the request's one question, and how it went.
    fn answer(&self, request: &Request) -> (Vec<Record>, &'static str) {
        let [query] = request.queries.queries() else {
            return (Vec::new(), "bad_query");
        };
        let name = query.name().to_string();
        let Some(ip) = self.table.load().lookup(&name) else {
            return (Vec::new(), "nxdomain");
        };
        if query.query_type() != RecordType::A {
            return (Vec::new(), "no_data"); // IPv4 loopback only: AAAA and the rest are empty
        }
        let owner = query.original().name().clone();
        (vec![Record::from_rdata(owner, TTL, RData::A(A(ip)))], "answered")
    }
}

/// A UDP socket and a TCP listener on the same port.
async fn bind_pair(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    if addr.port() != 0 {
        return Ok((UdpSocket::bind(addr).await?, TcpListener::bind(addr).await?));
    }
    let mut last = None;
    for _ in 0..20 {
        let tcp = TcpListener::bind(addr).await?;
        match UdpSocket::bind(tcp.local_addr()?).await {
            Ok(udp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()))
}

/// A bound responder; [`DnsServer::run`] serves it.
pub struct DnsServer {
    addr: SocketAddr,
    server: Server<Responder>,
}

impl DnsServer {
    /// Binds UDP and TCP on `addr`. For port 0, both on one free port: TCP
    /// first, then UDP on its port, trying again (a few times) when UDP's is
    /// taken — a free TCP port says nothing about UDP, and the other way
    /// round, which under load is often taken by an outgoing connection.
    pub async fn bind(addr: SocketAddr, table: Table, metrics: DnsMetrics) -> std::io::Result<Self> {
        let (udp, tcp) = bind_pair(addr).await?;
        let addr = udp.local_addr()?;
        let mut server = Server::new(Responder { table, metrics });
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 32);
        Ok(Self { addr, server })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn run(mut self, shutdown: CancellationToken) {
        shutdown.cancelled().await;
        if let Err(e) = self.server.shutdown_gracefully().await {
            tracing::warn!(error = %e, "DNS responder shutdown");
        }
    }
}
