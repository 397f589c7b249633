//! History, diff, rollback, export and crash reconciliation, against the embedded simulator
//! on 127.0.0.1, in process and through the real binary. A kill -9 mid-apply and the restart
//! after it are a fault scenario (`faults::kill_9_mid_apply_and_restart`).

use crate::common;

use common::binary::{binary, binary_with_secret, config_file, output};
use common::sim::{
    client_for, cycle, memory_ledger, org_value, other_than, relaxed, start_sim, transparent,
    transparent_changes,
};
use common::TempDir;
use genesys_sim::Simulator;
use serde_json::Value;
use skill_tuner::audit::{self, AuditError, DiffStatus, ExportFormat};
use skill_tuner::config::Settings;
use skill_tuner::cycle::report::CycleReport;
use skill_tuner::cycle::Mode;
use skill_tuner::genesys::models::UserRoutingSkillPost;
use skill_tuner::genesys::GenesysClient;
use skill_tuner::history::{
    reconcile_unfinished, ChangeRecord, ChangeStatus, Ledger, LedgerError, RunMode, RunOutcome,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// A simulator on the test clock, settings whose plan follows from its ground truth
/// ([`transparent`]), and a started client.
async fn start(agents: usize) -> (Simulator, Settings, GenesysClient) {
    let sim = start_sim(agents, |c| c.seed = 11).await;
    let settings = transparent(relaxed(&sim));
    let client = client_for(&sim, &settings).await;
    (sim, settings, client)
}

/// Runs one real cycle and returns its applied changes: exactly those the simulator's ground
/// truth calls for in the window the cycle used (and the tests below need at least three).
async fn once(
    sim: &Simulator,
    client: &GenesysClient,
    settings: &Settings,
    ledger: &Ledger,
) -> (i64, Vec<ChangeRecord>) {
    let expected = transparent_changes(sim, settings);
    assert!(
        expected.len() >= 3,
        "fixture: the org at {} needs at least 3 changes, has {}",
        sim.clock().now(),
        expected.len()
    );
    let report = cycle(sim, client, settings, ledger, Mode::Once)
        .await
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Ok, "{report:?}");
    let applied: Vec<ChangeRecord> = ledger
        .changes(report.run_id)
        .unwrap()
        .into_iter()
        .filter(|c| c.status == ChangeStatus::Applied)
        .collect();
    let written: BTreeMap<(String, String), (f64, f64)> = applied
        .iter()
        .map(|c| {
            (
                (c.agent_id.clone(), c.skill_id.clone()),
                (c.before, c.after),
            )
        })
        .collect();
    assert_eq!(
        written, expected,
        "the cycle applies exactly the ground truth's changes"
    );
    (report.run_id, applied)
}

/// The statuses of a run's change rows, in order.
fn statuses(ledger: &Ledger, run_id: i64) -> Vec<ChangeStatus> {
    ledger
        .changes(run_id)
        .unwrap()
        .iter()
        .map(|c| c.status)
        .collect()
}

/// Runs one `plan` cycle (it writes nothing).
async fn plan_cycle(
    sim: &Simulator,
    client: &GenesysClient,
    settings: &Settings,
    ledger: &Ledger,
) -> CycleReport {
    cycle(sim, client, settings, ledger, Mode::Plan)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_restores_exactly_and_is_recorded() {
    let (sim, settings, client) = start(40).await;
    let ledger = memory_ledger(&sim);
    let (run_id, applied) = once(&sim, &client, &settings, &ledger).await;
    for c in &applied {
        assert_eq!(org_value(&sim, c), Some(c.after));
    }
    let agents: BTreeSet<&str> = applied.iter().map(|c| c.agent_id.as_str()).collect();
    let writes_before = sim.org().write_count();

    // A dry run shows the plan and neither writes nor records anything.
    let runs_before = ledger.recent_runs(100).unwrap().len();
    let dry = audit::rollback(&client, &settings, &ledger, run_id, true)
        .await
        .unwrap();
    assert_eq!(dry.restored.len(), applied.len());
    assert!(dry.left_alone.is_empty() && dry.run_id.is_none());
    assert_eq!(sim.org().write_count(), writes_before);
    assert_eq!(ledger.recent_runs(100).unwrap().len(), runs_before);

    let report = audit::rollback(&client, &settings, &ledger, run_id, false)
        .await
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Ok);
    assert_eq!(report.restored.len(), applied.len());
    assert!(report.left_alone.is_empty() && report.failed.is_empty());
    for c in &applied {
        assert_eq!(org_value(&sim, c), Some(c.before), "{c:?}");
    }
    // One bulk write per agent.
    assert_eq!(sim.org().write_count() - writes_before, agents.len() as u64);

    // The rollback is a run of its own, with its own applied rows.
    let rb_id = report.run_id.unwrap();
    let rb = ledger.run(rb_id).unwrap();
    assert_eq!(rb.mode, RunMode::Rollback);
    assert_eq!(rb.rollback_of, Some(run_id));
    assert_eq!(rb.outcome, Some(RunOutcome::Ok));
    let rows = ledger.changes(rb_id).unwrap();
    assert_eq!(rows.len(), applied.len());
    assert!(rows.iter().all(|r| r.status == ChangeStatus::Applied));
    assert!(rows.iter().all(|r| r.correlation_id.is_some()));

    // Rolling back a rollback is refused (re-applying old output bypasses the guardrails).
    let err = audit::rollback(&client, &settings, &ledger, rb_id, false)
        .await
        .unwrap_err();
    assert!(matches!(err, AuditError::Refused(_)), "{err}");
    // Rolling back the same run again finds everything changed since: nothing is written.
    let writes = sim.org().write_count();
    let again = audit::rollback(&client, &settings, &ledger, run_id, false)
        .await
        .unwrap();
    assert!(again.restored.is_empty());
    assert_eq!(again.left_alone.len(), applied.len());
    assert_eq!(sim.org().write_count(), writes);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_leaves_a_later_human_edit_alone() {
    let (sim, settings, client) = start(30).await;
    let ledger = memory_ledger(&sim);
    let (run_id, applied) = once(&sim, &client, &settings, &ledger).await;
    let edited = &applied[0];
    let human = other_than(edited.before, edited.after);
    assert!(sim
        .org()
        .set_proficiency(&edited.agent_id, &edited.skill_id, human));

    let report = audit::rollback(&client, &settings, &ledger, run_id, false)
        .await
        .unwrap();
    assert_eq!(
        org_value(&sim, edited),
        Some(human),
        "the person's value stays"
    );
    assert_eq!(report.left_alone.len(), 1);
    assert_eq!(report.left_alone[0].skill_id, edited.skill_id);
    assert_eq!(report.left_alone[0].agent_id, edited.agent_id);
    assert_eq!(report.left_alone[0].now, Some(human));
    assert!(audit::render_rollback(&report).contains("left alone"));
    for c in &applied[1..] {
        assert_eq!(org_value(&sim, c), Some(c.before));
    }
    let rows = ledger.changes(report.run_id.unwrap()).unwrap();
    let conflict: Vec<_> = rows
        .iter()
        .filter(|r| r.status == ChangeStatus::Conflict)
        .collect();
    assert_eq!(conflict.len(), 1);
    assert_eq!(conflict[0].agent_id, edited.agent_id);
    assert_eq!(conflict[0].skill_id, edited.skill_id);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_reports_each_change_against_the_org() {
    let (sim, settings, client) = start(30).await;
    let ledger = memory_ledger(&sim);
    let plan = plan_cycle(&sim, &client, &settings, &ledger).await;
    let (run_id, applied) = once(&sim, &client, &settings, &ledger).await;
    let reverted = &applied[0];
    let changed = &applied[1];
    sim.org()
        .set_proficiency(&reverted.agent_id, &reverted.skill_id, reverted.before);
    sim.org().set_proficiency(
        &changed.agent_id,
        &changed.skill_id,
        other_than(changed.before, changed.after),
    );

    let diff = audit::diff(&client, &ledger, run_id).await.unwrap();
    let status: BTreeMap<&str, DiffStatus> = diff
        .lines
        .iter()
        .map(|l| (l.change_id.as_str(), l.status))
        .collect();
    assert_eq!(status[reverted.change_id.as_str()], DiffStatus::Reverted);
    assert_eq!(status[changed.change_id.as_str()], DiffStatus::ChangedSince);
    for c in &applied[2..] {
        assert_eq!(status[c.change_id.as_str()], DiffStatus::StillApplied);
    }
    let line = diff
        .lines
        .iter()
        .find(|l| l.change_id == changed.change_id)
        .unwrap();
    assert_eq!(line.now, org_value(&sim, changed));
    assert!(audit::render_diff(&diff).contains("changed_since"));

    // A dry run applied nothing.
    let dry = audit::diff(&client, &ledger, plan.run_id).await.unwrap();
    assert!(!dry.lines.is_empty());
    assert!(dry.lines.iter().all(|l| l.status == DiffStatus::NotApplied));
    sim.shutdown().await;
}

/// A minimal RFC 4180 reader for the test (quoted fields, doubled quotes, embedded newlines).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match (quoted, ch) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && row.is_empty(),
        "trailing partial record"
    );
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_csv_and_json_parse_back() {
    let (sim, _, client) = start(20).await;
    // The demo policy weighs three components: its reasons are prose with commas, which
    // exercises the CSV quoting.
    let settings = relaxed(&sim);
    let ledger = memory_ledger(&sim);
    let report = cycle(&sim, &client, &settings, &ledger, Mode::Once)
        .await
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Ok, "{report:?}");
    let run_id = report.run_id;
    audit::rollback(&client, &settings, &ledger, run_id, false)
        .await
        .unwrap();
    let all = ledger.all_changes().unwrap();

    let mut csv = Vec::new();
    let n = audit::export(&ledger, ExportFormat::Csv, &mut csv).unwrap();
    assert_eq!(n, all.len());
    let rows = parse_csv(&String::from_utf8(csv).unwrap());
    assert_eq!(rows.len(), all.len() + 1);
    assert_eq!(rows[0], audit::CSV_HEADER.map(String::from).to_vec());
    let col = |name: &str| audit::CSV_HEADER.iter().position(|h| *h == name).unwrap();
    for (row, change) in rows[1..].iter().zip(&all) {
        assert_eq!(row.len(), audit::CSV_HEADER.len());
        assert_eq!(row[col("change_id")], change.change_id);
        assert_eq!(row[col("reason")], change.reason);
        assert_eq!(row[col("status")], change.status.as_str());
        assert_eq!(row[col("before")].parse::<f64>().unwrap(), change.before);
        assert_eq!(row[col("after")].parse::<f64>().unwrap(), change.after);
        let run = ledger.run(change.run_id).unwrap();
        assert_eq!(row[col("run_mode")], run.mode.as_str());
        assert_eq!(row[col("run_started_at")], run.started_at);
        if let Some(score) = &change.score {
            let parsed: Value = serde_json::from_str(&row[col("score")]).unwrap();
            let recorded: Value = serde_json::from_str(score.get()).unwrap();
            assert_eq!(parsed, recorded);
        }
    }
    // Scores explain themselves in prose with commas: the quoting is exercised.
    assert!(all.iter().any(|c| c.reason.contains(',')));

    let mut json = Vec::new();
    audit::export(&ledger, ExportFormat::Json, &mut json).unwrap();
    let parsed: Vec<Value> = serde_json::from_slice(&json).unwrap();
    assert_eq!(parsed.len(), all.len());
    assert_eq!(parsed[0]["change_id"], all[0].change_id.as_str());
    assert!(parsed
        .iter()
        .any(|r| r["run_mode"] == "rollback" && r["rollback_of"] == run_id));
    sim.shutdown().await;
}

/// Records a plan for `n` agents' first skills (after = before ± 1) as a run a crash left
/// unfinished.
fn crashed_run(
    sim: &Simulator,
    ledger: &Ledger,
    mode: RunMode,
    n: usize,
) -> (i64, Vec<ChangeRecord>) {
    let run_id = ledger.begin_run(mode, "test", None).unwrap();
    let rows: Vec<ChangeRecord> = sim
        .org()
        .agent_ids()
        .into_iter()
        .take(n)
        .enumerate()
        .map(|(i, agent)| {
            let (skill, before) = sim.org().user_skills(&agent)[0].clone();
            let after = if before >= 2.5 {
                before - 1.0
            } else {
                before + 1.0
            };
            ChangeRecord {
                change_id: format!("crash-{i}"),
                run_id,
                agent_id: agent.clone(),
                agent_name: format!("Agent {i}"),
                skill_id: skill,
                skill_name: "skill".into(),
                before,
                after,
                target: Some(after),
                score: None,
                reason: "test".into(),
                status: ChangeStatus::Planned,
                correlation_id: None,
                detail: None,
                workitem_id: None,
            }
        })
        .collect();
    ledger.record_plan(&rows).unwrap();
    // The process that began it "dies": its claim on the run goes, as a crash drops the
    // run's lock file lock.
    ledger.abandon_run(run_id);
    (run_id, rows)
}

async fn write(client: &GenesysClient, c: &ChangeRecord) {
    client
        .patch_user_skills(
            &c.agent_id,
            &[UserRoutingSkillPost {
                id: c.skill_id.clone(),
                proficiency: c.after,
            }],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_settles_a_crashed_run_without_writing() {
    let (sim, _settings, client) = start(10).await;
    let ledger = memory_ledger(&sim);
    let (run_id, rows) = crashed_run(&sim, &ledger, RunMode::Once, 6);
    // 0: written and confirmed; 1, 2: written, crash before the mark; 3, 4: never written;
    // 5: a person changed it meanwhile.
    write(&client, &rows[0]).await;
    ledger
        .mark(
            run_id,
            &["crash-0"],
            ChangeStatus::Applied,
            Some("corr-0"),
            None,
        )
        .unwrap();
    write(&client, &rows[1]).await;
    write(&client, &rows[2]).await;
    let human = other_than(rows[5].before, rows[5].after);
    sim.org()
        .set_proficiency(&rows[5].agent_id, &rows[5].skill_id, human);
    // A dry run that was interrupted too.
    let (plan_run, _) = crashed_run(&sim, &ledger, RunMode::Plan, 2);

    // A read failure leaves the run unfinished (retried at the next start).
    let bad = format!("users/{}/routingskills", rows[3].agent_id);
    sim.faults().fail_next(1, 404, &bad);
    let writes = sim.org().write_count();
    let first = reconcile_unfinished(&client, &ledger).await.unwrap();
    assert_eq!(first.left_unfinished.len(), 1);
    assert_eq!(first.left_unfinished[0].run_id, run_id);
    assert!(ledger.run(run_id).unwrap().finished_at.is_none());
    let dry = ledger.run(plan_run).unwrap();
    assert_eq!(dry.outcome, Some(RunOutcome::Interrupted));
    assert!(ledger
        .changes(plan_run)
        .unwrap()
        .iter()
        .all(|c| c.status == ChangeStatus::Planned));

    let second = reconcile_unfinished(&client, &ledger).await.unwrap();
    assert!(second.left_unfinished.is_empty());
    assert_eq!(second.closed.len(), 1);
    assert_eq!(
        sim.org().write_count(),
        writes,
        "reconciliation never writes"
    );

    let run = ledger.run(run_id).unwrap();
    assert_eq!(run.outcome, Some(RunOutcome::Interrupted));
    let status = statuses(&ledger, run_id);
    use ChangeStatus::*;
    assert_eq!(
        status,
        [Applied, Applied, Applied, Skipped, Skipped, Conflict]
    );
    let changes = ledger.changes(run_id).unwrap();
    assert_eq!(changes[0].correlation_id.as_deref(), Some("corr-0"));
    assert_eq!(
        changes[1].detail.as_deref(),
        Some("confirmed after an interruption")
    );
    assert_eq!(
        changes[3].detail.as_deref(),
        Some("not applied before the interruption")
    );
    // The org was never touched by reconciliation: the person's value stands.
    assert_eq!(org_value(&sim, &rows[5]), Some(human));
    assert!(reconcile_unfinished(&client, &ledger)
        .await
        .unwrap()
        .is_empty());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cycle_reconciles_first() {
    let (sim, settings, client) = start(10).await;
    let ledger = memory_ledger(&sim);
    let (run_id, rows) = crashed_run(&sim, &ledger, RunMode::Scheduled, 3);
    write(&client, &rows[0]).await;
    let writes = sim.org().write_count();
    let report = plan_cycle(&sim, &client, &settings, &ledger).await;
    assert_eq!(sim.org().write_count(), writes);
    assert!(ledger.unfinished_runs().unwrap().is_empty());
    assert_eq!(
        ledger.run(run_id).unwrap().outcome,
        Some(RunOutcome::Interrupted)
    );
    let status = statuses(&ledger, run_id);
    assert_eq!(
        status,
        [
            ChangeStatus::Applied,
            ChangeStatus::Skipped,
            ChangeStatus::Skipped
        ]
    );
    assert!(report.run_id > run_id);
    sim.shutdown().await;
}

#[test]
fn a_corrupt_database_is_refused_naming_the_file() {
    let dir = TempDir::new("corrupt");
    let path = dir.path().join("ledger.db");
    std::fs::write(
        &path,
        b"this is not a sqlite database, just garbage bytes.......".repeat(200),
    )
    .unwrap();
    let err = Ledger::open(&path).unwrap_err();
    assert!(matches!(err, LedgerError::Corrupt { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("corrupt"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_is_refused_and_nothing_is_written() {
    let dir = TempDir::new("locked");
    let path = dir.path().join("ledger.db");
    drop(Ledger::open(&path).unwrap());
    // A ledger opened before the lock: its cycle must stop before writing to the org.
    let early = Ledger::open_with_busy_timeout(&path, Duration::from_millis(200)).unwrap();
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE;").unwrap();

    let started = Instant::now();
    let err = Ledger::open_with_busy_timeout(&path, Duration::from_millis(200)).unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(matches!(err, LedgerError::Locked { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("locked"),
        "{text}"
    );

    let (sim, settings, client) = start(10).await;
    let result = cycle(&sim, &client, &settings, &early, Mode::Once).await;
    assert!(
        matches!(
            result,
            Err(skill_tuner::cycle::CycleError::Ledger(
                LedgerError::Locked { .. }
            ))
        ),
        "{result:?}"
    );
    assert_eq!(sim.org().write_count(), 0);
    holder.execute_batch("ROLLBACK;").unwrap();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_refuses_a_corrupt_ledger_without_writing() {
    let dir = TempDir::new("corrupt-once");
    let ledger = dir.path().join("ledger.db");
    std::fs::write(&ledger, vec![0x5a_u8; 8192]).unwrap();
    let (sim, settings, _client) = start(10).await;
    let config = config_file(dir.path(), &settings, &ledger);
    let out = output(binary(&["once"], &config)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&ledger.display().to_string()), "{stderr}");
    assert!(stderr.contains("refusing to run"), "{stderr}");
    assert_eq!(sim.org().write_count(), 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_progress_elsewhere_is_not_reconciled() {
    let dir = TempDir::new("live");
    let path = dir.path().join("ledger.db");
    let (sim, _settings, client) = start(5).await;
    // "Another process": a second handle on the same file, with a run in progress.
    let owner = Ledger::open(&path).unwrap();
    let run_id = owner.begin_run(RunMode::Scheduled, "h", None).unwrap();
    let ours = Ledger::open(&path).unwrap();
    assert!(reconcile_unfinished(&client, &ours)
        .await
        .unwrap()
        .is_empty());
    assert!(ours.run(run_id).unwrap().finished_at.is_none());
    // Its owner dies: now it is reconciled.
    drop(owner);
    let report = reconcile_unfinished(&client, &ours).await.unwrap();
    assert_eq!(report.closed.len(), 1);
    assert_eq!(
        ours.run(run_id).unwrap().outcome,
        Some(RunOutcome::Interrupted)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_history_show_export_need_no_credentials() {
    let dir = TempDir::new("cli");
    let path = dir.path().join("ledger.db");
    let (sim, settings, client) = start(10).await;
    let run_id = {
        let ledger = Ledger::open(&path).unwrap();
        once(&sim, &client, &settings, &ledger).await.0
    };
    let config = config_file(dir.path(), &settings, &path);
    let no_secret = |args: &[&str]| {
        let mut cmd = binary(args, &config);
        cmd.env_remove("SKILL_TUNER_CLIENT_SECRET");
        cmd
    };

    let out = output(no_secret(&["history", "--json"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0]["id"], run_id);
    assert_eq!(runs[0]["mode"], "once");

    let out = output(no_secret(&["show", &run_id.to_string()])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("applied") && text.contains("why:"), "{text}");

    let csv = dir.path().join("audit.csv");
    let csv_arg = csv.display().to_string();
    let out = output(no_secret(&[
        "export", "--format", "csv", "--output", &csv_arg,
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = parse_csv(&std::fs::read_to_string(&csv).unwrap());
    assert_eq!(rows[0][0], "run_id");
    assert!(rows.len() > 1);

    // The org-facing commands need the secret (and get it).
    let out = output(no_secret(&["diff", &run_id.to_string()])).await;
    assert!(!out.status.success());
    let writes = sim.org().write_count();
    let out = output(binary(
        &["rollback", &run_id.to_string(), "--dry-run", "--json"],
        &config,
    ))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["dry_run"], true);
    assert!(!plan["restored"].as_array().unwrap().is_empty());
    assert_eq!(sim.org().write_count(), writes);
    let out = output(binary(&["diff", &run_id.to_string()], &config)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("still_applied"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_treats_an_unwritten_added_skill_as_not_applied() {
    let (sim, _settings, client) = start(10).await;
    let ledger = memory_ledger(&sim);
    let org = sim.org();
    let (agent, skill) = org
        .agent_ids()
        .into_iter()
        .find_map(|a| {
            let held: BTreeSet<String> = org.user_skills(&a).into_iter().map(|(s, _)| s).collect();
            let missing = org
                .skills()
                .into_iter()
                .find(|(id, _)| !held.contains(id))?;
            Some((a, missing.0))
        })
        .expect("an agent without some skill");
    let run_id = ledger.begin_run(RunMode::Once, "h", None).unwrap();
    let row = ChangeRecord {
        change_id: "add-1".into(),
        run_id,
        agent_id: agent,
        agent_name: "A".into(),
        skill_id: skill,
        skill_name: "S".into(),
        before: 0.0,
        after: 2.0,
        target: Some(2.0),
        score: None,
        reason: "added".into(),
        status: ChangeStatus::Planned,
        correlation_id: None,
        detail: None,
        workitem_id: None,
    };
    ledger.record_plan(std::slice::from_ref(&row)).unwrap();
    ledger.abandon_run(run_id);
    let report = reconcile_unfinished(&client, &ledger).await.unwrap();
    assert_eq!(report.closed[0].skipped, 1);
    assert_eq!(
        ledger.changes(run_id).unwrap()[0].status,
        ChangeStatus::Skipped
    );
    sim.shutdown().await;
}

/// A file ledger in `dir` holding one real `once` run; returns its path, the config file
/// for the binary, and the run's id.
async fn file_ledger_with_a_run(
    dir: &TempDir,
    sim: &Simulator,
    settings: &Settings,
    client: &GenesysClient,
) -> (std::path::PathBuf, std::path::PathBuf, i64) {
    let path = dir.path().join("ledger.db");
    let run_id = {
        let ledger = Ledger::open(&path).unwrap().with_clock(sim.clock());
        once(sim, client, settings, &ledger).await.0
    };
    let config = config_file(dir.path(), settings, &path);
    (path, config, run_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_refuses_a_ledger_that_would_not_persist() {
    let (sim, mut settings, _client) = start(10).await;
    for path in ["", ":memory:", "file::memory:", "file:ledger?mode=memory"] {
        let dir = TempDir::new("not-durable");
        settings.history.path = path.into();
        let config = dir.path().join("skill-tuner.toml");
        std::fs::write(&config, settings.to_toml()).unwrap();
        let out = output(binary(&["once"], &config)).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{path:?}: {stderr}");
        assert!(
            stderr.contains("`history.path`") && stderr.contains("outlives the process"),
            "{path:?}: {stderr}"
        );
        assert_eq!(sim.org().write_count(), 0, "{path:?}: the org was written");
    }
    // A directory passes validation (it is a plain path) and is refused when opened.
    let dir = TempDir::new("dir-ledger");
    let config = config_file(dir.path(), &settings, dir.path());
    let out = output(binary(&["once"], &config)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("`history.path`") && stderr.contains("is a directory"),
        "{stderr}"
    );
    assert_eq!(sim.org().write_count(), 0);
    sim.shutdown().await;
}

#[test]
fn a_foreign_sqlite_file_is_refused_and_left_untouched() {
    let dir = TempDir::new("foreign");
    let path = dir.path().join("crm.db");
    {
        let other = rusqlite::Connection::open(&path).unwrap();
        other
            .execute_batch(
                "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
                 INSERT INTO customers (name) VALUES ('Acme');",
            )
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    for result in [Ledger::open(&path), Ledger::open_read_only(&path)] {
        let err = result.unwrap_err();
        assert!(matches!(err, LedgerError::NotALedger { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(
            text.contains("not a skill-tuner ledger") && text.contains("customers"),
            "{text}"
        );
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file was written"
    );
    let wal = dir.path().join("crm.db-wal");
    assert!(
        !wal.exists(),
        "a WAL was started on another program's database"
    );
    let other = rusqlite::Connection::open(&path).unwrap();
    let mode: String = other
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_commands_work_where_the_wal_shared_memory_cannot_be_created() {
    let dir = TempDir::new("no-shm");
    let (sim, settings, client) = start(10).await;
    let (path, config, run_id) = file_ledger_with_a_run(&dir, &sim, &settings, &client).await;
    // What a read-only file system does to SQLite: the -shm file cannot be created. A
    // dangling symlink in its place does that even for root, whom permission bits and a
    // read-only chmod would not stop.
    let shm = dir.path().join("ledger.db-shm");
    assert!(!shm.exists(), "the last writer removes the -shm on close");
    std::os::unix::fs::symlink("/nonexistent-skill-tuner-dir/shm", &shm).unwrap();
    let before = std::fs::read(&path).unwrap();
    let run = run_id.to_string();
    for args in [
        vec!["history", "--json"],
        vec!["show", run.as_str()],
        vec!["export", "--format", "json"],
        vec!["diff", run.as_str(), "--json"],
    ] {
        let out = output(binary(&args, &config)).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains("immutable"), "{args:?}: {stderr}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
    let out = output(binary(&["history", "--json"], &config)).await;
    let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0]["id"], run_id);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "a reading command wrote"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_commands_do_not_take_the_write_lock() {
    let dir = TempDir::new("writer-busy");
    let (sim, settings, client) = start(10).await;
    let (path, config, run_id) = file_ledger_with_a_run(&dir, &sim, &settings, &client).await;
    // A writer (the daemon mid-cycle) holds the write lock for longer than the busy timeout.
    let writer = rusqlite::Connection::open(&path).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE;").unwrap();
    let run = run_id.to_string();
    for args in [
        vec!["history"],
        vec!["show", run.as_str()],
        vec!["export", "--format", "csv"],
    ] {
        let started = Instant::now();
        let out = output(binary(&args, &config)).await;
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{args:?} waited"
        );
    }
    writer.execute_batch("ROLLBACK;").unwrap();
    sim.shutdown().await;
}

/// A real read-only file system: the ledger's directory bind-mounted read-only in a private
/// mount namespace (`unshare -m`). Needs root with CAP_SYS_ADMIN; skipped (and said so)
/// where that is not available.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_commands_work_on_a_read_only_mount() {
    let probe = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", "mount --bind -o ro / /mnt"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: cannot bind-mount read-only here (needs unshare -m and mount)");
        return;
    }
    let dir = TempDir::new("ro-mount");
    let (sim, settings, client) = start(10).await;
    let (path, config, run_id) = file_ledger_with_a_run(&dir, &sim, &settings, &client).await;
    let before = std::fs::read(&path).unwrap();
    let d = dir.path().display().to_string();
    let script = format!(
        "mount --bind -o ro '{d}' '{d}' && ! touch '{d}/probe' 2>/dev/null && \"$0\" \"$@\""
    );
    let run = run_id.to_string();
    for args in [
        vec!["history", "--json"],
        vec!["show", run.as_str()],
        vec!["export", "--format", "csv"],
    ] {
        let cmd = binary(&args, &config);
        let program = cmd.get_program().to_owned();
        let all: Vec<std::ffi::OsString> = cmd.get_args().map(|a| a.to_owned()).collect();
        let mut wrapped = std::process::Command::new("unshare");
        wrapped
            .args(["-m", "sh", "-c", &script])
            .arg(program)
            .args(all);
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        wrapped
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let out = output(wrapped).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains("immutable"), "{args:?}: {stderr}");
        if args[0] == "history" {
            let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(runs[0]["id"], run_id);
        }
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
    sim.shutdown().await;
}

/// What an admin can type into a name: a terminal escape (clear screen), a bidi override, a
/// CR/LF that would start a forged log line, and a NUL.
fn hostile_name(i: usize) -> String {
    format!("Eve{i}\x1b[2J\u{202e}evil\r\nFORGED WARN line {i}\0")
}

/// No raw control or bidi character, and no line that a hostile name started.
fn assert_inert(place: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| c != '\n' && skill_tuner::text::needs_escape(c))
        .collect();
    assert!(bad.is_empty(), "{place}: raw {bad:?} in\n{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("FORGED")),
        "{place}: a forged line in\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_edited_names_cannot_forge_output_or_log_lines() {
    let dir = TempDir::new("hostile");
    let (sim, mut settings, _client) = start(20).await;
    for (i, id) in sim.org().agent_ids().iter().enumerate() {
        assert!(sim.org().set_agent_name(id, &hostile_name(i)));
    }
    // Every change is over the threshold, so every changed agent is named in the log.
    settings.alerts.threshold = 0.0;
    let path = dir.path().join("ledger.db");
    let config = config_file(dir.path(), &settings, &path);
    let secret = genesys_sim::SimConfig::default().client_secret;

    let out = output(binary_with_secret(&["once"], &config, &secret, "info")).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(r"\x1b[2J\u{202e}evi"), "{stdout}");
    assert!(stderr.contains("over-threshold change"), "{stderr}");
    assert!(stderr.contains(r"\nFORGED WARN line"), "{stderr}");
    assert_inert("once (table)", &stdout);
    assert_inert("once (log)", &stderr);

    let run_id = Ledger::open_read_only(&path)
        .unwrap()
        .recent_runs(1)
        .unwrap()[0]
        .id;
    let run = run_id.to_string();
    for args in [
        vec!["show", run.as_str()],
        vec!["diff", run.as_str()],
        vec!["history"],
    ] {
        let out = output(binary_with_secret(&args, &config, &secret, "info")).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if args[0] != "history" {
            assert!(
                stdout.contains(r"\r\nFORGED WARN line"),
                "{args:?}: {stdout}"
            );
        }
        assert_inert(&args.join(" "), &stdout);
        assert_inert(&args.join(" "), &String::from_utf8_lossy(&out.stderr));
    }
    // JSON keeps the name exactly (serde escapes it).
    let out = output(binary(&["show", &run, "--json"], &config)).await;
    let detail: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = detail["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["agent_name"].as_str())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("Eve") && n.contains('\u{202e}')),
        "{names:?}"
    );
    sim.shutdown().await;
}

#[test]
fn export_csv_neutralises_formula_cells_and_keeps_numbers() {
    let ledger = Ledger::in_memory().unwrap();
    let run_id = ledger.begin_run(RunMode::Once, "h", None).unwrap();
    let hostile = [
        (
            "=HYPERLINK(\"http://evil.example/\",\"click\")",
            "+cmd|' /C calc'!A0",
        ),
        ("-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0"),
        ("\t=1+1", "\r=1+1"),
    ];
    let rows: Vec<ChangeRecord> = hostile
        .iter()
        .enumerate()
        .map(|(i, (agent, skill))| ChangeRecord {
            change_id: format!("c{i}"),
            run_id,
            agent_id: format!("a{i}"),
            agent_name: agent.to_string(),
            skill_id: format!("s{i}"),
            skill_name: skill.to_string(),
            before: 2.0,
            after: 2.5,
            target: Some(3.0),
            score: None,
            reason: "=1+1".into(),
            status: ChangeStatus::Applied,
            correlation_id: None,
            detail: Some("-1".into()),
            workitem_id: None,
        })
        .collect();
    ledger.record_plan(&rows).unwrap();
    let mut csv = Vec::new();
    audit::export(&ledger, ExportFormat::Csv, &mut csv).unwrap();
    let table = parse_csv(&String::from_utf8(csv).unwrap());
    let col = |name: &str| table[0].iter().position(|h| h == name).unwrap();
    for (row, (agent, skill)) in table[1..].iter().zip(hostile) {
        assert_eq!(row[col("agent_name")], format!("'{agent}"));
        assert_eq!(row[col("skill_name")], format!("'{skill}"));
        assert_eq!(row[col("reason")], "'=1+1");
        assert_eq!(row[col("detail")], "'-1");
        for numeric in ["run_id", "before", "after", "target"] {
            let cell = &row[col(numeric)];
            assert!(cell.parse::<f64>().is_ok(), "{numeric} = {cell:?}");
        }
    }
    // Every text cell is inert: none starts with a formula character.
    for row in &table[1..] {
        for cell in row {
            let number = cell.parse::<f64>().is_ok();
            assert!(
                number || !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_from_before_triggers_is_migrated_and_lists_them() {
    let dir = TempDir::new("migrate");
    let path = dir.path().join("ledger.db");
    {
        // The first schema, as a ledger written by an older build holds it.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL,
                finished_at TEXT, mode TEXT NOT NULL, config_hash TEXT NOT NULL, outcome TEXT,
                summary TEXT, rollback_of INTEGER REFERENCES runs(id));
             CREATE TABLE changes (change_id TEXT NOT NULL, run_id INTEGER NOT NULL REFERENCES runs(id),
                agent_id TEXT NOT NULL, agent_name TEXT NOT NULL, skill_id TEXT NOT NULL,
                skill_name TEXT NOT NULL, before REAL NOT NULL, after REAL NOT NULL, target REAL,
                score TEXT, reason TEXT NOT NULL, status TEXT NOT NULL, correlation_id TEXT,
                detail TEXT, workitem_id TEXT, updated_at TEXT NOT NULL,
                PRIMARY KEY (run_id, change_id));
             INSERT INTO runs (started_at, finished_at, mode, config_hash, outcome) VALUES
                ('2027-05-10T02:00:00.000Z', '2027-05-10T02:01:00.000Z', 'once', 'h', 'ok'),
                ('2027-05-11T02:00:00.000Z', '2027-05-11T02:01:00.000Z', 'scheduled', 'h', 'ok');
             INSERT INTO runs (started_at, finished_at, mode, config_hash, outcome, rollback_of) VALUES
                ('2027-05-11T03:00:00.000Z', '2027-05-11T03:01:00.000Z', 'rollback', 'h', 'ok', 1);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    // Reading commands never migrate (they open the ledger read-only and say so); the next
    // writer does.
    let settings = Settings::from_toml_str("[genesys]\nclient_id = \"migrate-test\"\n").unwrap();
    let config = config_file(dir.path(), &settings, &path);
    let refused = output(binary(&["history", "--json"], &config)).await;
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("has schema 1, this build reads 4"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    drop(Ledger::open(&path).unwrap());
    let out = output(binary(&["history", "--json"], &config)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let by_id: BTreeMap<i64, (&str, &Value)> = runs
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                (r["mode"].as_str().unwrap(), &r["trigger"]),
            )
        })
        .collect();
    assert_eq!(by_id[&1], ("once", &Value::from("once")), "{runs:?}");
    // What started an old scheduled run was not recorded: unknown, not guessed.
    assert_eq!(by_id[&2], ("scheduled", &Value::Null), "{runs:?}");
    assert_eq!(
        by_id[&3],
        ("rollback", &Value::from("rollback")),
        "{runs:?}"
    );
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);
}

/// SIGTERM (or Ctrl-C) during `once`: the writes on the wire finish, nothing new is sent,
/// the run is recorded `interrupted` with every row settled, and the exit code is 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_once_stops_it_gracefully() {
    let dir = TempDir::new("once-term");
    let ledger_path = dir.path().join("ledger.db");
    let (sim, mut settings, _client) = start(60).await;
    settings.genesys.max_concurrency = 2;
    let config = config_file(dir.path(), &settings, &ledger_path);
    sim.faults()
        .latency_for("routingskills/bulk", Duration::from_millis(250));
    let child = binary(&["once"], &config).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while sim.org().write_count() < 2 {
        assert!(Instant::now() < deadline, "no writes seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-s", "TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("stopping"), "{stderr}");
    let ledger = Ledger::open(&ledger_path).unwrap();
    assert!(ledger.unfinished_runs().unwrap().is_empty());
    let run = &ledger.recent_runs(1).unwrap()[0];
    assert_eq!(run.outcome, Some(RunOutcome::Interrupted));
    let rows = ledger.changes(run.id).unwrap();
    assert!(
        rows.iter().all(|r| r.status != ChangeStatus::Planned),
        "{rows:?}"
    );
    let applied = rows
        .iter()
        .filter(|r| r.status == ChangeStatus::Applied)
        .count();
    assert!(
        applied >= 1 && applied < rows.len(),
        "{applied} of {}",
        rows.len()
    );
    for r in rows.iter().filter(|r| r.status == ChangeStatus::Applied) {
        assert_eq!(org_value(&sim, r), Some(r.after));
    }
    sim.shutdown().await;
}
