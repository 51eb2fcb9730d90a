//! Real backends for the tests: child processes killed on drop, free ports, and whether a
//! tool is installed (skipping, or failing when scripts/test.sh required the backends).

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A child process killed on drop.
pub(crate) struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` with its output discarded.
pub(crate) fn spawn(cmd: &mut Command) -> Daemon {
    Daemon(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts"),
    )
}

/// A loopback port free a moment ago.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Says `what` is missing: a failure when the backends are required, else a skip (`None`).
pub(crate) fn missing(what: &str) -> Option<()> {
    assert!(
        std::env::var_os("STRATA_REQUIRE_BACKENDS").is_none(),
        "{what} is not installed (scripts/test.sh installs it)"
    );
    eprintln!("skipped: {what} not installed; run scripts/test.sh");
    None
}

/// Whether `tool --version` runs; see [`missing`] when it does not.
pub(crate) fn installed(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok() || missing(tool).is_some()
}

/// A Prometheus on 127.0.0.1:`port` with `config` (YAML), its data under `dir`.
pub(crate) fn prometheus(dir: &Path, port: u16, config: &str, extra: &[&str]) -> Daemon {
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    spawn(
        Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra),
    )
}
