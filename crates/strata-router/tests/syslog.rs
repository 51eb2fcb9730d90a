//! The syslog sink against a real syslog-ng (installed by `scripts/test.sh`): RFC 5424 over UDP,
//! TCP and a unix datagram socket, checked in what syslog-ng wrote.

use std::io::Write;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use strata_core::Severity;
use strata_router::{Background, Format, Route, RouteFilter, RouterLayer, SyslogSink, Transport};
use tracing_subscriber::prelude::*;

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn messages_reach_a_real_syslog_ng_over_udp_tcp_and_unix() {
    let Ok(bin) = which("syslog-ng") else {
        assert!(
            std::env::var_os("STRATA_REQUIRE_BACKENDS").is_none(),
            "syslog-ng is not installed (scripts/test.sh installs syslog-ng-core)"
        );
        eprintln!("skipped: syslog-ng not installed; run scripts/test.sh");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (tcp, udp) = (free_port(), free_port());
    let sock = dir.path().join("log.sock");
    let out = dir.path().join("received.log");
    let conf = dir.path().join("syslog-ng.conf");
    std::fs::write(
        &conf,
        format!(
            r#"@version: 3.38
options {{ keep-hostname(yes); }};
source s_net {{
  syslog(ip("127.0.0.1") port({tcp}) transport("tcp"));
  network(ip("127.0.0.1") port({udp}) transport("udp") flags(syslog-protocol));
  unix-dgram("{sock}" flags(syslog-protocol));
}};
destination d_file {{ file("{out}" template("$(format-json --scope rfc5424)\n")); }};
log {{ source(s_net); destination(d_file); flags(flow-control); }};
"#,
            sock = sock.display(),
            out = out.display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("-F")
        .arg("-f")
        .arg(&conf)
        .arg("-R")
        .arg(dir.path().join("persist"))
        .arg("-p")
        .arg(dir.path().join("pid"))
        .arg("-c")
        .arg(dir.path().join("ctl"))
        .spawn()
        .expect("syslog-ng starts");
    let _daemon = Daemon(child);
    wait_for("syslog-ng to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", tcp)).is_ok() && sock.exists()
    });

    let json = Format::Json(strata_json::JsonFormat::new().with_service("billing"));
    // TCP off the caller's thread, as the TOML configuration sets it up.
    let (tcp_sink, tcp_guard) = Background::new(
        SyslogSink::new(Transport::Tcp(([127, 0, 0, 1], tcp).into()), "billing").with_facility(16),
    )
    .spawn()
    .unwrap();
    let all = RouteFilter::default().with_levels(Severity::Info, Severity::Critical);
    let router = RouterLayer::new()
        .with_route(Route::new(
            all.clone(),
            json.clone(),
            SyslogSink::new(Transport::Udp(([127, 0, 0, 1], udp).into()), "billing"),
        ))
        .with_route(Route::new(all.clone(), json.clone(), tcp_sink))
        .with_route(Route::new(
            all,
            json,
            SyslogSink::new(Transport::Unix(sock.clone()), "billing"),
        ));
    let errors = router.write_errors();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(router), || {
        tracing::info!(invoice = 17, "invoice sent");
        tracing::error!("payment gateway timeout");
        strata_core::critical!("ledger unreachable\ninjected line");
    });
    assert!(tcp_guard.flush(Duration::from_secs(10)));
    assert_eq!(errors.load(std::sync::atomic::Ordering::Relaxed), 0);

    let read = || std::fs::read_to_string(&out).unwrap_or_default();
    wait_for("9 messages in syslog-ng's file", || {
        read().lines().count() >= 9
    });
    let received: Vec<serde_json::Value> = read()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(received.len(), 9);
    for r in &received {
        assert_eq!(r["PROGRAM"], "billing", "{r}");
        let msg: serde_json::Value =
            serde_json::from_str(r["MESSAGE"].as_str().unwrap()).expect("MSG is our JSON line");
        assert_eq!(msg["service"], "billing");
        let expected = match msg["level"].as_str().unwrap() {
            "INFO" => "info",
            "ERROR" => "err",
            "CRITICAL" => "crit",
            other => panic!("{other}"),
        };
        assert_eq!(r["PRIORITY"], expected, "{r}");
    }
    assert!(
        received.iter().any(|r| r["FACILITY"] == "local0"),
        "the TCP sink's facility"
    );
    assert!(received.iter().any(|r| {
        r["MESSAGE"]
            .as_str()
            .unwrap()
            .contains("ledger unreachable\\ninjected line")
    }));
    std::io::stderr().flush().unwrap();
}

#[test]
fn a_stalled_tcp_server_never_blocks_the_caller_behind_background() {
    // Accepts connections (the kernel does, from the backlog) but never reads: once the socket
    // buffers fill, every write would block for the sink's one-second timeout.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = stalled.local_addr().unwrap();
    let (sink, guard) = Background::new(SyslogSink::new(Transport::Tcp(addr), "app"))
        .with_capacity(64)
        .spawn()
        .unwrap();
    let json = Format::Json(strata_json::JsonFormat::new());
    let router = RouterLayer::new().with_route(Route::new(RouteFilter::default(), json, sink));
    let big = "z".repeat(4000);
    let total = 20_000;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let emitter = std::thread::spawn(move || {
        tracing::subscriber::with_default(tracing_subscriber::registry().with(router), || {
            for i in 0..total {
                tracing::info!(i, payload = %big, "line");
            }
        });
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the caller was blocked by a stalled syslog server");
    emitter.join().unwrap();
    // Far more than the socket buffers and the queue can hold were dropped, and counted.
    assert!(
        guard.dropped() > 0,
        "nothing dropped: the caller must have waited"
    );
    drop(stalled);
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let p = std::path::Path::new(dir).join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(())
}
