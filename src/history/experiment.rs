//! The experiment's part of the ledger: which units are held out (recorded once per salt,
//! with the fingerprints of the settings that drew them), the effect estimated each day (for
//! reports over time), and pauses on harm until a person resumes.

use super::{Ledger, LedgerError};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// One unit's arm as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitArm {
    pub salt: String,
    pub unit_id: String,
    pub unit_name: String,
    /// `tuned` or `held_out`.
    pub arm: String,
    pub design: String,
    pub experiment_fingerprint: String,
    pub config_hash: String,
    pub recorded_at: String,
}

/// One day's recorded estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectDay {
    pub salt: String,
    pub day: String,
    pub run_id: Option<i64>,
    /// The [`crate::experiment::EffectReport`] as JSON.
    pub report: serde_json::Value,
    pub recorded_at: String,
}

/// A pause on harm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pause {
    pub id: i64,
    pub paused_at: String,
    pub run_id: Option<i64>,
    pub metric: String,
    pub reason: String,
    pub resumed_at: Option<String>,
    pub resumed_by: Option<String>,
}

impl Ledger {
    /// Records each unit's arm under `salt`; a unit already recorded keeps its first row (the
    /// assignment is stable, so a later row could only repeat it).
    pub fn record_assignment(&self, salt: &str, units: &[UnitArm]) -> Result<(), LedgerError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut insert = tx.prepare(
                    "INSERT INTO experiment_units (salt, unit_id, unit_name, arm, design, experiment_fingerprint, config_hash, recorded_at, org)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (org, salt, unit_id) DO NOTHING",
                )?;
                let now = self.now_text();
                for u in units {
                    insert.execute(params![
                        salt,
                        u.unit_id,
                        u.unit_name,
                        u.arm,
                        u.design,
                        u.experiment_fingerprint,
                        u.config_hash,
                        now,
                        self.org()
                    ])?;
                }
            }
            tx.commit()
        })
    }

    /// Every recorded unit, by salt, held out first, then by name.
    pub fn assignments(&self) -> Result<Vec<UnitArm>, LedgerError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT salt, unit_id, unit_name, arm, design, experiment_fingerprint, config_hash, recorded_at
                 FROM experiment_units WHERE org = ?1 ORDER BY salt, arm = 'tuned', unit_name",
            )?;
            let rows = stmt.query_map(params![self.org()], |r| {
                Ok(UnitArm {
                    salt: r.get(0)?,
                    unit_id: r.get(1)?,
                    unit_name: r.get(2)?,
                    arm: r.get(3)?,
                    design: r.get(4)?,
                    experiment_fingerprint: r.get(5)?,
                    config_hash: r.get(6)?,
                    recorded_at: r.get(7)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Records (or replaces) the estimate of `day`.
    pub fn record_effect_day(
        &self,
        salt: &str,
        day: &str,
        run_id: Option<i64>,
        report: &serde_json::Value,
    ) -> Result<(), LedgerError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO effect_days (salt, day, run_id, report, recorded_at, org) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (org, salt, day) DO UPDATE SET run_id = ?3, report = ?4, recorded_at = ?5",
                params![salt, day, run_id, report.to_string(), self.now_text(), self.org()],
            )?;
            Ok(())
        })
    }

    /// The recorded estimates, oldest day first.
    pub fn effect_days(&self) -> Result<Vec<EffectDay>, LedgerError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT salt, day, run_id, report, recorded_at FROM effect_days WHERE org = ?1 ORDER BY day, salt",
            )?;
            let rows = stmt.query_map(params![self.org()], |r| {
                let report: String = r.get(3)?;
                Ok(EffectDay {
                    salt: r.get(0)?,
                    day: r.get(1)?,
                    run_id: r.get(2)?,
                    report: serde_json::from_str(&report).unwrap_or(serde_json::Value::Null),
                    recorded_at: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Pauses tuning: until [`Ledger::resume`], cycles apply nothing.
    pub fn pause(
        &self,
        run_id: Option<i64>,
        metric: &str,
        reason: &str,
    ) -> Result<Pause, LedgerError> {
        let now = self.now_text();
        let id = self.with(|c| {
            c.execute(
                "INSERT INTO pauses (paused_at, run_id, metric, reason, org) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![now, run_id, metric, reason, self.org()],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        Ok(Pause {
            id,
            paused_at: now,
            run_id,
            metric: metric.to_string(),
            reason: reason.to_string(),
            resumed_at: None,
            resumed_by: None,
        })
    }

    /// The pause in force, if any (the latest not resumed).
    pub fn active_pause(&self) -> Result<Option<Pause>, LedgerError> {
        Ok(self
            .pauses_where("AND resumed_at IS NULL ORDER BY id DESC LIMIT 1")?
            .pop())
    }

    /// Every pause, oldest first.
    pub fn pauses(&self) -> Result<Vec<Pause>, LedgerError> {
        self.pauses_where("ORDER BY id")
    }

    fn pauses_where(&self, tail: &str) -> Result<Vec<Pause>, LedgerError> {
        self.with(|c| {
            let sql = format!(
                "SELECT id, paused_at, run_id, metric, reason, resumed_at, resumed_by FROM pauses WHERE org = ?1 {tail}"
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(params![self.org()], |r| {
                Ok(Pause {
                    id: r.get(0)?,
                    paused_at: r.get(1)?,
                    run_id: r.get(2)?,
                    metric: r.get(3)?,
                    reason: r.get(4)?,
                    resumed_at: r.get(5)?,
                    resumed_by: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Ends every pause in force, naming who resumed; returns the pauses it ended.
    pub fn resume(&self, by: &str) -> Result<Vec<Pause>, LedgerError> {
        let open = self.pauses_where("AND resumed_at IS NULL ORDER BY id")?;
        let now = self.now_text();
        self.with(|c| {
            c.execute(
                "UPDATE pauses SET resumed_at = ?1, resumed_by = ?2 WHERE resumed_at IS NULL AND org = ?3",
                params![now, by, self.org()],
            )?;
            Ok(())
        })?;
        Ok(open)
    }

    /// Whether `salt`'s assignment was recorded (cheap check before recording again).
    pub fn has_assignment(&self, salt: &str) -> Result<bool, LedgerError> {
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM experiment_units WHERE salt = ?1 AND org = ?2 LIMIT 1",
                params![salt, self.org()],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_is_recorded_until_resumed_and_days_replace_their_estimate() {
        let ledger = Ledger::in_memory().unwrap();
        assert!(ledger.active_pause().unwrap().is_none());
        let p = ledger.pause(None, "csat", "worse by 3 points").unwrap();
        assert_eq!(ledger.active_pause().unwrap().map(|a| a.id), Some(p.id));
        let ended = ledger.resume("ops").unwrap();
        assert_eq!(ended.len(), 1);
        assert!(ledger.active_pause().unwrap().is_none());
        assert!(ledger.resume("ops").unwrap().is_empty());
        let all = ledger.pauses().unwrap();
        assert_eq!(all[0].resumed_by.as_deref(), Some("ops"));

        let day = |v: i64| serde_json::json!({ "days": v });
        ledger
            .record_effect_day("s", "2027-03-02", None, &day(1))
            .unwrap();
        ledger
            .record_effect_day("s", "2027-03-02", None, &day(2))
            .unwrap();
        ledger
            .record_effect_day("s", "2027-03-03", None, &day(3))
            .unwrap();
        let days = ledger.effect_days().unwrap();
        assert_eq!(days.len(), 2);
        assert_eq!(days[0].report["days"], 2);
    }
}
