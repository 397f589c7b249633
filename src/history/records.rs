//! What the ledger records: runs, their changes, and the typed values stored in them.
//!
//! Each stored enum has one table mapping its variants to the text on disk (and in JSON):
//! ledgers written by earlier builds keep reading the same, and a value this build does not
//! know is a clear [`UnknownValue`] error instead of a guess.

use serde::{Deserialize, Serialize};

/// A text in the ledger that names no known value (a damaged or hand-edited ledger).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}` (expected one of: {expected})")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

/// Declares an enum stored in the ledger as text: `as_str`, `parse`, `ALL`, `Display`,
/// serde and the SQLite conversions, all from the one table.
macro_rules! stored_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident as $what:literal {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The text stored for this value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// The value stored as `text`.
            pub fn parse(text: &str) -> Result<Self, UnknownValue> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    other => Err(UnknownValue {
                        what: $what,
                        value: other.to_string(),
                        expected: [$($text),+].join(", "),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;

            fn from_str(text: &str) -> Result<Self, UnknownValue> {
                Self::parse(text)
            }
        }

        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                Self::parse(value.as_str()?)
                    .map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

stored_enum! {
    /// Status of one planned change.
    pub enum ChangeStatus as "change status" {
        /// Recorded before any write (dry runs stay here).
        Planned = "planned",
        /// The API confirmed the write.
        Applied = "applied",
        /// A person (or something else) changed the skill after our read: left alone.
        Conflict = "conflict",
        /// The write failed.
        Failed = "failed",
        /// Not attempted (breaker, shutdown, or found not applied after a crash).
        Skipped = "skipped",
        /// Over the alert threshold with hold-for-review: waits for its workitem's approval.
        Held = "held",
        /// Its review workitem was closed as rejected.
        Rejected = "rejected",
    }
}

stored_enum! {
    /// What kind of run a run is.
    #[derive(Default)]
    pub enum RunMode as "run mode" {
        /// A dry run: planned and recorded, nothing written to the org. (The default: a mode
        /// nobody set writes nothing.)
        #[default]
        Plan = "plan",
        /// One real cycle from the command line.
        Once = "once",
        /// A cycle of the daemon.
        Scheduled = "scheduled",
        /// `skill-tuner rollback` of an earlier run.
        Rollback = "rollback",
    }
}

impl RunMode {
    /// The trigger of a mode that is its own trigger (the command-line ones); a daemon run
    /// names what started it.
    pub(crate) fn own_trigger(self) -> Option<RunTrigger> {
        match self {
            RunMode::Plan => Some(RunTrigger::Plan),
            RunMode::Once => Some(RunTrigger::Once),
            RunMode::Rollback => Some(RunTrigger::Rollback),
            RunMode::Scheduled => None,
        }
    }
}

stored_enum! {
    /// What started a run. The ledger records it, so an audit can tell a cron tick from a
    /// person's `POST /run`.
    pub enum RunTrigger as "run trigger" {
        /// A tick of `daemon.schedule`.
        Schedule = "schedule",
        /// `daemon.run_on_start`.
        Startup = "startup",
        /// SIGUSR1.
        Signal = "signal",
        /// `POST /run` on the admin listener.
        Http = "http",
        /// `skill-tuner once`.
        Once = "once",
        /// `skill-tuner plan`.
        Plan = "plan",
        /// `skill-tuner rollback`.
        Rollback = "rollback",
    }
}

stored_enum! {
    /// How a run (a cycle or a rollback) ended; the exit status follows from it
    /// (`ExitClass::of_outcome`).
    #[derive(Default)]
    pub enum RunOutcome as "run outcome" {
        /// Everything planned was settled and every alert went out.
        Ok = "ok",
        /// A dry run (`plan`, `rollback --dry-run`).
        DryRun = "dry_run",
        /// The blast-radius breaker stopped the cycle: nothing applied.
        Breaker = "breaker",
        /// Tuning is paused on harm (the experiment's sequential test): nothing applied
        /// until a person resumes.
        Paused = "paused",
        /// Some writes or alerts failed.
        Partial = "partial",
        /// The run could not do its work. (The default: a run is failed until a step says
        /// otherwise.)
        #[default]
        Failed = "failed",
        /// A shutdown stopped it, or a crash did and reconciliation closed it.
        Interrupted = "interrupted",
        /// A rollback of a run that applied nothing.
        NothingToDo = "nothing_to_do",
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

/// Our id for a change: the same inputs give the same id, so a retried or restarted cycle
/// recognises its own workitems (`externalTag`) and ledger rows.
pub(crate) fn change_id(
    agent_id: &str,
    skill_id: &str,
    before: f64,
    after: f64,
    interval: &str,
) -> String {
    let text = format!("{agent_id}|{skill_id}|{before:.4}|{after:.4}|{interval}");
    format!("st-{:016x}", crate::hash::fnv1a64(&text))
}

/// One change as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeRecord {
    /// Deterministic id (the same inputs give the same id; also the workitem `externalTag`).
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
    pub mode: RunMode,
    pub config_hash: String,
    pub outcome: Option<RunOutcome>,
    pub summary: Option<serde_json::Value>,
    /// For a rollback: the run it undid.
    pub rollback_of: Option<i64>,
    /// What started it; `None` for daemon runs recorded before triggers were.
    pub trigger: Option<RunTrigger>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_read_back_and_unknown_ones_are_named() {
        for status in ChangeStatus::ALL {
            assert_eq!(ChangeStatus::parse(status.as_str()), Ok(*status));
        }
        for mode in RunMode::ALL {
            assert_eq!(mode.as_str().parse::<RunMode>(), Ok(*mode));
        }
        assert_eq!(RunOutcome::DryRun.as_str(), "dry_run");
        assert_eq!(
            serde_json::to_value(RunOutcome::NothingToDo).unwrap(),
            "nothing_to_do"
        );
        let err = RunTrigger::parse("cron").unwrap_err();
        assert_eq!(err.what, "run trigger");
        assert!(err.to_string().contains("`cron`"), "{err}");
        assert!(err.to_string().contains("schedule, startup"), "{err}");
    }
}
