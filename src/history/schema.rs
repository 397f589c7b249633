//! Schema migrations, versioned in code (`PRAGMA user_version`). Each step runs once, in a
//! transaction; a database from a newer build is refused rather than guessed at.

use super::LedgerError;
use rusqlite::Connection;
use std::path::Path;

const MIGRATIONS: &[&str] = &[
    // 1: runs and their changes.
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        mode TEXT NOT NULL,
        config_hash TEXT NOT NULL,
        outcome TEXT,
        summary TEXT,
        rollback_of INTEGER REFERENCES runs(id)
     );
     CREATE TABLE changes (
        change_id TEXT NOT NULL,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        agent_id TEXT NOT NULL,
        agent_name TEXT NOT NULL,
        skill_id TEXT NOT NULL,
        skill_name TEXT NOT NULL,
        before REAL NOT NULL,
        after REAL NOT NULL,
        target REAL,
        score TEXT,
        reason TEXT NOT NULL,
        status TEXT NOT NULL,
        correlation_id TEXT,
        detail TEXT,
        workitem_id TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (run_id, change_id)
     );
     CREATE INDEX changes_by_status ON changes(status);
     CREATE INDEX changes_by_change_id ON changes(change_id);
     CREATE INDEX changes_by_agent_skill ON changes(agent_id, skill_id);",
    // 2: what started each run (schedule, startup, signal, http, once, plan, rollback). Older
    // runs of the CLI modes are known by their mode; an older daemon run's trigger was never
    // recorded and stays NULL rather than guessed.
    "ALTER TABLE runs ADD COLUMN triggered_by TEXT;
     UPDATE runs SET triggered_by = mode WHERE mode IN ('once', 'plan', 'rollback');",
    // 3: the org of every run and change (one ledger holds every org of a `[[orgs]]` config).
    // Runs recorded before were the one org of a config without `[[orgs]]`: `default`.
    "ALTER TABLE runs ADD COLUMN org TEXT NOT NULL DEFAULT 'default';
     ALTER TABLE changes ADD COLUMN org TEXT NOT NULL DEFAULT 'default';
     CREATE INDEX runs_by_org ON runs(org, id);",
    // 4: the holdout experiment: each unit's arm (with the settings' fingerprints), the
    // effect estimated each day, and pauses on harm with who resumed them — each
    // per org.
    "CREATE TABLE experiment_units (
        org TEXT NOT NULL DEFAULT 'default',
        salt TEXT NOT NULL,
        unit_id TEXT NOT NULL,
        unit_name TEXT NOT NULL,
        arm TEXT NOT NULL,
        design TEXT NOT NULL,
        experiment_fingerprint TEXT NOT NULL,
        config_hash TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        PRIMARY KEY (org, salt, unit_id)
     );
     CREATE TABLE effect_days (
        org TEXT NOT NULL DEFAULT 'default',
        salt TEXT NOT NULL,
        day TEXT NOT NULL,
        run_id INTEGER REFERENCES runs(id),
        report TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        PRIMARY KEY (org, salt, day)
     );
     CREATE TABLE pauses (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        org TEXT NOT NULL DEFAULT 'default',
        paused_at TEXT NOT NULL,
        run_id INTEGER REFERENCES runs(id),
        metric TEXT NOT NULL,
        reason TEXT NOT NULL,
        resumed_at TEXT,
        resumed_by TEXT
     );",
];

/// The schema version this build creates and reads.
pub const KNOWN: i64 = MIGRATIONS.len() as i64;

pub fn migrate(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    let err = |source| LedgerError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    let known = KNOWN;
    if version > known {
        return Err(LedgerError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let step = i as i64 + 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {step}; COMMIT;"
        ))
        .map_err(err)?;
    }
    Ok(())
}
