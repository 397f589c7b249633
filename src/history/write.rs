//! Writing to the ledger: runs begun and finished (with their lock files), plans recorded
//! write-ahead, changes marked as the API answers.

use super::{
    classify, ChangeRecord, ChangeStatus, Ledger, LedgerError, RunMode, RunOutcome, RunTrigger,
};
use rusqlite::params;
use std::path::{Path, PathBuf};

/// One change's new status, as [`Ledger::mark_each`] records it. `None` keeps what the row
/// already says.
#[derive(Debug, Clone, Copy)]
pub struct Mark<'a> {
    pub run_id: i64,
    pub change_id: &'a str,
    pub status: ChangeStatus,
    pub correlation_id: Option<&'a str>,
    pub detail: Option<&'a str>,
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

impl Ledger {
    /// Starts a run; returns its id. A file-backed ledger also takes an exclusive lock on
    /// `<db>.run-<id>.lock` for as long as the run is open, before the row is visible to
    /// other processes: that is how [`Ledger::is_live`] tells a run in progress elsewhere
    /// (never to be reconciled under its feet) from one a crash left behind (the OS drops
    /// the lock when the process dies, even on kill -9).
    pub fn begin_run(
        &self,
        mode: RunMode,
        config_hash: &str,
        rollback_of: Option<i64>,
    ) -> Result<i64, LedgerError> {
        // The command-line modes are their own trigger; a daemon run names its own.
        self.begin_run_inner(mode, mode.own_trigger(), config_hash, rollback_of)
    }

    /// [`Ledger::begin_run`], recording what started the run.
    pub(crate) fn begin_run_with_trigger(
        &self,
        mode: RunMode,
        trigger: RunTrigger,
        config_hash: &str,
        rollback_of: Option<i64>,
    ) -> Result<i64, LedgerError> {
        self.begin_run_inner(mode, Some(trigger), config_hash, rollback_of)
    }

    fn begin_run_inner(
        &self,
        mode: RunMode,
        trigger: Option<RunTrigger>,
        config_hash: &str,
        rollback_of: Option<i64>,
    ) -> Result<i64, LedgerError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let sql = |source| classify(&self.path, self.busy_timeout, source);
        let tx = conn.transaction().map_err(sql)?;
        tx.execute(
            "INSERT INTO runs (started_at, mode, config_hash, rollback_of, triggered_by, org) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![self.now_text(), mode, config_hash, rollback_of, trigger, self.org],
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
    pub(crate) fn finish_run(
        &self,
        run_id: i64,
        outcome: RunOutcome,
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
    pub(super) fn run_lock_path(&self, run_id: i64) -> Option<PathBuf> {
        if self.path == Path::new(":memory:") {
            return None;
        }
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".run-{run_id}.lock"));
        Some(PathBuf::from(name))
    }

    /// Records a run's plan in one transaction (write-ahead of any API write).
    pub fn record_plan<'a>(
        &self,
        changes: impl IntoIterator<Item = &'a ChangeRecord>,
    ) -> Result<(), LedgerError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut insert = tx.prepare(
                    "INSERT INTO changes (change_id, run_id, agent_id, agent_name, skill_id, skill_name, before, after, target, score, reason, status, correlation_id, detail, workitem_id, updated_at, org)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
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
                        ch.status,
                        ch.correlation_id,
                        ch.detail,
                        ch.workitem_id,
                        now,
                        self.org,
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
        let marks: Vec<Mark<'_>> = change_ids
            .iter()
            .map(|&change_id| Mark {
                run_id,
                change_id,
                status,
                correlation_id,
                detail,
            })
            .collect();
        self.mark_each(&marks)
    }

    /// Records many outcomes in one transaction: one commit, so one sync to disk, however
    /// many agents they concern. That is what lets a cycle over 100 000 agents keep pace
    /// with the API; [`crate::cycle`] batches only the outcomes reconciliation would record
    /// alike after a crash (see [`super::reconcile`]).
    pub fn mark_each(&self, marks: &[Mark<'_>]) -> Result<(), LedgerError> {
        if marks.is_empty() {
            return Ok(());
        }
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut update = tx.prepare_cached(
                    "UPDATE changes SET status = ?3, correlation_id = COALESCE(?4, correlation_id), detail = COALESCE(?5, detail), updated_at = ?6
                     WHERE run_id = ?1 AND change_id = ?2",
                )?;
                let now = self.now_text();
                for m in marks {
                    update.execute(params![
                        m.run_id,
                        m.change_id,
                        m.status,
                        m.correlation_id,
                        m.detail,
                        now
                    ])?;
                }
            }
            tx.commit()
        })
    }

    /// Remembers the workitems filed for changes, `(change_id, workitem_id)`, in one
    /// transaction: one commit (and one sync to disk) for a cycle's thousands of alerts,
    /// not one each.
    pub(crate) fn set_workitems(
        &self,
        run_id: i64,
        filed: &[(String, String)],
    ) -> Result<(), LedgerError> {
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
}
