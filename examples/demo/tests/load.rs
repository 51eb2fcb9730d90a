//! A bounded load test of the demo with every layer on (JSON to stdout and a rotating file,
//! request IDs, traces and metrics to the local OTLP file, error capture, alerts, /metrics):
//! `wrk` hammers an endpoint that never fails on purpose while the demo's own customers shop.
//! Every wrk response must be a success — an error would be instrumentation's doing — and the
//! demo's memory must level off.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn wrk_against_the_demo_gets_no_error_and_memory_levels_off() {
    let Some(wrk) = which("wrk") else {
        assert!(
            std::env::var_os("STRATA_REQUIRE_BACKENDS").is_none(),
            "wrk is not installed (scripts/test.sh installs it)"
        );
        eprintln!("skipped: wrk not installed; run scripts/test.sh");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_example-demo"));
    strata_testkit::scrub_env(&mut cmd);
    let mut demo = cmd
        .current_dir(dir.path())
        .env("DEMO_SECONDS", "14")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the demo starts");
    let pid = demo.id();

    // The demo says where it listens in its first lines; the rest is drained (and counted).
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let stdout = demo.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = 0_u64;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("UTF-8 lines");
            let v: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if v["event"] == "service_started" {
                let _ = addr_tx.send(v["addr"].as_str().unwrap().to_owned());
            }
            lines += 1;
        }
        lines
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the demo starts listening");

    // 10 s of wrk on one core's worth of connections, memory sampled meanwhile.
    let bench = Command::new(wrk)
        .args(["-t1", "-c16", "-d10s", "--latency"])
        .arg(format!("http://{addr}/inventory/SKU-1"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("wrk runs");
    let start = Instant::now();
    let mut rss = Vec::new();
    while start.elapsed() < Duration::from_secs(10) {
        rss.push(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = bench.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}\nRSS KiB every 0.5 s: {rss:?}");
    assert!(out.status.success(), "wrk: {text}");
    let requests: u64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .expect("wrk's request count");
    assert!(requests > 1000, "a real load: {requests} requests");
    assert!(
        !text.contains("Non-2xx or 3xx responses"),
        "instrumentation made requests fail: {text}"
    );
    assert!(!text.contains("Socket errors"), "{text}");

    // After the first seconds, memory levels off: the second half grows by less than 32 MiB
    // over the first half's peak (every strata queue is bounded).
    let half = rss.len() / 2;
    let first = *rss[2..half].iter().max().unwrap();
    let second = *rss[half..].iter().max().unwrap();
    assert!(second < first + 32 * 1024, "RSS kept growing: {rss:?}");

    let status = demo.wait().expect("the demo ends");
    assert!(status.success(), "the demo ends normally after the load");
    let lines = reader.join().unwrap();
    assert!(
        lines > requests,
        "a line per request at least: {lines} lines for {requests} wrk requests"
    );
}
