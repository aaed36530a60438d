//! The interface-name DNS responder over real UDP and TCP sockets, asked with
//! DNS messages encoded by hickory-proto (an independent encoder: the
//! responder's answers must decode as any resolver would read them).

use crate::support::metric;
use arc_swap::ArcSwap;
use hickory_server::proto::op::{Message, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RData, RecordType};
use prometheus_client::registry::Registry;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;
use weft_sidecar::addressing::ServiceAddresses;
use weft_sidecar::dns::{DnsMetrics, DnsServer};
use weft_sidecar::{FunctionRoute, RouteTable, WeightedSplit};

fn table() -> ServiceAddresses {
    ServiceAddresses::new(&RouteTable::new(
        "localhost",
        [FunctionRoute {
            namespace: "default".into(),
            name: "users".into(),
            split: WeightedSplit::new([("users-00001", 100)]),
            tags: vec![],
            interfaces: vec![("com.example.UserService".into(), "dubbo".into())],
            ..Default::default()
        }],
    ))
}

fn query(name: &str, ty: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 4242;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), ty));
    m.to_vec().unwrap()
}

async fn ask_udp(server: SocketAddr, name: &str, ty: RecordType) -> Message {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(&query(name, ty), server).await.unwrap();
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.recv(&mut buf)).await.unwrap().unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn interface_and_function_names_resolve_to_the_functions_address() {
    let t = table();
    let users = t.lookup("com.example.UserService").unwrap();
    let mut registry = Registry::default();
    let metrics = DnsMetrics::register(&mut registry);
    let server =
        DnsServer::bind("127.0.0.1:0".parse().unwrap(), Arc::new(ArcSwap::from_pointee(t)), metrics).await.unwrap();
    let addr = server.local_addr();
    let stop = CancellationToken::new();
    tokio::spawn(server.run(stop.clone()));

    let m = ask_udp(addr, "com.example.UserService.", RecordType::A).await;
    assert_eq!((m.metadata.id, m.metadata.response_code), (4242, ResponseCode::NoError));
    assert!(m.metadata.authoritative);
    assert_eq!(a_records(&m), [users]);
    let m = ask_udp(addr, "USERS.default.localhost.", RecordType::A).await;
    assert_eq!(a_records(&m), [users], "names are case-insensitive");
    let m = ask_udp(addr, "com.example.UserService.", RecordType::AAAA).await;
    assert_eq!((m.metadata.response_code, m.answers.len()), (ResponseCode::NoError, 0), "IPv4 only: no data");
    let m = ask_udp(addr, "example.org.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // The same over TCP (2-byte length prefix).
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let q = query("users.default.", RecordType::A);
    tcp.write_all(&(q.len() as u16).to_be_bytes()).await.unwrap();
    tcp.write_all(&q).await.unwrap();
    let len = tcp.read_u16().await.unwrap() as usize;
    let mut buf = vec![0; len];
    tcp.read_exact(&mut buf).await.unwrap();
    assert_eq!(a_records(&Message::from_vec(&buf).unwrap()), [users]);

    assert_eq!(metric(&registry, "weft_dns_queries_total{result=\"answered\"}"), 3.0);
    assert_eq!(metric(&registry, "weft_dns_queries_total{result=\"nxdomain\"}"), 1.0);
    stop.cancel();
}
