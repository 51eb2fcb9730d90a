//! A real Sentry-protocol server for tests: Bugsink, installed by `scripts/test.sh`
//! (`scripts/bugsink.sh install`, into a cached venv) and started here on 127.0.0.1 with a
//! database of its own; what arrived is read back through its REST API.
//!
//! ```no_run
//! use strata_testkit::Bugsink;
//!
//! let Some(bugsink) = Bugsink::start() else { return }; // not installed, not required
//! // point the program at bugsink.dsn(), run it…
//! for issue in bugsink.issues() {
//!     let events = bugsink.events(issue["id"].as_str().unwrap());
//!     assert!(!events.is_empty());
//! }
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// A running Bugsink; stopped when dropped.
#[derive(Debug)]
pub struct Bugsink {
    dir: tempfile::TempDir,
    vars: HashMap<String, String>,
}

impl Drop for Bugsink {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("gunicorn.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

impl Bugsink {
    /// Starts a Bugsink on a free port of 127.0.0.1. `None` when it is not installed, unless
    /// `STRATA_REQUIRE_BACKENDS` is set: then a missing install fails the test.
    ///
    /// # Panics
    ///
    /// When it is installed but does not start, or is required and not installed.
    pub fn start() -> Option<Bugsink> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bugsink.sh");
        let cache = std::env::var_os("STRATA_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/strata")
            });
        let installed = Command::new(cache.join("venv-bugsink/bin/python"))
            .args(["-c", "import bugsink"])
            .output()
            .is_ok_and(|o| o.status.success())
            && cache.join("bugsink-template/db.sqlite3").exists();
        if !installed {
            assert!(
                std::env::var_os("STRATA_REQUIRE_BACKENDS").is_none(),
                "Bugsink is not installed (scripts/test.sh runs scripts/bugsink.sh install)"
            );
            eprintln!("skipped: Bugsink not installed; run scripts/test.sh");
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(dir.path())
            .arg(port.to_string())
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "bugsink start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vars = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some(Bugsink { dir, vars })
    }

    /// The DSN to send events to.
    pub fn dsn(&self) -> &str {
        &self.vars["DSN"]
    }

    /// `GET` an API path (`/issues/?project=1`) as JSON.
    ///
    /// # Panics
    ///
    /// When the request fails.
    pub fn get(&self, path: &str) -> Value {
        reqwest::blocking::Client::new()
            .get(format!("{}{path}", self.vars["API"]))
            .bearer_auth(&self.vars["TOKEN"])
            .send()
            .and_then(reqwest::blocking::Response::error_for_status)
            .and_then(reqwest::blocking::Response::json)
            .expect("the Bugsink API answers")
    }

    /// The project's issues (error groups).
    pub fn issues(&self) -> Vec<Value> {
        self.get(&format!("/issues/?project={}", self.vars["PROJECT"]))["results"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The payloads of an issue's events.
    pub fn events(&self, issue: &str) -> Vec<Value> {
        self.get(&format!("/events/?issue={issue}"))["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["id"].as_str())
            .map(|id| self.get(&format!("/events/{id}/"))["data"].clone())
            .collect()
    }
}
