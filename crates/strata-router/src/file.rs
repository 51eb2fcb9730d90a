//! A log file rotated by size and/or time, with retention by count and age and optional gzip.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When time rotation starts a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Period {
    /// At the start of every hour.
    Hourly,
    /// At midnight.
    Daily,
}

impl Period {
    fn secs(self) -> u64 {
        match self {
            Period::Hourly => 3600,
            Period::Daily => 86_400,
        }
    }
}

/// Why a [`RollingFile`] could not be opened.
#[derive(Debug)]
#[non_exhaustive]
pub enum FileError {
    /// The directory could not be created.
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The current file could not be opened.
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A setting is unusable.
    InvalidSetting {
        /// The setting.
        setting: &'static str,
        /// What was expected.
        expected: &'static str,
    },
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileError::CreateDir { dir, source } => {
                write!(f, "cannot create log directory {}: {source}", dir.display())
            }
            FileError::Open { path, source } => {
                write!(f, "cannot open log file {}: {source}", path.display())
            }
            FileError::InvalidSetting { setting, expected } => {
                write!(f, "invalid {setting}: expected {expected}")
            }
        }
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FileError::CreateDir { source, .. } | FileError::Open { source, .. } => Some(source),
            FileError::InvalidSetting { .. } => None,
        }
    }
}

/// The clock a [`RollingFile`] reads (replaceable in tests).
pub type ClockFn = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// A log file that rotates by size and/or time.
///
/// The current file is always `<dir>/<name>.log` (so `tail -F` follows it); a rotated file is
/// renamed `<name>.<YYYYMMDDTHHMMSS><zone>-<NNNN>.log` (names sort in time order; `<zone>` is `Z`
/// or the fixed offset, e.g. `+0200`, so DST never makes two names collide), then gzipped if
/// asked. Each `write` must hold whole lines (the non-blocking writer and strata-json always
/// pass whole lines): a file is rotated only between lines, so no line is torn or split across
/// files, and a size limit is never exceeded except by a single line longer than it.
///
/// Write failures (disk full, directory removed, permission denied) are reported once on stderr
/// and counted — the failures ([`RollingFile::error_counter`]) and the lines lost
/// ([`RollingFile::lost_counter`]); a line the disk only half took is cut off again, so none is
/// torn; the file is reopened (re-creating the directory) at most once a second, and stderr
/// says when writing works again. The application goes on.
///
/// ```no_run
/// use strata_router::{non_blocking, Period, RollingFile};
///
/// let file = RollingFile::new("/var/log/myapp", "myapp")
///     .with_max_bytes(100 << 20)
///     .with_period(Period::Daily)
///     .with_max_files(14)
///     .with_gzip(true)
///     .open()?;
/// let (writer, _guard) = non_blocking(file)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RollingFile {
    dir: PathBuf,
    name: String,
    max_bytes: Option<u64>,
    period: Option<Period>,
    offset_secs: i32,
    max_files: Option<usize>,
    max_age: Option<Duration>,
    gzip: bool,
    clock: ClockFn,
    file: Option<File>,
    size: u64,
    bucket: u64,
    last_reopen: Option<SystemTime>,
    last_check: Option<SystemTime>,
    reported: bool,
    errors: Arc<AtomicU64>,
    lost: Arc<AtomicU64>,
}

impl std::fmt::Debug for RollingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollingFile")
            .field("current", &self.current_path())
            .field("max_bytes", &self.max_bytes)
            .field("period", &self.period)
            .field("max_files", &self.max_files)
            .field("max_age", &self.max_age)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

impl RollingFile {
    /// A file `<dir>/<name>.log`, not rotated until a size or period is set.
    pub fn new(dir: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        RollingFile {
            dir: dir.into(),
            name: name.into(),
            max_bytes: None,
            period: None,
            offset_secs: 0,
            max_files: None,
            max_age: None,
            gzip: false,
            clock: Arc::new(SystemTime::now),
            file: None,
            size: 0,
            bucket: 0,
            last_reopen: None,
            last_check: None,
            reported: false,
            errors: Arc::default(),
            lost: Arc::default(),
        }
    }

    /// Rotates when the file would grow past `bytes`.
    #[must_use]
    pub fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// Rotates at the start of every hour or day.
    #[must_use]
    pub fn with_period(mut self, period: Period) -> Self {
        self.period = Some(period);
        self
    }

    /// Periods and file names in local time at a fixed offset from UTC, in seconds (take it
    /// once at start-up). Default: UTC.
    #[must_use]
    pub fn with_utc_offset(mut self, seconds: i32) -> Self {
        self.offset_secs = seconds;
        self
    }

    /// Keeps at most `n` rotated files (the oldest are deleted).
    #[must_use]
    pub fn with_max_files(mut self, n: usize) -> Self {
        self.max_files = Some(n);
        self
    }

    /// Deletes rotated files older than `age`.
    #[must_use]
    pub fn with_max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Compresses rotated files to `.log.gz`.
    #[must_use]
    pub fn with_gzip(mut self, on: bool) -> Self {
        self.gzip = on;
        self
    }

    /// Reads time from `clock` instead of the system clock (for tests).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Creates the directory and opens (appends to) the current file.
    ///
    /// # Errors
    ///
    /// [`FileError`] naming the directory or file and the cause.
    pub fn open(mut self) -> Result<Self, FileError> {
        if self.max_bytes == Some(0) {
            return Err(FileError::InvalidSetting {
                setting: "max_bytes",
                expected: "at least 1 byte",
            });
        }
        if self.offset_secs.unsigned_abs() >= 86_400 {
            return Err(FileError::InvalidSetting {
                setting: "utc_offset",
                expected: "less than a day either way",
            });
        }
        fs::create_dir_all(&self.dir).map_err(|source| FileError::CreateDir {
            dir: self.dir.clone(),
            source,
        })?;
        let path = self.current_path();
        let file = open_append(&path).map_err(|source| FileError::Open { path, source })?;
        self.size = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.file = Some(file);
        self.bucket = self.bucket_of((self.clock)());
        Ok(self)
    }

    /// The path of the file being written.
    pub fn current_path(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.name))
    }

    /// A shared counter of failed writes.
    pub fn error_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.errors)
    }

    /// A shared counter of the lines lost to failed writes (a full disk, a directory that
    /// cannot be re-created): strata-metrics' `strata_telemetry_dropped_total` counts them.
    pub fn lost_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.lost)
    }

    fn local_secs(&self, t: SystemTime) -> u64 {
        let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
        (secs + i64::from(self.offset_secs)).max(0) as u64
    }

    fn bucket_of(&self, t: SystemTime) -> u64 {
        self.period.map_or(0, |p| self.local_secs(t) / p.secs())
    }

    fn zone(&self) -> String {
        if self.offset_secs == 0 {
            "Z".to_owned()
        } else {
            let sign = if self.offset_secs < 0 { '-' } else { '+' };
            let m = self.offset_secs.unsigned_abs() / 60;
            format!("{sign}{:02}{:02}", m / 60, m % 60)
        }
    }

    /// Closes the current file, renames it, opens a new one and applies retention.
    fn rotate(&mut self, now: SystemTime) -> io::Result<()> {
        if let Some(mut f) = self.file.take() {
            let _ = f.flush();
        }
        let stamp = format!(
            "{}.{}{}",
            self.name,
            strata_core::time::compact(self.local_secs(now)),
            self.zone()
        );
        let mut n = 0;
        let target = loop {
            let candidate = self.dir.join(format!("{stamp}-{n:04}.log"));
            let gz = self.dir.join(format!("{stamp}-{n:04}.log.gz"));
            if !candidate.exists() && !gz.exists() {
                break candidate;
            }
            n += 1;
        };
        let current = self.current_path();
        if current.exists() {
            fs::rename(&current, &target)?;
            if self.gzip {
                gzip_file(&target)?;
            }
        }
        let file = open_append(&current)?;
        self.size = 0;
        self.file = Some(file);
        self.retain(now);
        Ok(())
    }

    /// Deletes rotated files beyond `max_files` or older than `max_age`.
    fn retain(&self, now: SystemTime) {
        if self.max_files.is_none() && self.max_age.is_none() {
            return;
        }
        let prefix = format!("{}.", self.name);
        let current = format!("{}.log", self.name);
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut rotated: Vec<(String, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name.starts_with(&prefix)
                    && name != current
                    && (name.ends_with(".log") || name.ends_with(".log.gz")))
                .then(|| (name, e.path()))
            })
            .collect();
        rotated.sort();
        let mut keep_from = 0;
        if let Some(max) = self.max_files {
            keep_from = rotated.len().saturating_sub(max);
        }
        for (i, (_, path)) in rotated.iter().enumerate() {
            let too_many = i < keep_from;
            let too_old = self.max_age.is_some_and(|age| {
                fs::metadata(path)
                    .and_then(|m| m.modified())
                    .is_ok_and(|m| now.duration_since(m).is_ok_and(|d| d > age))
            });
            if too_many || too_old {
                let _ = fs::remove_file(path);
            }
        }
    }

    /// Counts a failure and says so on stderr, once until writing works again.
    fn report(&mut self, e: &io::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if !self.reported {
            self.reported = true;
            eprintln!(
                "strata-router: writing {} failed: {e}; further failures are only counted",
                self.current_path().display()
            );
        }
    }

    /// Counts `lines` (whole lines) as lost.
    fn lose(&self, lines: &[u8]) {
        let n = lines.iter().filter(|&&b| b == b'\n').count() as u64;
        self.lost.fetch_add(n, Ordering::Relaxed);
    }

    /// After a success: says on stderr that writing works again, if it had failed.
    fn recovered(&mut self) {
        if std::mem::take(&mut self.reported) {
            eprintln!(
                "strata-router: writing {} works again ({} lines lost in all)",
                self.current_path().display(),
                self.lost.load(Ordering::Relaxed)
            );
        }
    }

    /// Reopens the file after a failure, at most once a second.
    fn reopen(&mut self, now: SystemTime) {
        if self.last_reopen.is_some_and(|t| {
            now.duration_since(t)
                .is_ok_and(|d| d < Duration::from_secs(1))
        }) {
            return;
        }
        self.last_reopen = Some(now);
        let _ = fs::create_dir_all(&self.dir);
        if let Ok(f) = open_append(&self.current_path()) {
            self.size = f.metadata().map(|m| m.len()).unwrap_or(0);
            self.file = Some(f);
        }
    }

    /// Checks that the current file is still where it should be: on Linux a write to a file
    /// that was deleted (with its directory, say) succeeds and the lines vanish. Before every
    /// write, whether the open file was deleted (one `fstat`); once a second, whether the path
    /// still leads to a file (it was moved away).
    fn check_still_there(&mut self, now: SystemTime) {
        use std::os::unix::fs::MetadataExt;
        let deleted = self
            .file
            .as_ref()
            .is_some_and(|f| f.metadata().is_ok_and(|m| m.nlink() == 0));
        if !deleted {
            if self.last_check.is_some_and(|t| {
                now.duration_since(t)
                    .is_ok_and(|d| d < Duration::from_secs(1))
            }) {
                return;
            }
            self.last_check = Some(now);
        }
        if self.file.is_some() && (deleted || !self.current_path().exists()) {
            self.report(&io::Error::new(
                io::ErrorKind::NotFound,
                "the log file or its directory was removed; recreating it",
            ));
            self.file = None;
            self.last_reopen = None;
            self.reopen(now);
        }
    }

    /// Writes whole lines, rotating between lines as the limits require.
    fn write_lines(&mut self, mut rest: &[u8]) {
        let now = (self.clock)();
        self.check_still_there(now);
        let bucket = self.bucket_of(now);
        if bucket != self.bucket {
            self.bucket = bucket;
            if self.size > 0
                && let Err(e) = self.rotate(now)
            {
                self.report(&e);
            }
        }
        while !rest.is_empty() {
            if self.file.is_none() {
                self.reopen(now);
                if self.file.is_none() {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    self.lose(rest);
                    return;
                }
            }
            let chunk = match self.max_bytes {
                Some(max) if self.size + rest.len() as u64 > max => {
                    let room = max.saturating_sub(self.size) as usize;
                    match rest[..room.min(rest.len())]
                        .iter()
                        .rposition(|&b| b == b'\n')
                    {
                        Some(end) => &rest[..=end],
                        None if self.size > 0 => {
                            if let Err(e) = self.rotate(now) {
                                self.report(&e);
                            }
                            continue;
                        }
                        // an empty file and one line longer than the limit: write it whole
                        None => {
                            let end = rest
                                .iter()
                                .position(|&b| b == b'\n')
                                .map_or(rest.len(), |i| i + 1);
                            &rest[..end]
                        }
                    }
                }
                _ => rest,
            };
            let file = self.file.as_mut().expect("checked above");
            match file.write_all(chunk) {
                Ok(()) => {
                    self.size += chunk.len() as u64;
                    rest = &rest[chunk.len()..];
                    self.recovered();
                    if self.max_bytes.is_some_and(|max| self.size >= max)
                        && let Err(e) = self.rotate(now)
                    {
                        self.report(&e);
                    }
                }
                Err(e) => {
                    // A full disk may have taken part of the chunk: cut it off, so the next
                    // line does not continue a torn one.
                    let _ = file.set_len(self.size);
                    self.report(&e);
                    self.lose(rest);
                    self.file = None;
                    self.reopen(now);
                    return;
                }
            }
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn gzip_file(path: &Path) -> io::Result<()> {
    let mut gz_path = path.as_os_str().to_owned();
    gz_path.push(".gz");
    let mut input = File::open(path)?;
    let output = File::create(&gz_path)?;
    let mut enc = flate2::write::GzEncoder::new(output, flate2::Compression::default());
    io::copy(&mut input, &mut enc)?;
    enc.finish()?.sync_all()?;
    fs::remove_file(path)
}

impl Write for RollingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_lines(buf);
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write_lines(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}
