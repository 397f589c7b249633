//! The ledger: an embedded SQLite database (WAL) that accounts for every proficiency the
//! daemon plans and writes, so that each run can be listed, diffed and rolled back, and so
//! that a crash mid-apply is reconciled instead of repeated.
//!
//! Write-ahead: a run's whole plan is recorded (`planned`) before its first write; each
//! change is marked `applied` only after the API confirmed it (a cycle commits the marks that
//! reconciliation would settle alike in groups; see `cycle::write`). A run without `finished_at`
//! was interrupted; [`Ledger::unfinished_runs`] finds it for reconciliation.

mod experiment;
mod open;
mod read;
pub mod reconcile;
mod records;
mod schema;
mod write;
pub mod writer_lock;

pub use experiment::{EffectDay, Pause, UnitArm};
pub use open::not_durable;
pub use reconcile::{reconcile_unfinished, ReconcileReport};
pub(crate) use records::change_id;
pub use records::{
    ChangeRecord, ChangeStatus, RunMode, RunOutcome, RunRecord, RunTrigger, ScoreJson, UnknownValue,
};
pub use write::Mark;

use crate::clock::Clock;
use rusqlite::Connection;
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
    /// A stored mode, trigger, outcome or status this build does not know: read as it is,
    /// it would be guessed at.
    #[error(
        "history database {path} holds an {source}; was it edited by hand or by another program?"
    )]
    UnknownValue {
        path: PathBuf,
        #[source]
        source: UnknownValue,
    },
}

/// How long a statement waits for another connection's lock before giving up. Long enough
/// for the daemon's short write transactions, short enough to fail a stuck start-up clearly.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Turns a SQLite error into the clearest [`LedgerError`] for it: corruption and locking
/// get their own variants, because an operator acts on them differently.
fn classify(path: &Path, busy_timeout: Duration, source: rusqlite::Error) -> LedgerError {
    use rusqlite::ffi::ErrorCode;
    if let rusqlite::Error::FromSqlConversionFailure(_, _, e) = &source {
        if let Some(unknown) = e.downcast_ref::<UnknownValue>() {
            return LedgerError::UnknownValue {
                path: path.to_path_buf(),
                source: unknown.clone(),
            };
        }
    }
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
    /// The org whose runs this handle records and reads: one ledger holds every org's, each
    /// run and change with its org.
    org: String,
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
    /// Takes the org's write lock on this ledger for `what` (`once`, `rollback of run #3`, …) without
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
        Ok(Some(writer_lock::acquire_for_org(
            &self.path,
            &self.org,
            writer_lock::LockKind::Write,
            &self.clock,
            what,
        )?))
    }

    /// How this handle reaches its database.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The same ledger, recording and reading `org`'s runs (by default
    /// [`DEFAULT_ORG`](crate::config::DEFAULT_ORG), the org of a config without `[[orgs]]`).
    pub fn with_org(mut self, org: &str) -> Self {
        self.org = org.to_string();
        self
    }

    /// The org this handle records and reads.
    pub fn org(&self) -> &str {
        &self.org
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
}

#[cfg(test)]
mod tests;
