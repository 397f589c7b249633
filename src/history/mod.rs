//! The ledger: an embedded SQLite database (WAL) that accounts for every proficiency the
//! daemon plans and writes, so that each run can be listed, diffed and rolled back, and so
//! that a crash mid-apply is reconciled instead of repeated.
//!
//! Write-ahead: a run's whole plan is recorded (`planned`) before its first write; each
//! change is marked `applied` only after the API confirmed it. A run without `finished_at`
//! was interrupted; [`Ledger::unfinished_runs`] finds it for reconciliation.

pub mod commands;
pub mod reconcile;
mod schema;
pub mod writer_lock;

pub use reconcile::{reconcile_unfinished, ReconcileReport};

use crate::clock::Clock;
use rusqlite::{params, Connection};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Why the ledger could not be used. Without a working ledger nothing is written to the org.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("history database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("history database {path} was written by a newer skill-tuner (schema {found}, this build knows {known})")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// Not a SQLite database, or damaged: never guessed at, never silently replaced.
    #[error("history database {path} is corrupt or not a skill-tuner ledger ({detail}); move it aside to start a new history (keep the old file for audit)")]
    Corrupt { path: PathBuf, detail: String },
    /// Another process held the database past our busy timeout.
    #[error("history database {path} is locked by another process (waited {waited_ms} ms); is another skill-tuner running against the same file?")]
    Locked { path: PathBuf, waited_ms: u64 },
    /// Another process holds the ledger's daemon or write lock (or its file is unusable).
    #[error(transparent)]
    Lock(#[from] writer_lock::LockError),
    /// A run's lock file next to the database could not be used.
    #[error("history run lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("history: {0}")]
    NotFound(String),
    /// A ledger that would vanish with the process: runs would be applied to the org and then
    /// forgotten, so nothing could be listed, diffed or rolled back.
    #[error("`history.path` = `{path}` {why}; expected the path of a SQLite file on disk that outlives the process (e.g. `/var/lib/skill-tuner/skill-tuner.db`)")]
    NotDurable { path: PathBuf, why: String },
    /// Some other program's SQLite database: migrating it would write our tables into it.
    #[error("history database {path} is not a skill-tuner ledger ({detail}); refusing to use it, nothing was written to it. Point `history.path` at a new file or at an existing ledger")]
    NotALedger { path: PathBuf, detail: String },
    /// A reading command found no ledger at the path (it never creates one).
    #[error("history database {path} does not exist: nothing has been recorded at this path (check `history.path`)")]
    Missing { path: PathBuf },
    /// A reading command cannot upgrade an older ledger (that needs write access).
    #[error("history database {path} has schema {found}, this build reads {known}: run `plan` once with write access to upgrade it")]
    TooOld {
        path: PathBuf,
        found: i64,
        known: i64,
    },
}

/// How long a statement waits for another connection's lock before giving up. Long enough
/// for the daemon's short write transactions, short enough to fail a stuck start-up clearly.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Turns a SQLite error into the clearest [`LedgerError`] for it: corruption and locking
/// get their own variants, because an operator acts on them differently.
fn classify(path: &Path, busy_timeout: Duration, source: rusqlite::Error) -> LedgerError {
    use rusqlite::ffi::ErrorCode;
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => LedgerError::Corrupt {
            path: path.to_path_buf(),
            detail: source.to_string(),
        },
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => LedgerError::Locked {
            path: path.to_path_buf(),
            waited_ms: busy_timeout.as_millis() as u64,
        },
        _ => LedgerError::Sqlite {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// Status of one planned change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    /// Recorded before any write (dry runs stay here).
    Planned,
    /// The API confirmed the write.
    Applied,
    /// A person (or something else) changed the skill after our read: left alone.
    Conflict,
    /// The write failed.
    Failed,
    /// Not attempted (breaker, shutdown, or found not applied after a crash).
    Skipped,
    /// Over the alert threshold with hold-for-review: waits for its workitem's approval.
    Held,
    /// Its review workitem was closed as rejected.
    Rejected,
}

impl ChangeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeStatus::Planned => "planned",
            ChangeStatus::Applied => "applied",
            ChangeStatus::Conflict => "conflict",
            ChangeStatus::Failed => "failed",
            ChangeStatus::Skipped => "skipped",
            ChangeStatus::Held => "held",
            ChangeStatus::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "planned" => ChangeStatus::Planned,
            "applied" => ChangeStatus::Applied,
            "conflict" => ChangeStatus::Conflict,
            "failed" => ChangeStatus::Failed,
            "skipped" => ChangeStatus::Skipped,
            "held" => ChangeStatus::Held,
            "rejected" => ChangeStatus::Rejected,
            _ => return None,
        })
    }
}

/// A score with its components as compact JSON text, serialised as embedded JSON.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct ScoreJson(Box<serde_json::value::RawValue>);

impl ScoreJson {
    pub fn of<T: Serialize>(value: &T) -> Option<Self> {
        serde_json::value::to_raw_value(value).ok().map(ScoreJson)
    }

    pub fn parse(text: String) -> Option<Self> {
        serde_json::value::RawValue::from_string(text)
            .ok()
            .map(ScoreJson)
    }

    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for ScoreJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// One change as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeRecord {
    /// Deterministic id (also the workitem `externalTag`).
    pub change_id: String,
    pub run_id: i64,
    pub agent_id: String,
    pub agent_name: String,
    pub skill_id: String,
    pub skill_name: String,
    pub before: f64,
    pub after: f64,
    pub target: Option<f64>,
    /// The score and its components, as compact JSON text (kept raw: a parsed
    /// `serde_json::Value` per change costs kilobytes).
    pub score: Option<ScoreJson>,
    pub reason: String,
    pub status: ChangeStatus,
    pub correlation_id: Option<String>,
    pub detail: Option<String>,
    pub workitem_id: Option<String>,
}

/// One run as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub mode: String,
    pub config_hash: String,
    pub outcome: Option<String>,
    pub summary: Option<serde_json::Value>,
    /// For a rollback: the run it undid.
    pub rollback_of: Option<i64>,
    /// What started it (`schedule`, `startup`, `signal`, `http`, `once`, `plan`,
    /// `rollback`); `None` for daemon runs recorded before triggers were.
    pub trigger: Option<String>,
}

/// Why `path` cannot hold a ledger that outlives the process, judged from its text alone (so
/// config validation can use it too): empty, SQLite's `:memory:`, or a `file:` URI (in-memory
/// ones vanish, and the ledger's lock files need a plain path next to the database).
pub fn not_durable(path: &Path) -> Option<String> {
    let text = path.as_os_str().to_string_lossy();
    if text.trim().is_empty() {
        return Some("is empty (SQLite would use a temporary database deleted on close)".into());
    }
    if text == ":memory:" {
        return Some("is SQLite's in-memory database (gone when the process exits)".into());
    }
    if text
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("file:"))
    {
        let memory = text.contains(":memory:") || text.to_ascii_lowercase().contains("mode=memory");
        return Some(if memory {
            "is an in-memory SQLite URI (gone when the process exits)".into()
        } else {
            "is a SQLite URI; give a plain file path".into()
        });
    }
    None
}

/// [`not_durable`], plus what only the file system can tell: a directory.
fn check_durable(path: &Path) -> Result<(), LedgerError> {
    let why = not_durable(path).or_else(|| path.is_dir().then(|| "is a directory".to_string()));
    match why {
        Some(why) => Err(LedgerError::NotDurable {
            path: path.to_path_buf(),
            why,
        }),
        None => Ok(()),
    }
}

/// What an existing database holds, found by reading only (nothing is written before we know).
enum Contents {
    /// No tables yet: a new file, ours to create the schema in.
    Empty,
    /// A ledger at this schema version.
    Ledger(i64),
}

/// Reads (never writes) what the database at `path` holds; another program's database is a
/// [`LedgerError::NotALedger`] naming what was found instead.
fn identify(
    conn: &Connection,
    path: &Path,
    busy_timeout: Duration,
) -> Result<Contents, LedgerError> {
    let read = || -> rusqlite::Result<(i64, Vec<String>)> {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let mut stmt = conn.prepare(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY name",
        )?;
        let tables = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok((version, tables))
    };
    let (version, tables) = read().map_err(|e| classify(path, busy_timeout, e))?;
    let ours = ["changes", "runs"]
        .iter()
        .all(|t| tables.iter().any(|n| n == t));
    match (version, tables.is_empty(), ours) {
        (0, true, _) => Ok(Contents::Empty),
        (v, _, true) if v > 0 => Ok(Contents::Ledger(v)),
        _ => {
            let shown: Vec<&str> = tables.iter().take(8).map(String::as_str).collect();
            let more = if tables.len() > 8 { ", …" } else { "" };
            let held = if tables.is_empty() {
                "no tables".to_string()
            } else {
                format!("tables {}{more}", shown.join(", "))
            };
            Err(LedgerError::NotALedger {
                path: path.to_path_buf(),
                detail: format!("it holds {held} and schema version {version}, not the ledger's runs and changes"),
            })
        }
    }
}

/// A `file:` URI for `path` that SQLite opens read-only (or, `immutable`, without any lock or
/// shared-memory file). Every byte outside a small safe set is percent-encoded, so `?`, `#`
/// and `%` in a path stay part of the path.
fn read_only_uri(path: &Path, immutable: bool) -> String {
    let bytes = path.as_os_str().as_encoded_bytes();
    let mut uri = String::from("file:");
    if bytes.starts_with(b"/") {
        // An empty authority, so that `//host/...` paths are never read as a host.
        uri.push_str("//");
    }
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str(if immutable {
        "?mode=ro&immutable=1"
    } else {
        "?mode=ro"
    });
    uri
}

/// How a [`Ledger`] handle reaches its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    /// SQLite's `mode=ro`: reads only, alongside a running daemon.
    ReadOnly,
    /// SQLite's `immutable=1`: the WAL's shared-memory file could not be created (a read-only
    /// file system), so the main file is read without locks; a writer's uncheckpointed WAL
    /// pages are not seen.
    Immutable,
}

/// The ledger handle (one connection; SQLite serialises writers anyway).
pub struct Ledger {
    path: PathBuf,
    access: Access,
    busy_timeout: Duration,
    conn: Mutex<Connection>,
    /// Runs this handle began and has not finished, with their lock files (if file-backed).
    live: Mutex<HashMap<i64, Option<std::fs::File>>>,
    /// Where the recorded timestamps come from.
    clock: Clock,
    /// A daemon's claim on this ledger (see [`Ledger::open_for_daemon`]), released with it.
    daemon_lock: Option<writer_lock::LockGuard>,
}

/// Creates and exclusively locks a run's lock file.
fn lock_run_file(path: &Path) -> Result<std::fs::File, LedgerError> {
    let io = |source| LedgerError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(io(std::io::Error::other(
            "another process holds this run's lock",
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.path).finish()
    }
}

fn time_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl Ledger {
    /// Opens (creating and migrating) the database at `path`. Fails clearly on a corrupt,
    /// locked or newer database.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        Self::open_with_busy_timeout(path, DEFAULT_BUSY_TIMEOUT)
    }

    /// [`Ledger::open`] with another busy timeout (tests use a short one to see a lock
    /// reported quickly).
    pub fn open_with_busy_timeout(
        path: &Path,
        busy_timeout: Duration,
    ) -> Result<Self, LedgerError> {
        let err = |source| classify(path, busy_timeout, source);
        check_durable(path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        use rusqlite::OpenFlags;
        // No URI flag: the path is a path (URIs were refused above).
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(err)?;
        conn.busy_timeout(busy_timeout).map_err(err)?;
        // Another program's database is refused before anything (even the journal mode) is
        // written to it.
        identify(&conn, path, busy_timeout)?;
        // Touch the file now so corruption is found at open, not mid-cycle.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(err)?;
        if check != "ok" {
            return Err(LedgerError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("integrity check failed: {check}"),
            });
        }
        schema::migrate(&conn, path).map_err(|e| match e {
            LedgerError::Sqlite { source, .. } => err(source),
            other => other,
        })?;
        // Take and release the write lock once: a database another process keeps locked is
        // reported now, before any cycle starts, instead of after the first org write.
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")
            .map_err(err)?;
        Ok(Self {
            path: path.to_path_buf(),
            access: Access::ReadWrite,
            busy_timeout,
            conn: Mutex::new(conn),
            live: Mutex::default(),
            clock: Clock::system(),
            daemon_lock: None,
        })
    }

    /// Opens an existing ledger for reading only (`history`, `show`, `export`, `diff`): never
    /// creates, migrates or locks it for writing, so it works next to a running daemon and on
    /// a read-only file system. Where the WAL's shared-memory file cannot be created there, it
    /// falls back to SQLite's `immutable=1` and says so in the log.
    pub fn open_read_only(path: &Path) -> Result<Self, LedgerError> {
        let busy_timeout = DEFAULT_BUSY_TIMEOUT;
        let err = |source| classify(path, busy_timeout, source);
        check_durable(path)?;
        match std::fs::metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LedgerError::Missing {
                    path: path.to_path_buf(),
                })
            }
            Err(source) => {
                return Err(LedgerError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
        let open = |immutable: bool| -> rusqlite::Result<Connection> {
            use rusqlite::OpenFlags;
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = Connection::open_with_flags(read_only_uri(path, immutable), flags)?;
            conn.busy_timeout(busy_timeout)?;
            // The first read opens the WAL and its shared memory: fail here, not mid-command.
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(conn)
        };
        let (conn, access) = match open(false) {
            Ok(conn) => (conn, Access::ReadOnly),
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ffi::ErrorCode::CannotOpen | rusqlite::ffi::ErrorCode::ReadOnly)
                ) =>
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot open the history database's shared-memory file (read-only file system?); reading it as immutable: changes a running daemon has not yet checkpointed are not shown");
                (open(true).map_err(err)?, Access::Immutable)
            }
            Err(e) => return Err(err(e)),
        };
        let known = schema::KNOWN;
        match identify(&conn, path, busy_timeout)? {
            Contents::Ledger(v) if v == known => {}
            Contents::Ledger(v) if v > known => {
                return Err(LedgerError::TooNew {
                    path: path.to_path_buf(),
                    found: v,
                    known,
                })
            }
            Contents::Ledger(found) => {
                return Err(LedgerError::TooOld {
                    path: path.to_path_buf(),
                    found,
                    known,
                })
            }
            Contents::Empty => {
                return Err(LedgerError::NotALedger {
                    path: path.to_path_buf(),
                    detail: "an empty database: no run was ever recorded in it".into(),
                })
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            access,
            busy_timeout,
            conn: Mutex::new(conn),
            live: Mutex::default(),
            clock: Clock::system(),
            daemon_lock: None,
        })
    }

    /// [`Ledger::open`] for a daemon: first takes the ledger's daemon lock, which this handle
    /// keeps until dropped, so two daemons can never run cycles on one ledger. A lock held by
    /// another process is [`LedgerError::Lock`] naming it, before the ledger is touched.
    pub fn open_for_daemon(path: &Path, clock: &Clock) -> Result<Self, LedgerError> {
        check_durable(path)?;
        let lock = writer_lock::acquire(path, writer_lock::LockKind::Daemon, clock, "daemon")?;
        let mut ledger = Self::open(path)?.with_clock(clock.clone());
        ledger.daemon_lock = Some(lock);
        Ok(ledger)
    }

    /// Takes the ledger's write lock for `what` (`once`, `rollback of run #3`, …) without
    /// waiting: whoever writes to the org holds it for as long as it writes, so a rollback
    /// or `once` can never interleave with a daemon's cycle. `None` for an in-memory ledger,
    /// which no other process can see.
    pub fn lock_for_writing(
        &self,
        what: &str,
    ) -> Result<Option<writer_lock::LockGuard>, LedgerError> {
        if self.path == Path::new(":memory:") {
            return Ok(None);
        }
        Ok(Some(writer_lock::acquire(
            &self.path,
            writer_lock::LockKind::Write,
            &self.clock,
            what,
        )?))
    }

    /// How this handle reaches its database.
    pub fn access(&self) -> Access {
        self.access
    }

    /// An in-memory ledger (tests, `demo`).
    pub fn in_memory() -> Result<Self, LedgerError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| LedgerError::Sqlite {
            path: path.clone(),
            source,
        })?;
        schema::migrate(&conn, &path)?;
        Ok(Self {
            path,
            access: Access::ReadWrite,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            conn: Mutex::new(conn),
            live: Mutex::default(),
            clock: Clock::system(),
            daemon_lock: None,
        })
    }

    /// The same ledger, timestamping with `clock` (tests and simulations run at any date).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn now_text(&self) -> String {
        time_text(self.clock.now())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, LedgerError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|source| classify(&self.path, self.busy_timeout, source))
    }

    /// Starts a run; returns its id. A file-backed ledger also takes an exclusive lock on
    /// `<db>.run-<id>.lock` for as long as the run is open, before the row is visible to
    /// other processes: that is how [`Ledger::is_live`] tells a run in progress elsewhere
    /// (never to be reconciled under its feet) from one a crash left behind (the OS drops
    /// the lock when the process dies, even on kill -9).
    pub fn begin_run(
        &self,
        mode: &str,
        config_hash: &str,
        rollback_of: Option<i64>,
    ) -> Result<i64, LedgerError> {
        // The command-line modes are their own trigger; a daemon run names its own.
        let trigger = matches!(mode, "once" | "plan" | "rollback").then_some(mode);
        self.begin_run_inner(mode, trigger, config_hash, rollback_of)
    }

    /// [`Ledger::begin_run`], recording what started the run.
    pub fn begin_run_with_trigger(
        &self,
        mode: &str,
        trigger: &str,
        config_hash: &str,
        rollback_of: Option<i64>,
    ) -> Result<i64, LedgerError> {
        self.begin_run_inner(mode, Some(trigger), config_hash, rollback_of)
    }

    fn begin_run_inner(
        &self,
        mode: &str,
        trigger: Option<&str>,
        config_hash: &str,
        rollback_of: Option<i64>,
    ) -> Result<i64, LedgerError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let sql = |source| classify(&self.path, self.busy_timeout, source);
        let tx = conn.transaction().map_err(sql)?;
        tx.execute(
            "INSERT INTO runs (started_at, mode, config_hash, rollback_of, triggered_by) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![self.now_text(), mode, config_hash, rollback_of, trigger],
        )
        .map_err(sql)?;
        let run_id = tx.last_insert_rowid();
        let lock = match self.run_lock_path(run_id) {
            Some(path) => Some(lock_run_file(&path)?),
            None => None,
        };
        tx.commit().map_err(sql)?;
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run_id, lock);
        Ok(run_id)
    }

    /// Ends a run with its outcome and summary counts.
    pub fn finish_run(
        &self,
        run_id: i64,
        outcome: &str,
        summary: &serde_json::Value,
    ) -> Result<(), LedgerError> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET finished_at = ?2, outcome = ?3, summary = ?4 WHERE id = ?1",
                params![run_id, self.now_text(), outcome, summary.to_string()],
            )?;
            Ok(())
        })?;
        self.abandon_run(run_id);
        if let Some(path) = self.run_lock_path(run_id) {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }

    /// Gives up this handle's claim on an unfinished run (its lock), so that reconciliation —
    /// in this process or another — may settle it. Used when the ledger failed mid-run.
    pub fn abandon_run(&self, run_id: i64) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&run_id);
    }

    /// Whether an unfinished run is still in progress: begun by this handle, or by another
    /// process that holds its lock file. A crashed process holds nothing.
    pub fn is_live(&self, run_id: i64) -> Result<bool, LedgerError> {
        if self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&run_id)
        {
            return Ok(true);
        }
        let Some(path) = self.run_lock_path(run_id) else {
            return Ok(false);
        };
        let file = match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(LedgerError::Io { path, source }),
        };
        match file.try_lock() {
            Ok(()) => Ok(false),
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(source)) => Err(LedgerError::Io { path, source }),
        }
    }

    /// The lock file of a run (none for an in-memory ledger: only this handle sees it).
    fn run_lock_path(&self, run_id: i64) -> Option<PathBuf> {
        if self.path == Path::new(":memory:") {
            return None;
        }
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".run-{run_id}.lock"));
        Some(PathBuf::from(name))
    }

    /// Records a run's plan in one transaction (write-ahead of any API write).
    pub fn record_plan(&self, changes: &[ChangeRecord]) -> Result<(), LedgerError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut insert = tx.prepare(
                    "INSERT INTO changes (change_id, run_id, agent_id, agent_name, skill_id, skill_name, before, after, target, score, reason, status, correlation_id, detail, workitem_id, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                     ON CONFLICT (run_id, change_id) DO NOTHING",
                )?;
                let now = self.now_text();
                for ch in changes {
                    insert.execute(params![
                        ch.change_id,
                        ch.run_id,
                        ch.agent_id,
                        ch.agent_name,
                        ch.skill_id,
                        ch.skill_name,
                        ch.before,
                        ch.after,
                        ch.target,
                        ch.score.as_ref().map(|s| s.get()),
                        ch.reason,
                        ch.status.as_str(),
                        ch.correlation_id,
                        ch.detail,
                        ch.workitem_id,
                        now,
                    ])?;
                }
            }
            tx.commit()
        })
    }

    /// Sets the status of some of a run's changes (one transaction: one agent's write).
    pub fn mark(
        &self,
        run_id: i64,
        change_ids: &[&str],
        status: ChangeStatus,
        correlation_id: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), LedgerError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut update = tx.prepare(
                    "UPDATE changes SET status = ?3, correlation_id = COALESCE(?4, correlation_id), detail = COALESCE(?5, detail), updated_at = ?6
                     WHERE run_id = ?1 AND change_id = ?2",
                )?;
                let now = self.now_text();
                for id in change_ids {
                    update.execute(params![run_id, id, status.as_str(), correlation_id, detail, now])?;
                }
            }
            tx.commit()
        })
    }

    /// Remembers the workitems filed for changes, `(change_id, workitem_id)`, in one
    /// transaction: one commit (and one sync to disk) for a cycle's thousands of alerts,
    /// not one each.
    pub fn set_workitems(&self, run_id: i64, filed: &[(&str, &str)]) -> Result<(), LedgerError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut update = tx.prepare(
                    "UPDATE changes SET workitem_id = ?3 WHERE run_id = ?1 AND change_id = ?2",
                )?;
                for (change_id, workitem_id) in filed {
                    update.execute(params![run_id, change_id, workitem_id])?;
                }
            }
            tx.commit()
        })
    }

    /// Runs that started and never finished (crash, kill -9, power loss).
    pub fn unfinished_runs(&self) -> Result<Vec<RunRecord>, LedgerError> {
        self.query_runs("WHERE finished_at IS NULL ORDER BY id", params![])
    }

    /// The most recent runs, newest first.
    pub fn recent_runs(&self, limit: usize) -> Result<Vec<RunRecord>, LedgerError> {
        self.query_runs("ORDER BY id DESC LIMIT ?1", params![limit as i64])
    }

    /// Every run, oldest first (export).
    pub fn all_runs(&self) -> Result<Vec<RunRecord>, LedgerError> {
        self.query_runs("ORDER BY id", params![])
    }

    pub fn run(&self, run_id: i64) -> Result<RunRecord, LedgerError> {
        self.query_runs("WHERE id = ?1", params![run_id])?
            .pop()
            .ok_or_else(|| LedgerError::NotFound(format!("no run {run_id}")))
    }

    fn query_runs(
        &self,
        tail: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<RunRecord>, LedgerError> {
        self.with(|c| {
            let sql = format!("SELECT id, started_at, finished_at, mode, config_hash, outcome, summary, rollback_of, triggered_by FROM runs {tail}");
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(args, |r| {
                let summary: Option<String> = r.get(6)?;
                Ok(RunRecord {
                    id: r.get(0)?,
                    started_at: r.get(1)?,
                    finished_at: r.get(2)?,
                    mode: r.get(3)?,
                    config_hash: r.get(4)?,
                    outcome: r.get(5)?,
                    summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
                    rollback_of: r.get(7)?,
                    trigger: r.get(8)?,
                })
            })?;
            rows.collect()
        })
    }

    /// A run's changes, in plan order.
    pub fn changes(&self, run_id: i64) -> Result<Vec<ChangeRecord>, LedgerError> {
        self.query_changes("WHERE run_id = ?1 ORDER BY rowid", params![run_id])
    }

    /// Changes waiting for review approval, oldest first.
    pub fn held_changes(&self) -> Result<Vec<ChangeRecord>, LedgerError> {
        // A dry run records what it *would* hold; no workitem was filed for it, so nothing
        // waits for a review.
        self.query_changes(
            "WHERE status = 'held' AND run_id NOT IN (SELECT id FROM runs WHERE mode = 'plan') ORDER BY rowid",
            params![],
        )
    }

    /// Every change, oldest first (export).
    pub fn all_changes(&self) -> Result<Vec<ChangeRecord>, LedgerError> {
        self.query_changes("ORDER BY rowid", params![])
    }

    fn query_changes(
        &self,
        tail: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<ChangeRecord>, LedgerError> {
        self.with(|c| {
            let sql = format!(
                "SELECT change_id, run_id, agent_id, agent_name, skill_id, skill_name, before, after, target, score, reason, status, correlation_id, detail, workitem_id FROM changes {tail}"
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(args, |r| {
                let score: Option<String> = r.get(9)?;
                let status: String = r.get(11)?;
                Ok(ChangeRecord {
                    change_id: r.get(0)?,
                    run_id: r.get(1)?,
                    agent_id: r.get(2)?,
                    agent_name: r.get(3)?,
                    skill_id: r.get(4)?,
                    skill_name: r.get(5)?,
                    before: r.get(6)?,
                    after: r.get(7)?,
                    target: r.get(8)?,
                    score: score.and_then(ScoreJson::parse),
                    reason: r.get(10)?,
                    status: ChangeStatus::parse(&status).unwrap_or(ChangeStatus::Failed),
                    correlation_id: r.get(12)?,
                    detail: r.get(13)?,
                    workitem_id: r.get(14)?,
                })
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory per call: the tag, the process and a per-process sequence number.
    fn temp_db(tag: &str) -> PathBuf {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "skill-tuner-ledger-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("ledger.db")
    }

    #[test]
    fn a_run_is_live_while_its_owner_holds_it() {
        let path = temp_db("live");
        let owner = Ledger::open(&path).unwrap();
        let other = Ledger::open(&path).unwrap();
        let run = owner.begin_run("once", "h", None).unwrap();
        assert!(owner.is_live(run).unwrap());
        // Another handle (as another process would) sees the lock held.
        assert!(other.is_live(run).unwrap());
        owner.abandon_run(run);
        assert!(
            !other.is_live(run).unwrap(),
            "a dropped claim is a crashed run"
        );
        let run2 = owner.begin_run("once", "h", None).unwrap();
        owner
            .finish_run(run2, "ok", &serde_json::json!({}))
            .unwrap();
        assert!(!other.is_live(run2).unwrap());
        assert!(!owner.run_lock_path(run2).unwrap().exists());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_ledger_that_would_not_persist_is_refused() {
        let dir = temp_db("durable");
        let dir = dir.parent().unwrap();
        for path in [
            Path::new(""),
            Path::new(":memory:"),
            Path::new("file::memory:"),
            Path::new("file:ledger?mode=memory&cache=shared"),
            dir,
        ] {
            for result in [Ledger::open(path), Ledger::open_read_only(path)] {
                let err = result.unwrap_err();
                assert!(
                    matches!(err, LedgerError::NotDurable { .. }),
                    "{path:?}: {err:?}"
                );
                let text = err.to_string();
                assert!(
                    text.contains("`history.path`") && text.contains("outlives the process"),
                    "{text}"
                );
            }
        }
        assert!(Ledger::open(dir)
            .unwrap_err()
            .to_string()
            .contains("is a directory"));
        assert_eq!(
            not_durable(Path::new("/var/lib/skill-tuner/skill-tuner.db")),
            None
        );
        assert_eq!(not_durable(Path::new("skill-tuner.db")), None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn read_only_uris_keep_odd_paths_intact() {
        assert_eq!(
            read_only_uri(Path::new("/var/lib/st/a b?#%.db"), false),
            "file:///var/lib/st/a%20b%3F%23%25.db?mode=ro"
        );
        assert_eq!(
            read_only_uri(Path::new("rel.db"), true),
            "file:rel.db?mode=ro&immutable=1"
        );
    }

    #[test]
    fn a_read_only_handle_reads_and_cannot_write() {
        let path = temp_db("ro");
        {
            let ledger = Ledger::open(&path).unwrap();
            let run = ledger.begin_run("once", "h", None).unwrap();
            ledger
                .finish_run(run, "ok", &serde_json::json!({}))
                .unwrap();
        }
        let ro = Ledger::open_read_only(&path).unwrap();
        assert_eq!(ro.access(), Access::ReadOnly);
        assert_eq!(ro.recent_runs(5).unwrap().len(), 1);
        assert!(ro.begin_run("once", "h", None).is_err());
        assert_eq!(ro.recent_runs(5).unwrap().len(), 1);
        let missing = path.with_file_name("never-created.db");
        assert!(matches!(
            Ledger::open_read_only(&missing),
            Err(LedgerError::Missing { .. })
        ));
        assert!(
            !missing.exists(),
            "a reading command never creates a ledger"
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn without_a_shared_memory_file_a_read_only_handle_reads_immutable() {
        let path = temp_db("immutable");
        {
            let ledger = Ledger::open(&path).unwrap();
            let run = ledger.begin_run("once", "h", None).unwrap();
            ledger
                .finish_run(run, "ok", &serde_json::json!({}))
                .unwrap();
        }
        // A dangling symlink where the -shm file would go: it cannot be created, even by
        // root (for whom permission bits would not stop it) — as on a read-only mount.
        let shm = PathBuf::from(format!("{}-shm", path.display()));
        let _ = std::fs::remove_file(&shm);
        std::os::unix::fs::symlink("/nonexistent-skill-tuner-dir/shm", &shm).unwrap();
        let before = std::fs::read(&path).unwrap();
        let ro = Ledger::open_read_only(&path).unwrap();
        assert_eq!(ro.access(), Access::Immutable);
        assert_eq!(ro.recent_runs(5).unwrap().len(), 1);
        drop(ro);
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn in_memory_runs_are_live_only_for_their_handle() {
        let ledger = Ledger::in_memory().unwrap();
        let run = ledger.begin_run("once", "h", None).unwrap();
        assert!(ledger.is_live(run).unwrap());
        ledger.abandon_run(run);
        assert!(!ledger.is_live(run).unwrap());
    }
}
