//! Shared by the facade's tests: running a test of the same binary as a child process (the
//! global subscriber can be installed once per process), and a local webhook receiver.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The variable telling a child test it runs for a parent (its value: the test's name).
pub const CHILD: &str = "STRATA_FACADE_CHILD";

/// Whether this process is the child run of test `name`. A child test returns at once
/// otherwise: it is the parent's set-up, not a test of its own.
pub fn is_child(name: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|v| v == name)
}

/// Runs test `name` of this binary in a child process, in `dir`, with `envs` and none of
/// strata's variables from this process; returns its output.
pub fn run_child(name: &str, dir: &Path, envs: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .current_dir(dir)
        .env(CHILD, name);
    strata_testkit::scrub_env(&mut cmd);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("the child runs")
}

/// A local HTTP server standing in for a webhook: answers 200 to every POST and keeps the
/// bodies.
pub struct Webhooks {
    addr: SocketAddr,
    bodies: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Webhooks {
    pub fn start() -> Webhooks {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies: Arc<(Mutex<Vec<String>>, Condvar)> = Arc::default();
        let shared = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        // One request per iteration (keep-alive).
                        let mut len = 0usize;
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            let l = line.trim_end();
                            if l.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = l.split_once(':')
                                && k.eq_ignore_ascii_case("content-length")
                            {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; len];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        let (list, cv) = &*shared;
                        list.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&body).into_owned());
                        cv.notify_all();
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok",
                        );
                    }
                });
            }
        });
        Webhooks { addr, bodies }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The bodies received so far, once at least `n` have arrived or `timeout` passed.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let (list, cv) = &*self.bodies;
        let mut l = list.lock().unwrap();
        while l.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            l = cv.wait_timeout(l, left).unwrap().0;
        }
        l.clone()
    }
}

/// Every event of the local error store at `path`, as JSON text.
pub fn stored_errors(path: &Path) -> Vec<String> {
    let store = strata::capture::LocalStore::open(path, "test").expect("the store opens");
    let mut out = Vec::new();
    for g in store.groups().unwrap() {
        let (_, events) = store.group(&g.id).unwrap().expect("the group exists");
        for e in events {
            out.push(serde_json::to_string(&e).unwrap());
        }
    }
    out
}

/// The lines of every file under `dir` whose name starts with `prefix`.
pub fn file_lines(dir: &Path, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(prefix))
        {
            out.extend(
                std::fs::read_to_string(&p)
                    .unwrap()
                    .lines()
                    .map(str::to_owned),
            );
        }
    }
    out
}
