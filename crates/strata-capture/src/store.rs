//! The local error store: a SQLite file of error groups and their recent events, bounded in
//! size, that survives restarts and that `strata errors` reads.
//!
//! ```
//! use strata_capture::LocalStore;
//!
//! let dir = tempfile::tempdir()?;
//! let store = LocalStore::open(dir.path().join("errors.db"), "1.4.2")?;
//! for group in store.groups()? {
//!     println!("{} ×{} {}", group.id, group.count, group.title);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::event::ErrorEvent;
use crate::worker::{Counters, Output};

/// The store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[error("error store {path}: {source}")]
pub struct StoreError {
    /// The database file.
    pub path: PathBuf,
    /// What SQLite said.
    #[source]
    pub source: rusqlite::Error,
}

/// One group of errors with the same fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Group {
    /// The fingerprint, 16 hex digits.
    pub id: String,
    /// `Type: message` of the latest occurrence.
    pub title: String,
    /// `ERROR` or `CRITICAL` (the latest occurrence's).
    pub level: String,
    /// Occurrences so far.
    pub count: u64,
    /// First and last occurrence, milliseconds since the Unix epoch.
    pub first_seen_ms: i64,
    /// Last occurrence.
    pub last_seen_ms: i64,
    /// The release it was first seen in.
    pub first_release: String,
    /// The release it was last seen in.
    pub last_release: String,
    /// First seen in the release that recorded it last (a new error of this release).
    pub new_in_release: bool,
    /// Came back after at least one whole release went by without it.
    pub regression: bool,
}

/// What recording one event did to its group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recorded {
    /// The group after the event.
    pub group: Group,
    /// The event opened a new group.
    pub first: bool,
}

/// The SQLite error store.
#[derive(Debug)]
pub struct LocalStore {
    conn: Connection,
    path: PathBuf,
    release: String,
    events_per_group: u32,
    max_events: u32,
    max_groups: u32,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS releases (
  name TEXT PRIMARY KEY,
  started_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  level TEXT NOT NULL,
  count INTEGER NOT NULL,
  first_seen_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  first_release TEXT NOT NULL,
  last_release TEXT NOT NULL,
  new_in_release INTEGER NOT NULL,
  regression INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS groups_last_seen ON groups (last_seen_ms);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  group_id TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_group ON events (group_id, seq);
";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl LocalStore {
    /// Opens (or creates) the store at `path` for `release`, recording that the release
    /// started now if it is new.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or created, or is not a strata error store.
    pub fn open(path: impl AsRef<Path>, release: &str) -> Result<LocalStore, StoreError> {
        Self::open_at(path, release, now_ms())
    }

    /// As [`LocalStore::open`], with the release's start time given (milliseconds since the
    /// Unix epoch) — for imports and tests that replay history.
    ///
    /// # Errors
    ///
    /// As [`LocalStore::open`].
    pub fn open_at(
        path: impl AsRef<Path>,
        release: &str,
        started_ms: i64,
    ) -> Result<LocalStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let err = |source| StoreError {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        conn.execute(
            "INSERT OR IGNORE INTO releases (name, started_ms) VALUES (?1, ?2)",
            params![release, started_ms],
        )
        .map_err(err)?;
        Ok(LocalStore {
            conn,
            path,
            release: release.to_owned(),
            events_per_group: 10,
            max_events: 2000,
            max_groups: 5000,
        })
    }

    /// Opens an existing store to read it, changing nothing: no directory, file or table is
    /// created and no release is recorded — unlike [`LocalStore::open`], whose release counts
    /// from then on when deciding whether a group that comes back is a regression. For tools
    /// that only show the store (`strata errors`); [`LocalStore::record`] on it fails. (Like
    /// any reader of a SQLite database in WAL mode, it may leave the `-wal` and `-shm` side
    /// files beside it; they hold no data of their own.)
    ///
    /// ```
    /// use strata_capture::LocalStore;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("errors.db");
    /// assert!(LocalStore::open_read_only(&path).is_err(), "nothing to read yet");
    /// assert!(!path.exists(), "and nothing was created");
    /// drop(LocalStore::open(&path, "1.4.2")?);
    /// assert!(LocalStore::open_read_only(&path)?.groups()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// When the file does not exist, cannot be read, or is not a strata error store.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<LocalStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let err = |source| StoreError {
            path: path.clone(),
            source,
        };
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        // Not a database, or not ours: say so now rather than at the first query.
        conn.prepare("SELECT id FROM groups, events WHERE group_id = id LIMIT 0")
            .map_err(err)?;
        Ok(LocalStore {
            conn,
            path,
            release: String::new(),
            events_per_group: 10,
            max_events: 2000,
            max_groups: 5000,
        })
    }

    /// Keeps at most `per_group` events of each group, `total` events and `groups` groups
    /// (the least recently seen go first). Default: 10, 2000, 5000.
    #[must_use]
    pub fn with_limits(mut self, per_group: u32, total: u32, groups: u32) -> Self {
        self.events_per_group = per_group.max(1);
        self.max_events = total.max(1);
        self.max_groups = groups.max(1);
        self
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source,
        }
    }

    /// Records one event: creates or updates its group (count, last seen, releases, the new
    /// and regression flags), keeps the event, and prunes to the limits.
    ///
    /// # Errors
    ///
    /// When SQLite fails.
    pub fn record(&mut self, event: &ErrorEvent) -> Result<Recorded, StoreError> {
        let body = serde_json::to_string(event).unwrap_or_default();
        // IMMEDIATE: several processes may share the file; take the write lock up front so the
        // busy timeout applies (a deferred read-then-write fails at once when contended).
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| StoreError {
                path: self.path.clone(),
                source: e,
            })?;
        let existing: Option<(i64, String)> = tx
            .query_row(
                "SELECT last_seen_ms, last_release FROM groups WHERE id = ?1",
                params![event.fingerprint],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| StoreError {
                path: self.path.clone(),
                source: e,
            })?;
        let map = |e| StoreError {
            path: self.path.clone(),
            source: e,
        };
        let first = existing.is_none();
        match existing {
            None => {
                tx.execute(
                    "INSERT INTO groups (id, title, level, count, first_seen_ms, last_seen_ms,
                       first_release, last_release, new_in_release, regression)
                     VALUES (?1, ?2, ?3, 1, ?4, ?4, ?5, ?5, 1, 0)",
                    params![
                        event.fingerprint,
                        event.title(),
                        event.level,
                        event.unix_ms,
                        self.release
                    ],
                )
                .map_err(map)?;
            }
            Some((last_seen, last_release)) => {
                // A regression: some release other than this one and the one it was last seen
                // in started after it was last seen, and went by without it.
                let skipped: i64 = tx
                    .query_row(
                        "SELECT COUNT(*) FROM releases
                         WHERE started_ms > ?1 AND name <> ?2 AND name <> ?3",
                        params![last_seen, self.release, last_release],
                        |r| r.get(0),
                    )
                    .map_err(map)?;
                tx.execute(
                    "UPDATE groups SET title = ?2, level = ?3, count = count + 1,
                       last_seen_ms = MAX(last_seen_ms, ?4), last_release = ?5,
                       new_in_release = (first_release = ?5),
                       regression = CASE WHEN ?6 > 0 THEN 1
                                         WHEN last_release <> ?5 THEN 0
                                         ELSE regression END
                     WHERE id = ?1",
                    params![
                        event.fingerprint,
                        event.title(),
                        event.level,
                        event.unix_ms,
                        self.release,
                        skipped
                    ],
                )
                .map_err(map)?;
            }
        }
        tx.execute(
            "INSERT INTO events (group_id, at_ms, body) VALUES (?1, ?2, ?3)",
            params![event.fingerprint, event.unix_ms, body],
        )
        .map_err(map)?;
        // Bounds: events per group, events in all, groups.
        tx.execute(
            "DELETE FROM events WHERE group_id = ?1 AND seq NOT IN
               (SELECT seq FROM events WHERE group_id = ?1 ORDER BY seq DESC LIMIT ?2)",
            params![event.fingerprint, self.events_per_group],
        )
        .map_err(map)?;
        tx.execute(
            "DELETE FROM events WHERE seq NOT IN
               (SELECT seq FROM events ORDER BY seq DESC LIMIT ?1)",
            params![self.max_events],
        )
        .map_err(map)?;
        tx.execute(
            "DELETE FROM groups WHERE id <> ?2 AND id NOT IN
               (SELECT id FROM groups ORDER BY last_seen_ms DESC LIMIT ?1)",
            params![self.max_groups, event.fingerprint],
        )
        .map_err(map)?;
        tx.execute(
            "DELETE FROM releases WHERE name <> ?1 AND name NOT IN
               (SELECT name FROM releases ORDER BY started_ms DESC LIMIT 1000)",
            params![self.release],
        )
        .map_err(map)?;
        tx.execute(
            "DELETE FROM events WHERE group_id NOT IN (SELECT id FROM groups)",
            [],
        )
        .map_err(map)?;
        tx.commit().map_err(map)?;
        let group = self
            .group(&event.fingerprint)?
            .map(|(g, _)| g)
            .ok_or_else(|| self.err(rusqlite::Error::QueryReturnedNoRows))?;
        Ok(Recorded { group, first })
    }

    /// All groups, the most recently seen first.
    ///
    /// # Errors
    ///
    /// When SQLite fails.
    pub fn groups(&self) -> Result<Vec<Group>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("{GROUP_COLUMNS} ORDER BY last_seen_ms DESC"))
            .map_err(|e| self.err(e))?;
        stmt.query_map([], group_row)
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }

    /// One group and its kept events, the latest first.
    ///
    /// # Errors
    ///
    /// When SQLite fails.
    pub fn group(&self, id: &str) -> Result<Option<(Group, Vec<ErrorEvent>)>, StoreError> {
        let group = self
            .conn
            .query_row(
                &format!("{GROUP_COLUMNS} WHERE id = ?1"),
                params![id],
                group_row,
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(group) = group else { return Ok(None) };
        let mut stmt = self
            .conn
            .prepare("SELECT body FROM events WHERE group_id = ?1 ORDER BY seq DESC")
            .map_err(|e| self.err(e))?;
        let events = stmt
            .query_map(params![id], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .filter_map(|b| b.ok().and_then(|b| serde_json::from_str(&b).ok()))
            .collect();
        Ok(Some((group, events)))
    }

    /// The number of kept events.
    ///
    /// # Errors
    ///
    /// When SQLite fails.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|e| self.err(e))
    }
}

const GROUP_COLUMNS: &str = "SELECT id, title, level, count, first_seen_ms, last_seen_ms,
  first_release, last_release, new_in_release, regression FROM groups";

fn group_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Group> {
    Ok(Group {
        id: r.get(0)?,
        title: r.get(1)?,
        level: r.get(2)?,
        count: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
        first_seen_ms: r.get(4)?,
        last_seen_ms: r.get(5)?,
        first_release: r.get(6)?,
        last_release: r.get(7)?,
        new_in_release: r.get(8)?,
        regression: r.get(9)?,
    })
}

/// The store as a capture output.
pub(crate) struct StoreOutput {
    pub(crate) store: LocalStore,
    pub(crate) reported: bool,
}

impl Output for StoreOutput {
    fn take(&mut self, event: &ErrorEvent, counters: &Counters) {
        use std::sync::atomic::Ordering;
        match self.store.record(event) {
            Ok(_) => _ = counters.stored.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                if !std::mem::replace(&mut self.reported, true) {
                    eprintln!(
                        "strata-capture: writing to the error store failed: {e}; further failures are only counted"
                    );
                }
            }
        }
    }

    fn flush(&mut self, _deadline: Instant) {
        // Every record is its own committed transaction.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(fingerprint: &str, at_ms: i64) -> ErrorEvent {
        serde_json::from_value(serde_json::json!({
            "event_id": format!("{at_ms:032x}"),
            "timestamp": "2026-11-25T00:00:00.000000Z",
            "unix_ms": at_ms,
            "level": "ERROR",
            "message": "order failed",
            "target": "shop::orders",
            "fingerprint": fingerprint,
        }))
        .unwrap()
    }

    fn releases(path: &Path) -> Vec<String> {
        let conn = Connection::open(path).unwrap();
        let mut stmt = conn
            .prepare("SELECT name FROM releases ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn read_only_reads_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("errors.db");
        let missing = LocalStore::open_read_only(&path).unwrap_err();
        assert!(missing.to_string().contains("errors.db"), "{missing}");
        assert!(!dir.path().join("sub").exists(), "no directory created");

        let t0 = 1_700_000_000_000;
        let mut writer = LocalStore::open_at(&path, "1.0", t0).unwrap();
        writer.record(&event("aaaa", t0 + 1)).unwrap();
        drop(writer);

        let mut reader = LocalStore::open_read_only(&path).unwrap();
        let groups = reader.groups().unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!((groups[0].id.as_str(), groups[0].count), ("aaaa", 1));
        let (_, events) = reader.group("aaaa").unwrap().unwrap();
        assert_eq!(events[0].unix_ms, t0 + 1);
        assert!(reader.record(&event("bbbb", t0 + 2)).is_err(), "read only");
        drop(reader);
        assert_eq!(releases(&path), ["1.0"], "no release recorded");

        // Read while a writer has it open (WAL), and see what it writes.
        let mut writer = LocalStore::open_at(&path, "1.0", t0).unwrap();
        let reader = LocalStore::open_read_only(&path).unwrap();
        writer.record(&event("aaaa", t0 + 3)).unwrap();
        assert_eq!(reader.groups().unwrap()[0].count, 2);

        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "not a database at all, only some words in a file").unwrap();
        assert!(LocalStore::open_read_only(&text).is_err());
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .unwrap();
        let e = LocalStore::open_read_only(&other).unwrap_err();
        assert!(e.to_string().contains("no such table"), "{e}");
    }
}
