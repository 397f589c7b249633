//! Opening a ledger: for writing (creating and migrating it), read-only beside a running
//! daemon, for a daemon (with its lock), or in memory — and refusing anything that would not
//! outlive the process or is not a ledger at all.

use super::{classify, schema, writer_lock, Access, Ledger, LedgerError, DEFAULT_BUSY_TIMEOUT};
use crate::clock::Clock;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

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
pub(super) fn read_only_uri(path: &Path, immutable: bool) -> String {
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
            org: crate::config::DEFAULT_ORG.to_string(),
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
            org: crate::config::DEFAULT_ORG.to_string(),
        })
    }

    /// [`Ledger::open`] for a daemon running `org`'s cycles: first takes the org's daemon
    /// lock, which this handle keeps until dropped, so two daemons can never run one org's
    /// cycles on one ledger. A lock held by another process is [`LedgerError::Lock`] naming
    /// it, before the ledger is touched.
    pub fn open_for_daemon(path: &Path, org: &str, clock: &Clock) -> Result<Self, LedgerError> {
        check_durable(path)?;
        let lock = writer_lock::acquire_for_org(
            path,
            org,
            writer_lock::LockKind::Daemon,
            clock,
            "daemon",
        )?;
        let mut ledger = Self::open(path)?.with_clock(clock.clone()).with_org(org);
        ledger.daemon_lock = Some(lock);
        Ok(ledger)
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
            org: crate::config::DEFAULT_ORG.to_string(),
        })
    }
}
