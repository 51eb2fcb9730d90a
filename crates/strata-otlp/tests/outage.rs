//! Collector outages, with real gRPC and HTTP: down at start, down in the middle of a run, and
//! black-holed (accepts connections, never answers). The caller is never held up, memory stays
//! bounded, losses are counted, and export resumes when the collector is back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use strata_otlp::{Otlp, OtlpGuard, Protocol};
use strata_testkit::{BlackHole, OtlpReceiver};

mod support;

/// Makes `n` spans named `name` with one event each, on this thread.
fn spans(otlp: &OtlpGuard, name: &'static str, n: u64) {
    support::traced(otlp, || {
        for i in 0..n {
            tracing::info_span!("work", phase = name, i).in_scope(|| tracing::info!("step"));
        }
    });
}

/// Two free loopback addresses (bound, then released).
fn free_addrs() -> (SocketAddr, SocketAddr) {
    let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (a.local_addr().unwrap(), b.local_addr().unwrap())
}

/// Retries `phase` (a few spans, then a flush) until the receiver has a span of that phase,
/// or 30 s: a client reconnects with a backoff of its own.
fn until_received(otlp: &OtlpGuard, receiver: &OtlpReceiver, phase: &'static str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        spans(otlp, phase, 5);
        let _ = otlp.flush(Duration::from_secs(5));
        if receiver
            .spans()
            .iter()
            .any(|s| s.attributes.get("phase").is_some_and(|p| p == phase))
        {
            return;
        }
        assert!(Instant::now() < deadline, "export never resumed ({phase})");
    }
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn collector_down_at_start_then_up(protocol: Protocol) {
    let (grpc, http) = free_addrs();
    let endpoint = match protocol {
        Protocol::Grpc => format!("http://{grpc}"),
        _ => format!("http://{http}"),
    };
    let otlp = Otlp::new()
        .with_endpoint(endpoint)
        .with_protocol(protocol)
        .with_timeout(Duration::from_millis(500))
        .start()
        .expect("starting with the collector down is not an error");
    spans(&otlp, "down", 100);
    let _ = otlp.flush(Duration::from_secs(10));
    assert!(otlp.failed_spans() > 0, "failures are counted");
    assert_eq!(otlp.exported_spans(), 0);
    let receiver = OtlpReceiver::start_at(grpc, http).unwrap();
    until_received(&otlp, &receiver, "up");
    assert!(
        !receiver
            .spans()
            .iter()
            .any(|s| s.attributes.get("phase").is_some_and(|p| p == "down")),
        "spans of the outage were counted as failed, not sent twice"
    );
}

#[test]
fn grpc_collector_down_at_start_then_up() {
    collector_down_at_start_then_up(Protocol::Grpc);
}

#[test]
fn http_collector_down_at_start_then_up() {
    collector_down_at_start_then_up(Protocol::HttpProtobuf);
}

#[test]
fn collector_down_mid_run_then_back_and_memory_stays_bounded() {
    let receiver = OtlpReceiver::start().unwrap();
    let (grpc, http) = (receiver.grpc_addr(), receiver.http_addr());
    let otlp = Otlp::new()
        .with_endpoint(receiver.grpc_endpoint())
        .with_timeout(Duration::from_millis(500))
        .start()
        .unwrap();
    spans(&otlp, "before", 50);
    assert!(otlp.flush(Duration::from_secs(10)));
    assert_eq!(otlp.exported_spans(), 50);
    drop(receiver);
    // 200 000 spans with nowhere to go: each is about a kilobyte in the SDK, so a queue
    // without a bound would grow by some 200 MB.
    let before = resident_bytes();
    spans(&otlp, "outage", 200_000);
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "resident memory grew by {} MB",
        grown >> 20
    );
    assert!(
        otlp.flush(Duration::from_secs(30)),
        "everything accepted was dealt with"
    );
    let lost = otlp.dropped_spans() + otlp.failed_spans();
    assert!(lost > 0, "losses are counted");
    assert_eq!(
        otlp.exported_spans() + lost,
        200_050,
        "every span is exported, dropped or failed"
    );
    let receiver = OtlpReceiver::start_at(grpc, http).unwrap();
    until_received(&otlp, &receiver, "after");
}

#[test]
fn a_black_holed_collector_never_holds_up_the_caller() {
    let hole = BlackHole::start().unwrap();
    let otlp = Otlp::new()
        .with_endpoint(hole.endpoint())
        .with_protocol(Protocol::Grpc)
        // Longer than the caller takes: the first export is still waiting when it is done.
        .with_timeout(Duration::from_secs(30))
        .start()
        .unwrap();
    let total = 20_000_u64;
    spans(&otlp, "hole", total);
    // The caller made all its spans while the export thread waited on the collector.
    assert_eq!(
        (otlp.exported_spans(), otlp.failed_spans()),
        (0, 0),
        "the first export has not returned, yet the caller is done"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while hole.connections() == 0 {
        assert!(Instant::now() < deadline, "the exporter never connected");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The queue (2048) and the batch in flight are all that is kept: the rest was dropped.
    assert!(
        otlp.dropped_spans() + 2 * 2048 >= total,
        "dropped {} of {total}",
        otlp.dropped_spans()
    );
    // Bounded: the guard gives up after its own timeout (5 s), not the export's (30 s).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(otlp);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(15))
        .expect("dropping the guard waited for the black hole");
    drop(hole);
}

/// A collector that is down for the first attempt (it accepts the connection and closes it at
/// once, like one restarting) and up for the next: the export's retries deliver every span,
/// once, and nothing is counted as failed.
fn a_blip_shorter_than_the_retries_loses_nothing(protocol: Protocol) {
    let (grpc, http) = free_addrs();
    let addr = match protocol {
        Protocol::Grpc => grpc,
        _ => http,
    };
    let refusing = std::net::TcpListener::bind(addr).unwrap();
    let otlp = Otlp::new()
        .with_endpoint(format!("http://{addr}"))
        .with_protocol(protocol)
        .with_timeout(Duration::from_secs(2))
        .with_logs(false)
        .start()
        .unwrap();
    spans(&otlp, "blip", 10);
    let flushed = std::thread::scope(|s| {
        let flush = s.spawn(|| otlp.flush(Duration::from_secs(10)));
        // The first attempt's connection: closed unanswered; then the collector comes up.
        let (conn, _) = refusing.accept().unwrap();
        drop(conn);
        drop(refusing);
        let receiver = OtlpReceiver::start_at(grpc, http).unwrap();
        let flushed = flush.join().unwrap();
        let received = receiver.wait_for_spans(10, Duration::from_secs(10));
        (flushed, received)
    });
    let (flushed, received) = flushed;
    assert!(flushed, "the flush completed");
    assert_eq!(
        otlp.failed_spans(),
        0,
        "a transient failure is retried, not counted"
    );
    assert_eq!(otlp.exported_spans(), 10);
    let blips = received
        .iter()
        .filter(|s| s.attributes.get("phase").is_some_and(|p| p == "blip"))
        .count();
    assert_eq!(blips, 10, "every span once: {received:#?}");
}

#[test]
fn grpc_a_blip_shorter_than_the_retries_loses_nothing() {
    a_blip_shorter_than_the_retries_loses_nothing(Protocol::Grpc);
}

#[test]
fn http_a_blip_shorter_than_the_retries_loses_nothing() {
    a_blip_shorter_than_the_retries_loses_nothing(Protocol::HttpProtobuf);
}
