//! Apply: one bulk write per changed agent, never overwriting a person's edit.
//!
//! The API has no version or ETag on routing skills (`docs/genesys-api.md` §5), so the
//! protection is ours: right before writing an agent we re-read its skills and compare each
//! with the value the plan was computed against. A skill a person changed is left alone (a
//! `conflict`), or re-planned from the person's value when configured. On a 409 we re-read
//! and re-decide (bounded) instead of resending the same body.

use crate::config::{ApplySettings, OnConflict, SkillPolicy};
use crate::genesys::models::UserRoutingSkillPost;
use crate::genesys::GenesysClient;
use crate::plan::{decide, Decision};
use std::collections::HashMap;

/// One skill to write for an agent.
#[derive(Debug, Clone)]
pub struct WriteItem<'a> {
    pub change_id: String,
    pub skill_id: String,
    /// The value the plan was computed against.
    pub before: f64,
    pub after: f64,
    /// Whether the agent held the skill when planned (false only with `add_missing_skills`).
    pub held: bool,
    /// For re-planning after a conflict.
    pub target: Option<f64>,
    pub policy: &'a SkillPolicy,
}

/// What happened to one skill.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
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
}

/// The outcome of an API error for the items it stopped: given up at shutdown with nothing
/// sent is [`Outcome::NotSent`]; anything else (a timeout may have landed) is a failure.
fn failed(e: &crate::genesys::ApiError, context: &str) -> Outcome {
    match e {
        crate::genesys::ApiError::Cancelled {
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

/// Writes one agent's changes. Never returns an error: every item gets an outcome, and one
/// agent's failure never stops the others.
pub async fn write_agent(
    client: &GenesysClient,
    settings: &ApplySettings,
    agent_id: &str,
    items: &[WriteItem<'_>],
) -> Vec<(String, Outcome)> {
    let mut outcomes: HashMap<String, Outcome> = HashMap::new();
    let mut pending: Vec<&WriteItem> = items.iter().collect();
    let mut attempts = 0;
    while !pending.is_empty() {
        attempts += 1;
        let fresh = if settings.verify_before_write || attempts > 1 {
            match client.user_skills(agent_id).await {
                Ok(skills) => Some(
                    skills
                        .into_iter()
                        .map(|s| (s.id, s.proficiency))
                        .collect::<HashMap<_, _>>(),
                ),
                Err(e) => {
                    for item in pending {
                        outcomes
                            .insert(item.change_id.clone(), failed(&e, "re-read before write: "));
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
            let now = fresh.get(&item.skill_id).copied();
            if now.is_some_and(|v| same(v, item.after)) && attempts > 1 {
                // Our earlier write landed (a 409 can hide a success): nothing to do.
                outcomes.insert(
                    item.change_id.clone(),
                    Outcome::Applied {
                        value: item.after,
                        correlation_id: None,
                    },
                );
                continue;
            }
            let unchanged = match now {
                Some(v) => item.held && same(v, item.before),
                None => !item.held,
            };
            if unchanged {
                writes.push((item, item.after));
                continue;
            }
            match (settings.on_conflict, now, item.target) {
                (OnConflict::Replan, Some(found), Some(target)) => {
                    match decide(item.policy, found, target) {
                        Decision::Change { to } => writes.push((item, to)),
                        Decision::Keep(_) => {
                            outcomes.insert(
                                item.change_id.clone(),
                                Outcome::Conflict { found: Some(found) },
                            );
                        }
                    }
                }
                _ => {
                    tracing::info!(agent = agent_id, skill = %item.skill_id, planned_from = item.before, found = ?now, "a person changed this skill since our read; leaving it");
                    outcomes.insert(item.change_id.clone(), Outcome::Conflict { found: now });
                }
            }
        }
        if writes.is_empty() {
            break;
        }
        let body: Vec<UserRoutingSkillPost> = writes
            .iter()
            .map(|(item, value)| UserRoutingSkillPost {
                id: item.skill_id.clone(),
                proficiency: *value,
            })
            .collect();
        match client.patch_user_skills(agent_id, &body).await {
            Ok((_, correlation_id)) => {
                for (item, value) in writes {
                    outcomes.insert(
                        item.change_id.clone(),
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
                    outcomes.insert(item.change_id.clone(), failed(&e, ""));
                }
            }
        }
    }
    items
        .iter()
        .map(|i| {
            let outcome = outcomes.remove(&i.change_id).unwrap_or(Outcome::Failed {
                error: "gave up after repeated write conflicts".into(),
                correlation_id: None,
            });
            (i.change_id.clone(), outcome)
        })
        .collect()
}

/// Proficiencies are doubles; compare with a tolerance far below any real step.
pub fn same(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}
