//! Rotation under load, retention, time rotation with an injected clock, gzip, disk full, a
//! directory removed mid-run, and the non-blocking writer's policies.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use strata_router::{NonBlockingBuilder, Period, Policy, RollingFile, non_blocking};

/// Every file of the log `name` in `dir` (current, rotated, gzipped), as text, oldest first.
fn read_all(dir: &Path, name: &str) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{name}."))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let mut text = String::new();
            if p.extension().is_some_and(|e| e == "gz") {
                flate2::read::GzDecoder::new(std::fs::File::open(&p).unwrap())
                    .read_to_string(&mut text)
                    .unwrap();
            } else {
                text = std::fs::read_to_string(&p).unwrap();
            }
            (p.file_name().unwrap().to_string_lossy().into_owned(), text)
        })
        .collect()
}

#[test]
fn size_rotation_under_load_loses_duplicates_and_tears_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = RollingFile::new(dir.path(), "load")
        .with_max_bytes(1 << 20)
        .open()
        .unwrap();
    let (writer, guard) = non_blocking(file).unwrap();
    const PER_THREAD: usize = 500_000;
    std::thread::scope(|s| {
        for t in 0..2 {
            let mut w = writer.clone();
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    w.write_all(
                        format!("{{\"t\":{t},\"i\":{i},\"pad\":\"{i:07}x\"}}\n").as_bytes(),
                    )
                    .unwrap();
                }
            });
        }
    });
    drop(guard);
    let files = read_all(dir.path(), "load");
    assert!(
        files.len() >= 30,
        "about 37 MB in 1 MiB files: {} files",
        files.len()
    );
    let mut seen = HashSet::new();
    for (name, text) in &files {
        assert!(
            text.len() as u64 <= 1 << 20,
            "{name} is {} bytes",
            text.len()
        );
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{name} ends mid-line"
        );
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("torn line in {name}: {e}: {line}"));
            let key = (v["t"].as_u64().unwrap(), v["i"].as_u64().unwrap());
            assert!(seen.insert(key), "duplicate {key:?}");
        }
    }
    assert_eq!(seen.len(), 2 * PER_THREAD, "every line exactly once");
    assert_eq!(writer.dropped_lines(), 0);
}

#[test]
fn retention_keeps_the_newest_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = RollingFile::new(dir.path(), "ret")
        .with_max_bytes(100)
        .with_max_files(3)
        .open()
        .unwrap();
    for i in 0..100 {
        f.write_all(format!("line number {i:04} with some padding\n").as_bytes())
            .unwrap();
    }
    let files = read_all(dir.path(), "ret");
    assert_eq!(
        files.len(),
        4,
        "3 rotated + current: {:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let all: String = files.iter().map(|f| f.1.as_str()).collect();
    assert!(all.contains("line number 0099"));
    assert!(!all.contains("line number 0000"), "the oldest were deleted");
}

#[test]
fn retention_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = RollingFile::new(dir.path(), "age")
        .with_max_bytes(10)
        .with_max_age(Duration::from_secs(3600))
        .open()
        .unwrap();
    f.write_all(b"old line.\n").unwrap(); // 10 bytes: rotated at once
    let old = read_all(dir.path(), "age")
        .into_iter()
        .find(|f| f.0 != "age.log")
        .unwrap()
        .0;
    // make the rotated file two hours old
    std::fs::File::options()
        .write(true)
        .open(dir.path().join(&old))
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    f.write_all(b"new line.\n").unwrap(); // rotation, then retention
    let names: Vec<String> = read_all(dir.path(), "age")
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert!(
        !names.contains(&old),
        "{old} is older than an hour: {names:?}"
    );
    assert_eq!(
        names.len(),
        2,
        "the new rotated file and the current one: {names:?}"
    );
}

#[test]
fn time_rotation_follows_the_injected_clock_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    // 2025-01-01T21:59:00Z; at +02:00 that is 23:59 local
    let now = Arc::new(AtomicU64::new(1_735_768_740));
    let clock = {
        let now = now.clone();
        move || UNIX_EPOCH + Duration::from_secs(now.load(Ordering::SeqCst))
    };
    let mut f = RollingFile::new(dir.path(), "daily")
        .with_period(Period::Daily)
        .with_utc_offset(2 * 3600)
        .with_clock(clock)
        .open()
        .unwrap();
    f.write_all(b"before local midnight\n").unwrap();
    now.fetch_add(30, Ordering::SeqCst);
    f.write_all(b"still the same day\n").unwrap();
    now.fetch_add(60, Ordering::SeqCst); // 22:00:30Z = 00:00:30 local: a new day
    f.write_all(b"after local midnight\n").unwrap();
    let files = read_all(dir.path(), "daily");
    assert_eq!(
        files.len(),
        2,
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(files[0].0, "daily.20250102T000030+0200-0000.log");
    assert_eq!(files[0].1, "before local midnight\nstill the same day\n");
    assert_eq!(files[1].0, "daily.log");
    assert_eq!(files[1].1, "after local midnight\n");
}

#[test]
fn rotated_files_are_gzipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = RollingFile::new(dir.path(), "gz")
        .with_max_bytes(64)
        .with_gzip(true)
        .open()
        .unwrap();
    for i in 0..10 {
        f.write_all(format!("gzip line {i:02} ............\n").as_bytes())
            .unwrap();
    }
    let files = read_all(dir.path(), "gz");
    assert!(files.iter().filter(|f| f.0.ends_with(".log.gz")).count() >= 3);
    let all: String = files.iter().map(|f| f.1.as_str()).collect();
    for i in 0..10 {
        assert_eq!(all.matches(&format!("gzip line {i:02} ")).count(), 1);
    }
}

#[test]
fn disk_full_is_counted_and_the_application_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.path().join("full.log")).unwrap();
    let f = RollingFile::new(dir.path(), "full").open().unwrap();
    let errors = f.error_counter();
    let lost = f.lost_counter();
    let (mut w, guard) = non_blocking(f).unwrap();
    for _ in 0..100 {
        w.write_all(b"lost line\n").unwrap();
    }
    guard.flush();
    drop(guard);
    assert!(errors.load(Ordering::Relaxed) >= 1, "failures are counted");
    assert_eq!(lost.load(Ordering::Relaxed), 100, "and every line lost");
}

#[test]
fn a_removed_directory_is_recreated() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("logs");
    let now = Arc::new(AtomicU64::new(1_800_000_000));
    let clock = {
        let now = now.clone();
        move || UNIX_EPOCH + Duration::from_secs(now.load(Ordering::SeqCst))
    };
    let mut f = RollingFile::new(&dir, "gone")
        .with_clock(clock)
        .open()
        .unwrap();
    let errors = f.error_counter();
    f.write_all(b"before\n").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    now.fetch_add(2, Ordering::SeqCst); // the existence check runs at most once a second
    f.write_all(b"after\n").unwrap();
    assert_eq!(
        errors.load(Ordering::Relaxed),
        1,
        "the removal is counted (and reported once)"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("gone.log")).unwrap(),
        "after\n"
    );
}

#[test]
fn the_drop_policy_counts_and_reports_in_the_output() {
    /// A writer as slow as a congested disk.
    #[derive(Clone)]
    struct Slow(Arc<Mutex<Vec<u8>>>);
    impl Write for Slow {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(Duration::from_millis(5));
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = Slow(Arc::default());
    let (mut w, guard) = NonBlockingBuilder::default()
        .with_capacity(256)
        .with_policy(Policy::Drop)
        .spawn(out.clone())
        .unwrap();
    let total = 2000;
    for i in 0..total {
        w.write_all(format!("{{\"i\":{i}}}\n").as_bytes()).unwrap();
    }
    let dropped = w.dropped_lines();
    drop(guard);
    assert!(
        dropped > 0,
        "a 256-byte queue in front of a slow writer drops"
    );
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let written = lines.iter().filter(|l| l.get("i").is_some()).count() as u64;
    let reported: u64 = lines
        .iter()
        .filter(|l| l["event"] == "log_lines_dropped")
        .map(|l| {
            assert_eq!(l["level"], "WARN");
            l["dropped"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(written + dropped, total, "every line is written or counted");
    assert_eq!(reported, dropped, "every drop is reported in the output");
}

#[test]
fn block_policy_flush_and_shutdown_write_everything() {
    #[derive(Clone, Default)]
    struct Mem(Arc<Mutex<Vec<u8>>>);
    impl Write for Mem {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = Mem::default();
    let (mut w, guard) = NonBlockingBuilder::default()
        .with_capacity(64)
        .spawn(out.clone())
        .unwrap();
    for i in 0..1000 {
        w.write_all(format!("line {i}\n").as_bytes()).unwrap();
    }
    w.flush().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.0.lock().unwrap())
            .lines()
            .count(),
        1000,
        "flush waits"
    );
    w.write_all(b"last\n").unwrap();
    drop(guard);
    assert!(
        String::from_utf8_lossy(&out.0.lock().unwrap()).ends_with("last\n"),
        "shutdown drains"
    );
    // after shutdown nothing blocks: writes are counted as dropped
    w.write_all(b"too late\n").unwrap();
    assert_eq!(w.dropped_lines(), 1);
}

/// Records every `write` call the non-blocking writer's thread makes.
#[derive(Clone, Default)]
struct Calls(Arc<(Mutex<Vec<Vec<u8>>>, std::sync::Condvar)>);

impl Write for Calls {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.0.lock().unwrap().push(buf.to_vec());
        self.0.1.notify_all();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Calls {
    /// Waits (at most 10 s) until `n` write calls were made; returns them.
    fn wait_for(&self, n: usize) -> Vec<Vec<u8>> {
        let (calls, cv) = &*self.0;
        let (calls, timeout) = cv
            .wait_timeout_while(calls.lock().unwrap(), Duration::from_secs(10), |c| {
                c.len() < n
            })
            .unwrap();
        assert!(!timeout.timed_out(), "{} write calls, not {n}", calls.len());
        calls.clone()
    }
}

#[test]
fn lines_queued_while_the_writer_lingers_go_out_in_one_write_when_a_batch_fills() {
    let calls = Calls::default();
    let (mut w, guard) = NonBlockingBuilder::default()
        .with_linger(Duration::from_secs(60))
        .spawn(calls.clone())
        .unwrap();
    for i in 0..3 {
        writeln!(w, "{{\"n\":{i}}}").unwrap();
    }
    // 64 KiB queued ends the linger: everything so far in a single `write`.
    let big = format!("{{\"big\":\"{}\"}}\n", "x".repeat(64 << 10));
    w.write_all(big.as_bytes()).unwrap();
    let written = calls.wait_for(1);
    assert_eq!(written.len(), 1);
    let text = String::from_utf8(written[0].clone()).unwrap();
    assert_eq!(text.lines().count(), 4, "one write, every line");
    assert!(text.starts_with("{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n"));
    drop(guard);
}

#[test]
fn a_flush_ends_the_linger_at_once() {
    let calls = Calls::default();
    let (mut w, guard) = NonBlockingBuilder::default()
        .with_linger(Duration::from_secs(60))
        .spawn(calls.clone())
        .unwrap();
    writeln!(w, "{{\"n\":1}}").unwrap();
    // Returns when the line has been handed over (not after the 60 s linger).
    w.flush().unwrap();
    let written = calls.wait_for(1);
    assert_eq!(written.concat(), b"{\"n\":1}\n");
    // And dropping the guard writes what is left without waiting either.
    writeln!(w, "{{\"n\":2}}").unwrap();
    let started = std::time::Instant::now();
    drop(guard);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(calls.wait_for(2).concat(), b"{\"n\":1}\n{\"n\":2}\n");
}
