//! The experiment's part of a cycle, between collect and plan: record which skills are held
//! out, measure the effect (a few analytics calls), record the day's estimate, and pause on
//! harm. Like the breaker, a pause stops applying but not measuring: every later cycle keeps
//! estimating and recording, and applies nothing until a person resumes.

use super::{Mode, ThisRun};
use crate::config::Settings;
use crate::experiment::{self, Assignment, ExperimentStatus};
use crate::history::{LedgerError, UnitArm};
use crate::org::Snapshot;

/// What the rest of the cycle needs: the assignment (when it holds skills out today), the
/// pause in force, and the status for the report.
pub(super) struct ExperimentStep {
    pub held_out: Option<Assignment>,
    pub paused: Option<String>,
    pub status: Option<ExperimentStatus>,
}

/// Runs the experiment's checks for this cycle.
pub(super) async fn check(
    run: &ThisRun<'_>,
    settings: &Settings,
    snapshot: &Snapshot,
) -> Result<ExperimentStep, LedgerError> {
    let pause = run.ledger.active_pause()?;
    let mut step = ExperimentStep {
        held_out: None,
        paused: pause
            .as_ref()
            .map(|p| format!("{}: {}", p.metric, p.reason)),
        status: None,
    };
    let e = &settings.experiment;
    let Some(assignment) = Assignment::of(e) else {
        return Ok(step);
    };
    let today = run.now.date_naive();
    let active = assignment.active_on(today);
    let skills: Vec<(String, String)> = snapshot
        .skills
        .iter()
        .map(|s| (s.id.clone(), s.name.clone()))
        .collect();
    let units = experiment::assign(&assignment, &skills);
    if run.mode != Mode::Plan {
        let (fp, config) = (e.fingerprint(), settings.fingerprint());
        let rows: Vec<UnitArm> = units
            .iter()
            .map(|u| UnitArm {
                salt: assignment.salt.clone(),
                unit_id: u.unit_id.clone(),
                unit_name: u.unit_name.clone(),
                arm: u.arm.as_str().to_string(),
                design: e.design.clone(),
                experiment_fingerprint: fp.clone(),
                config_hash: config.clone(),
                recorded_at: String::new(),
            })
            .collect();
        run.ledger.record_assignment(&assignment.salt, &rows)?;
    }
    let held: Vec<String> = units
        .iter()
        .filter(|u| u.arm == experiment::Arm::HeldOut)
        .map(|u| u.unit_name.clone())
        .collect();
    let mut status = ExperimentStatus {
        design: e.design.clone(),
        start: assignment.start,
        salt: assignment.salt.clone(),
        active,
        tuned: units.len() - held.len(),
        held_out: held,
        effect: None,
        effect_error: None,
        paused: step.paused.clone(),
    };
    if active {
        match experiment::measure(
            run.client,
            e,
            &assignment,
            &settings.metrics.media_types,
            today,
        )
        .await
        {
            Ok(report) => {
                if run.mode != Mode::Plan && report.days > 0 {
                    let json = serde_json::to_value(&report).unwrap_or_default();
                    run.ledger.record_effect_day(
                        &assignment.salt,
                        &report.through.to_string(),
                        Some(run.run_id),
                        &json,
                    )?;
                }
                if let (None, Some(m), true) = (&step.paused, report.harmed(), e.pause_on_harm) {
                    let reason = format!(
                        "tuned arm worse by {:+.2} {} per interaction (95 % CI {:+.2} to {:+.2}), beyond the bound of {:.2} {} by the sequential test, after {} days",
                        m.estimate, m.unit, m.ci_low, m.ci_high, m.harm.bound, m.unit, report.days
                    );
                    tracing::warn!(metric = m.metric.as_str(), %reason, "pausing tuning on harm");
                    if run.mode != Mode::Plan {
                        run.ledger
                            .pause(Some(run.run_id), m.metric.as_str(), &reason)?;
                    }
                    step.paused = Some(format!("{}: {reason}", m.metric.as_str()));
                    status.paused = step.paused.clone();
                }
                status.effect = Some(report);
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not measure the experiment's effect");
                status.effect_error = Some(err.to_string());
            }
        }
        step.held_out = Some(assignment);
    }
    step.status = Some(status);
    Ok(step)
}
