use super::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Default)]
struct Counting {
    calls: AtomicUsize,
    last_held: AtomicUsize,
}

impl Activation for Counting {
    fn activate(&self, _ns: &str, _rev: &str, held: usize) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.last_held.store(held, Ordering::SeqCst);
    }
}

fn addr(p: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], p))
}

type Setup = (Arc<Activator>, Arc<Endpoints>, Arc<Counting>);

fn setup() -> Setup {
    (Arc::new(Activator::default()), Arc::new(Endpoints::new()), Arc::new(Counting::default()))
}

/// A request for `ns/r` held in a task of its own.
fn spawn_hold((act, eps, hook): &Setup) -> tokio::task::JoinHandle<Result<(Lease, Duration), HoldError>> {
    let (a, e, h) = (act.clone(), eps.clone(), hook.clone());
    tokio::spawn(async move { a.hold(&e, h.as_ref(), "ns", "r", "ns/r").await })
}

#[tokio::test(start_paused = true)]
async fn a_held_request_is_released_when_an_instance_is_ready() {
    let s = setup();
    let (act, eps, hook) = s.clone();
    let held = spawn_hold(&s);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(act.held("ns/r"), 1);
    assert_eq!(hook.calls.load(Ordering::SeqCst), 1, "the autoscaler is told at once");
    eps.set("ns/r", vec![addr(1)], 0);
    let (lease, waited) = held.await.unwrap().unwrap();
    assert_eq!(lease.addr(), addr(1));
    assert_eq!(waited, Duration::from_millis(5));
    assert_eq!(act.held("ns/r"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_hold_times_out() {
    let (act, eps, hook) = setup();
    let r = act.hold(&eps, hook.as_ref(), "ns", "r", "ns/r").await;
    assert_eq!(r.err(), Some(HoldError::Timeout));
    assert_eq!(act.held("ns/r"), 0);
}

#[tokio::test(start_paused = true)]
async fn full_instances_release_held_requests_one_slot_at_a_time() {
    let s = setup();
    let (act, eps, hook) = s.clone();
    eps.set("ns/r", vec![addr(1)], 1);
    let first = eps.acquire("ns/r").unwrap();
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(spawn_hold(&s));
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(act.held("ns/r"), 3);
    assert_eq!(hook.last_held.load(Ordering::SeqCst), 3, "held requests are reported as load");
    // Each freed slot lets exactly one held request through.
    drop(first);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(act.held("ns/r"), 2);
    let done: Vec<_> = waiting.iter().filter(|h| h.is_finished()).collect();
    assert_eq!(done.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_number_held_per_revision_is_bounded() {
    let s = setup();
    let (act, eps, hook) = s.clone();
    let mut waiting = Vec::new();
    for _ in 0..MAX_HELD {
        waiting.push(spawn_hold(&s));
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(act.held("ns/r"), MAX_HELD);
    assert_eq!(act.hold(&eps, hook.as_ref(), "ns", "r", "ns/r").await.err(), Some(HoldError::Full));
    // Another revision is not affected.
    eps.set("ns/other", vec![addr(2)], 0);
    assert!(act.hold(&eps, hook.as_ref(), "ns", "other", "ns/other").await.is_ok());
    eps.set("ns/r", vec![addr(1)], 0);
    for w in waiting {
        assert!(w.await.unwrap().is_ok());
    }
}

#[tokio::test(start_paused = true)]
async fn a_dropped_request_releases_its_hold() {
    let s = setup();
    let act = s.0.clone();
    let held = spawn_hold(&s);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(act.held("ns/r"), 1);
    held.abort(); // the client went away
    let _ = held.await;
    assert_eq!(act.held("ns/r"), 0);
}

#[tokio::test(start_paused = true)]
async fn held_requests_are_released_first_come_first_served() {
    let s = setup();
    let eps = s.1.clone();
    eps.set("ns/r", vec![addr(1)], 1);
    let mut lease = eps.acquire("ns/r").unwrap();
    let mut waiting = std::collections::VecDeque::new();
    for _ in 0..3 {
        waiting.push_back(spawn_hold(&s));
        tokio::time::sleep(Duration::from_millis(1)).await; // a strict arrival order
    }
    while !waiting.is_empty() {
        drop(lease); // one slot frees
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(waiting[0].is_finished(), "the first in line goes first");
        assert!(waiting.iter().skip(1).all(|h| !h.is_finished()), "the others still wait");
        lease = waiting.pop_front().unwrap().await.unwrap().unwrap().0;
    }
}
