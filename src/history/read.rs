//! Reading the ledger: runs and changes, typed as they were stored.

use super::{ChangeRecord, ChangeStatus, Ledger, LedgerError, RunMode, RunRecord, ScoreJson};
use rusqlite::params;

impl Ledger {
    // Every read is the handle's org's (`?9`, after the statement's own parameters): one
    // ledger holds every org's runs, and a command for one org sees only that org's.

    /// Runs that started and never finished (crash, kill -9, power loss).
    pub fn unfinished_runs(&self) -> Result<Vec<RunRecord>, LedgerError> {
        self.query_runs("WHERE finished_at IS NULL AND org = ?9 ORDER BY id", &[])
    }

    /// The most recent runs, newest first.
    pub fn recent_runs(&self, limit: usize) -> Result<Vec<RunRecord>, LedgerError> {
        self.query_runs(
            "WHERE org = ?9 ORDER BY id DESC LIMIT ?1",
            params![limit as i64],
        )
    }

    /// Every run, oldest first (export).
    pub fn all_runs(&self) -> Result<Vec<RunRecord>, LedgerError> {
        self.query_runs("WHERE org = ?9 ORDER BY id", &[])
    }

    pub fn run(&self, run_id: i64) -> Result<RunRecord, LedgerError> {
        self.query_runs("WHERE id = ?1 AND org = ?9", params![run_id])?
            .pop()
            .ok_or_else(|| {
                let org = if self.org == crate::config::DEFAULT_ORG {
                    String::new()
                } else {
                    format!(" of org `{}`", self.org)
                };
                LedgerError::NotFound(format!("no run {run_id}{org}"))
            })
    }

    /// The statement's own parameters (`?1`…), padded to `?8`, then the org as `?9`.
    fn params_with_org<'a>(
        &'a self,
        args: &[&'a dyn rusqlite::ToSql],
    ) -> Vec<&'a dyn rusqlite::ToSql> {
        const NULL: Option<i64> = None;
        let mut all: Vec<&dyn rusqlite::ToSql> = args.to_vec();
        while all.len() < 8 {
            all.push(&NULL);
        }
        all.push(&self.org);
        all
    }

    fn query_runs(
        &self,
        tail: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<RunRecord>, LedgerError> {
        self.with(|c| {
            let sql = format!("SELECT id, started_at, finished_at, mode, config_hash, outcome, summary, rollback_of, triggered_by FROM runs {tail}");
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(&self.params_with_org(args)[..], |r| {
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
        self.query_changes(
            "WHERE run_id = ?1 AND org = ?9 ORDER BY rowid",
            params![run_id],
        )
    }

    /// Changes waiting for review approval, oldest first.
    pub fn held_changes(&self) -> Result<Vec<ChangeRecord>, LedgerError> {
        // A dry run records what it *would* hold; no workitem was filed for it, so nothing
        // waits for a review.
        self.query_changes(
            "WHERE status = ?1 AND org = ?9 AND run_id NOT IN (SELECT id FROM runs WHERE mode = ?2) ORDER BY rowid",
            params![ChangeStatus::Held, RunMode::Plan],
        )
    }

    /// Every change, oldest first (export).
    pub fn all_changes(&self) -> Result<Vec<ChangeRecord>, LedgerError> {
        self.query_changes("WHERE org = ?9 ORDER BY rowid", &[])
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
            let rows = stmt.query_map(&self.params_with_org(args)[..], |r| {
                let score: Option<String> = r.get(9)?;
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
                    status: r.get(11)?,
                    correlation_id: r.get(12)?,
                    detail: r.get(13)?,
                    workitem_id: r.get(14)?,
                })
            })?;
            rows.collect()
        })
    }
}
