//! The one write path. Everything skill-tuner writes to the org — a cycle's plan, changes
//! approved in review, a rollback — goes through [`WritePath::write_batch`]: one bulk write
//! per agent, never overwriting a person's edit, each outcome marked in the ledger as soon as
//! the API answered.
//!
//! The API has no version or ETag on routing skills (`docs/genesys-api.md` §5), so the
//! protection is ours: right before writing an agent we re-read its skills and compare each
//! with the value the change was computed against. A skill a person changed is left alone (a
//! `conflict`), or, for a cycle's own plan and when configured, re-planned from the person's
//! value. On a 409 we re-read and re-decide (bounded) instead of resending the same body.

use super::plan::{decide, Decision};
use super::StopSignal;
use crate::config::{ApplySettings, OnConflict, SkillPolicy};
use crate::genesys::models::UserRoutingSkillPost;
use crate::genesys::{ApiError, GenesysClient};
use crate::history::{ChangeStatus, Ledger, LedgerError, Mark};
use crate::org::same;
use futures_util::stream::{self, StreamExt};
use std::collections::{BTreeMap, HashMap};

/// Whose writes a batch holds. It decides how strictly a skill found changed is treated and
/// how each outcome reads in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A cycle's plan, under `apply.*` (which may re-plan from a person's value).
    Plan,
    /// Changes approved in review: the approved value or nothing.
    Review,
    /// A rollback of run `of`: the value it replaced or nothing.
    Rollback { of: i64 },
}

/// How to re-plan a change from a person's value (`apply.on_conflict = "replan"`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Replan<'a> {
    pub target: f64,
    pub policy: &'a SkillPolicy,
}

/// One skill to write, and the ledger row its outcome settles.
#[derive(Debug, Clone)]
pub(crate) struct WriteItem<'a> {
    pub run_id: i64,
    pub change_id: &'a str,
    pub agent_id: &'a str,
    pub skill_id: &'a str,
    /// The value the change was computed against.
    pub before: f64,
    pub after: f64,
    /// Whether the agent lacks the skill and this write adds it (`add_missing_skills`).
    pub adds_skill: bool,
    /// Only a cycle's own changes can be re-planned.
    pub replan: Option<Replan<'a>>,
}

/// What happened to one skill.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// The API confirmed `value` (it may differ from the plan after a re-plan).
    Applied {
        value: f64,
        correlation_id: Option<String>,
    },
    /// A person's value was found and left alone.
    Conflict { found: Option<f64> },
    Failed {
        error: String,
        correlation_id: Option<String>,
    },
    /// Not written: the process is stopping, and no request of this agent's write reached
    /// the server (it was waiting on pacing, a `Retry-After` or a backoff).
    NotSent { reason: String },
    /// Not attempted: a stop was requested before this agent's write began.
    Stopped,
    /// Refused: the skill is held out by the running experiment, and no write may touch it.
    HeldOut,
}

impl Outcome {
    fn correlation_id(&self) -> Option<&str> {
        match self {
            Outcome::Applied { correlation_id, .. } | Outcome::Failed { correlation_id, .. } => {
                correlation_id.as_deref()
            }
            _ => None,
        }
    }
}

/// How the ledger words a write refused because the skill is held out.
pub(crate) const HELD_OUT: &str = "held out by the experiment: never written while it runs";

/// How a rollback words a skill it leaves alone (in the ledger and in its report).
pub(crate) fn changed_since(run_id: i64, now: Option<f64>) -> String {
    format!(
        "changed since run #{run_id} (now {}); left alone",
        now.map_or("no such skill".into(), |v| format!("{v:.2}"))
    )
}

impl Purpose {
    /// The ledger status and detail `outcome` is recorded with; `None` leaves the row as it
    /// is.
    fn record(self, outcome: &Outcome) -> Option<(ChangeStatus, String)> {
        use ChangeStatus as S;
        let stopped = "shutdown requested before this agent's write";
        Some(match (self, outcome) {
            (_, Outcome::Failed { error, .. }) => (S::Failed, error.clone()),
            (_, Outcome::HeldOut) => (S::Skipped, HELD_OUT.into()),
            (Purpose::Plan, Outcome::Applied { value, .. }) => {
                (S::Applied, format!("applied {value:.2}"))
            }
            (Purpose::Plan, Outcome::Conflict { found }) => (
                S::Conflict,
                format!(
                    "a person set {} since our read; left alone",
                    found.map_or("nothing".into(), |f| format!("{f:.2}"))
                ),
            ),
            (Purpose::Plan, Outcome::NotSent { reason }) => {
                (S::Skipped, format!("shutdown: not written ({reason})"))
            }
            (Purpose::Plan, Outcome::Stopped) => (S::Skipped, stopped.into()),
            (Purpose::Review, Outcome::Applied { .. }) => {
                (S::Applied, "approved in review; applied".into())
            }
            (Purpose::Review, Outcome::Conflict { .. }) => (
                S::Conflict,
                "approved, but a person changed the skill since; left alone".into(),
            ),
            // Stopping: the approved change stays held for the next cycle.
            (Purpose::Review, Outcome::NotSent { .. } | Outcome::Stopped) => return None,
            (Purpose::Rollback { .. }, Outcome::Applied { value, .. }) => {
                (S::Applied, format!("restored {value:.2}"))
            }
            (Purpose::Rollback { of }, Outcome::Conflict { found }) => {
                (S::Conflict, changed_since(of, *found))
            }
            (Purpose::Rollback { .. }, Outcome::NotSent { reason }) => (S::Failed, reason.clone()),
            (Purpose::Rollback { .. }, Outcome::Stopped) => (S::Failed, stopped.into()),
        })
    }
}

/// One write's outcome, and what the ledger now says of it.
#[derive(Debug)]
pub(crate) struct Written<'i> {
    pub item: &'i WriteItem<'i>,
    pub outcome: Outcome,
    /// `None`: the ledger row was left as it was.
    pub recorded: Option<(ChangeStatus, String)>,
}

/// What every write goes through: the org, the ledger that accounts for it, and how.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WritePath<'a> {
    pub client: &'a GenesysClient,
    pub ledger: &'a Ledger,
    pub apply: &'a ApplySettings,
    /// Agents written at once (`genesys.max_concurrency`).
    pub concurrency: usize,
    /// The running experiment's assignment: its held-out skills are refused here, whatever
    /// asked for the write, so no path around the plan can change them.
    pub held_out: Option<&'a crate::experiment::Assignment>,
}

impl WritePath<'_> {
    /// Writes `items`, one bulk write per agent, concurrently within the client's limits, and
    /// marks each in the ledger as soon as its agent's write answered. One agent's failure
    /// never stops the others; once `stop` is requested no further agent is started.
    pub(crate) async fn write_batch<'i>(
        &self,
        purpose: Purpose,
        items: &'i [WriteItem<'i>],
        stop: &StopSignal,
    ) -> Result<Vec<Written<'i>>, LedgerError> {
        // An approval or a rollback is for exactly one value: re-read always, and a person's
        // edit since is left alone, never re-planned, whatever `apply.*` says.
        let strict;
        let apply = match purpose {
            Purpose::Plan => self.apply,
            Purpose::Review | Purpose::Rollback { .. } => {
                strict = ApplySettings {
                    verify_before_write: true,
                    on_conflict: OnConflict::Skip,
                    ..self.apply.clone()
                };
                &strict
            }
        };
        let mut by_agent: BTreeMap<&str, Vec<&WriteItem>> = BTreeMap::new();
        let mut refused: Vec<&WriteItem> = Vec::new();
        for item in items {
            if self.held_out.is_some_and(|a| a.is_held_out(item.skill_id)) {
                refused.push(item);
            } else {
                by_agent.entry(item.agent_id).or_default().push(item);
            }
        }
        let mut written = Vec::with_capacity(items.len());
        let mut marks = PendingMarks::new(purpose);
        for item in refused {
            tracing::warn!(
                agent = item.agent_id,
                skill = item.skill_id,
                "refused a write to a held-out skill"
            );
            let recorded = marks.record(self.ledger, item, &Outcome::HeldOut)?;
            written.push(Written {
                item,
                outcome: Outcome::HeldOut,
                recorded,
            });
        }
        let client = self.client;
        let mut writes = stream::iter(by_agent)
            .map(|(agent_id, items)| async move {
                if stop.is_requested() {
                    return items.into_iter().map(|i| (i, Outcome::Stopped)).collect();
                }
                write_agent(client, apply, agent_id, &items).await
            })
            .buffer_unordered(self.concurrency.max(1));
        loop {
            let next = match marks.due_at() {
                Some(at) => match tokio::time::timeout_at(at, writes.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        marks.flush(self.ledger)?;
                        continue;
                    }
                },
                None => writes.next().await,
            };
            let Some(outcomes) = next else { break };
            for (item, outcome) in outcomes {
                if let Outcome::Failed { error, .. } = &outcome {
                    tracing::warn!(agent = item.agent_id, %error, "write failed");
                }
                let recorded = marks.record(self.ledger, item, &outcome)?;
                written.push(Written {
                    item,
                    outcome,
                    recorded,
                });
            }
        }
        marks.flush(self.ledger)?;
        Ok(written)
    }
}

/// Whether reconciliation, reading the org after a crash, would record `outcome` of `item`
/// as it is: a write of the planned value (the org holds `after`: `applied`) or no write at
/// all (the org holds `before`: `skipped`).
fn reconcilable(item: &WriteItem<'_>, outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Applied { value, .. } => same(*value, item.after),
        Outcome::Stopped | Outcome::NotSent { .. } => true,
        Outcome::Conflict { .. } | Outcome::Failed { .. } | Outcome::HeldOut => false,
    }
}

/// Outcomes answered by the API but not yet in the ledger.
///
/// A cycle's own writes are recorded in groups: one commit (one sync to disk) per
/// [`MARK_BATCH`] outcomes or [`MARK_DELAY`], whichever comes first, instead of one per
/// agent, which at 100 000 agents cost more wall time than the API's rate limit. Only
/// outcomes that reconciliation would record the same way wait: a plan's rows are recorded
/// `planned` before the first write and its run stays unfinished until its end, so a crash
/// that loses those marks leaves the rows `planned`, and reconciliation, reading the org,
/// finds the planned value (`applied`) or the value the plan started from (`skipped`, as a
/// write stopped at shutdown is). Every other outcome — a conflict, a failure, a value
/// re-planned from a person's edit — is committed at once, with those waiting: the org
/// alone could not tell it. Approvals concern rows of closed runs, which reconciliation
/// never revisits, and rollbacks are few, so both are committed one by one.
struct PendingMarks<'i> {
    purpose: Purpose,
    marks: Vec<PendingMark<'i>>,
    /// When the oldest unflushed outcome must be on disk.
    due: Option<tokio::time::Instant>,
}

struct PendingMark<'i> {
    run_id: i64,
    change_id: &'i str,
    status: ChangeStatus,
    correlation_id: Option<String>,
    detail: String,
}

/// Most outcomes recorded in one commit.
const MARK_BATCH: usize = 256;
/// Longest an answered outcome waits for its commit.
const MARK_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

impl<'i> PendingMarks<'i> {
    fn new(purpose: Purpose) -> Self {
        PendingMarks {
            purpose,
            marks: Vec::new(),
            due: None,
        }
    }

    fn due_at(&self) -> Option<tokio::time::Instant> {
        self.due
    }

    /// Records `item`'s `outcome` as its purpose words it (some outcomes leave the row as
    /// it is); returns what was recorded.
    fn record(
        &mut self,
        ledger: &Ledger,
        item: &'i WriteItem<'i>,
        outcome: &Outcome,
    ) -> Result<Option<(ChangeStatus, String)>, LedgerError> {
        let recorded = self.purpose.record(outcome);
        if let Some((status, detail)) = &recorded {
            self.push(
                ledger,
                reconcilable(item, outcome),
                PendingMark {
                    run_id: item.run_id,
                    change_id: item.change_id,
                    status: *status,
                    correlation_id: outcome.correlation_id().map(String::from),
                    detail: detail.clone(),
                },
            )?;
        }
        Ok(recorded)
    }

    /// Adds one outcome; commits everything waiting when it cannot wait (not
    /// `reconcilable`, or not a plan's), when a group is full, or when the oldest has
    /// waited [`MARK_DELAY`] (checked here too: answers that keep coming never let a
    /// timer fire).
    fn push(
        &mut self,
        ledger: &Ledger,
        reconcilable: bool,
        mark: PendingMark<'i>,
    ) -> Result<(), LedgerError> {
        let now = tokio::time::Instant::now();
        let due = *self.due.get_or_insert(now + MARK_DELAY);
        self.marks.push(mark);
        let batched = self.purpose == Purpose::Plan;
        if !batched || !reconcilable || self.marks.len() >= MARK_BATCH || due <= now {
            self.flush(ledger)?;
        }
        Ok(())
    }

    fn flush(&mut self, ledger: &Ledger) -> Result<(), LedgerError> {
        let marks: Vec<Mark<'_>> = self
            .marks
            .iter()
            .map(|m| Mark {
                run_id: m.run_id,
                change_id: m.change_id,
                status: m.status,
                correlation_id: m.correlation_id.as_deref(),
                detail: Some(&m.detail),
            })
            .collect();
        ledger.mark_each(&marks)?;
        self.marks.clear();
        self.due = None;
        Ok(())
    }
}

/// The outcome of an API error for the items it stopped: given up at shutdown with nothing
/// sent is [`Outcome::NotSent`]; anything else (a timeout may have landed) is a failure.
fn failed(e: &ApiError, context: &str) -> Outcome {
    match e {
        ApiError::Cancelled {
            maybe_sent: false, ..
        } => Outcome::NotSent {
            reason: format!("{context}{e}"),
        },
        _ => Outcome::Failed {
            error: format!("{context}{e}"),
            correlation_id: e.correlation_id().map(String::from),
        },
    }
}

/// Writes one agent's changes. Never returns an error: every item gets an outcome.
async fn write_agent<'i>(
    client: &GenesysClient,
    settings: &ApplySettings,
    agent_id: &str,
    items: &[&'i WriteItem<'i>],
) -> Vec<(&'i WriteItem<'i>, Outcome)> {
    let mut outcomes: HashMap<&str, Outcome> = HashMap::new();
    let mut pending: Vec<&WriteItem> = items.to_vec();
    let mut attempts = 0;
    while !pending.is_empty() {
        attempts += 1;
        let fresh = if settings.verify_before_write || attempts > 1 {
            match client.user_proficiencies(agent_id).await {
                Ok(skills) => Some(skills),
                Err(e) => {
                    for item in pending {
                        outcomes.insert(item.change_id, failed(&e, "re-read before write: "));
                    }
                    break;
                }
            }
        } else {
            None
        };
        let mut writes: Vec<(&WriteItem, f64)> = Vec::new();
        for item in pending.drain(..) {
            let Some(fresh) = &fresh else {
                writes.push((item, item.after));
                continue;
            };
            let now = fresh.get(item.skill_id).copied();
            if now.is_some_and(|v| same(v, item.after)) && attempts > 1 {
                // Our earlier write landed (a 409 can hide a success): nothing to do.
                outcomes.insert(
                    item.change_id,
                    Outcome::Applied {
                        value: item.after,
                        correlation_id: None,
                    },
                );
                continue;
            }
            let unchanged = match now {
                Some(v) => !item.adds_skill && same(v, item.before),
                None => item.adds_skill,
            };
            if unchanged {
                writes.push((item, item.after));
                continue;
            }
            match (settings.on_conflict, now, item.replan) {
                (OnConflict::Replan, Some(found), Some(replan)) => {
                    match decide(replan.policy, found, replan.target) {
                        Decision::Change { to } => writes.push((item, to)),
                        Decision::Keep(_) => {
                            outcomes
                                .insert(item.change_id, Outcome::Conflict { found: Some(found) });
                        }
                    }
                }
                _ => {
                    tracing::info!(agent = agent_id, skill = %item.skill_id, planned_from = item.before, found = ?now, "a person changed this skill since our read; leaving it");
                    outcomes.insert(item.change_id, Outcome::Conflict { found: now });
                }
            }
        }
        if writes.is_empty() {
            break;
        }
        let body: Vec<UserRoutingSkillPost> = writes
            .iter()
            .map(|(item, value)| UserRoutingSkillPost {
                id: item.skill_id.to_string(),
                proficiency: *value,
            })
            .collect();
        match client.patch_user_skills(agent_id, &body).await {
            Ok((_, correlation_id)) => {
                for (item, value) in writes {
                    outcomes.insert(
                        item.change_id,
                        Outcome::Applied {
                            value,
                            correlation_id: correlation_id.clone(),
                        },
                    );
                }
            }
            Err(e)
                if e.is_version_conflict()
                    && attempts <= settings.max_conflict_retries as usize =>
            {
                tracing::info!(agent = agent_id, error = %e, "write conflict; re-reading and re-deciding");
                pending = writes.into_iter().map(|(item, _)| item).collect();
            }
            Err(e) => {
                for (item, _) in writes {
                    outcomes.insert(item.change_id, failed(&e, ""));
                }
            }
        }
    }
    items
        .iter()
        .map(|&item| {
            let outcome = outcomes.remove(item.change_id).unwrap_or(Outcome::Failed {
                error: "gave up after repeated write conflicts".into(),
                correlation_id: None,
            });
            (item, outcome)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{ChangeRecord, RunMode};

    fn planned(ledger: &Ledger, n: usize) -> (i64, Vec<String>) {
        let run = ledger.begin_run(RunMode::Once, "h", None).unwrap();
        let rows: Vec<ChangeRecord> = (0..n)
            .map(|i| ChangeRecord {
                change_id: format!("c{i}"),
                run_id: run,
                agent_id: format!("a{i}"),
                agent_name: format!("Agent {i}"),
                skill_id: "s".into(),
                skill_name: "Skill".into(),
                before: 2.0,
                after: 3.0,
                target: Some(3.0),
                score: None,
                reason: "test".into(),
                status: ChangeStatus::Planned,
                correlation_id: None,
                detail: None,
                workitem_id: None,
            })
            .collect();
        ledger.record_plan(&rows).unwrap();
        (run, rows.into_iter().map(|r| r.change_id).collect())
    }

    fn applied(ledger: &Ledger, run: i64) -> usize {
        ledger
            .changes(run)
            .unwrap()
            .iter()
            .filter(|c| c.status == ChangeStatus::Applied)
            .count()
    }

    fn mark<'i>(run_id: i64, change_id: &'i str) -> PendingMark<'i> {
        PendingMark {
            run_id,
            change_id,
            status: ChangeStatus::Applied,
            correlation_id: Some("corr".into()),
            detail: "applied".into(),
        }
    }

    #[tokio::test]
    async fn a_plans_outcomes_are_committed_in_groups_and_all_by_the_end() {
        let ledger = Ledger::in_memory().unwrap();
        let (run, ids) = planned(&ledger, MARK_BATCH + 10);
        let mut marks = PendingMarks::new(Purpose::Plan);
        for id in &ids[..MARK_BATCH - 1] {
            marks.push(&ledger, true, mark(run, id)).unwrap();
        }
        assert_eq!(
            applied(&ledger, run),
            0,
            "below a group: nothing committed yet"
        );
        assert!(marks.due_at().is_some(), "and a deadline is set for them");
        marks
            .push(&ledger, true, mark(run, &ids[MARK_BATCH - 1]))
            .unwrap();
        assert_eq!(
            applied(&ledger, run),
            MARK_BATCH,
            "a full group is one commit"
        );
        assert!(marks.due_at().is_none());
        for id in &ids[MARK_BATCH..] {
            marks.push(&ledger, true, mark(run, id)).unwrap();
        }
        marks.flush(&ledger).unwrap();
        assert_eq!(applied(&ledger, run), MARK_BATCH + 10);
        let row = &ledger.changes(run).unwrap()[0];
        assert_eq!(row.correlation_id.as_deref(), Some("corr"));
        assert_eq!(row.detail.as_deref(), Some("applied"));
    }

    #[tokio::test]
    async fn an_outcome_the_org_alone_cannot_tell_is_committed_at_once_with_those_waiting() {
        let ledger = Ledger::in_memory().unwrap();
        let (run, ids) = planned(&ledger, 3);
        let mut marks = PendingMarks::new(Purpose::Plan);
        marks.push(&ledger, true, mark(run, &ids[0])).unwrap();
        assert_eq!(applied(&ledger, run), 0);
        let conflict = PendingMark {
            status: ChangeStatus::Conflict,
            ..mark(run, &ids[1])
        };
        marks.push(&ledger, false, conflict).unwrap();
        let rows = ledger.changes(run).unwrap();
        let status = |id: &str| rows.iter().find(|r| r.change_id == id).unwrap().status;
        assert_eq!(status(&ids[0]), ChangeStatus::Applied);
        assert_eq!(status(&ids[1]), ChangeStatus::Conflict);
        assert!(marks.due_at().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn answers_that_keep_coming_are_committed_once_the_oldest_is_due() {
        let ledger = Ledger::in_memory().unwrap();
        let (run, ids) = planned(&ledger, 3);
        let mut marks = PendingMarks::new(Purpose::Plan);
        marks.push(&ledger, true, mark(run, &ids[0])).unwrap();
        tokio::time::advance(MARK_DELAY / 2).await;
        marks.push(&ledger, true, mark(run, &ids[1])).unwrap();
        assert_eq!(applied(&ledger, run), 0, "not yet due");
        tokio::time::advance(MARK_DELAY / 2).await;
        marks.push(&ledger, true, mark(run, &ids[2])).unwrap();
        assert_eq!(
            applied(&ledger, run),
            3,
            "the oldest was due: all committed"
        );
    }

    #[test]
    fn only_what_reconciliation_would_record_alike_may_wait() {
        let item = WriteItem {
            run_id: 1,
            change_id: "c",
            agent_id: "a",
            skill_id: "s",
            before: 2.0,
            after: 3.0,
            adds_skill: false,
            replan: None,
        };
        let applied = |value| Outcome::Applied {
            value,
            correlation_id: None,
        };
        assert!(reconcilable(&item, &applied(3.0)));
        assert!(!reconcilable(&item, &applied(2.5)), "re-planned");
        assert!(reconcilable(&item, &Outcome::Stopped));
        assert!(reconcilable(
            &item,
            &Outcome::NotSent {
                reason: "stopping".into()
            }
        ));
        assert!(!reconcilable(
            &item,
            &Outcome::Conflict { found: Some(3.0) }
        ));
        assert!(!reconcilable(
            &item,
            &Outcome::Failed {
                error: "500".into(),
                correlation_id: None
            }
        ));
    }

    #[tokio::test]
    async fn approvals_and_rollbacks_are_recorded_as_each_answers() {
        for purpose in [Purpose::Review, Purpose::Rollback { of: 1 }] {
            let ledger = Ledger::in_memory().unwrap();
            let (run, ids) = planned(&ledger, 2);
            let mut marks = PendingMarks::new(purpose);
            marks.push(&ledger, true, mark(run, &ids[0])).unwrap();
            assert_eq!(applied(&ledger, run), 1, "{purpose:?}: on disk at once");
            assert!(marks.due_at().is_none());
        }
    }
}
