//! One writer per org: the ledger's daemon lock (one daemon per ledger) and write lock (one
//! writer to the org at a time: a daemon's cycle, `once`, `rollback`), through the real
//! binary against the in-process simulator; and the second-writer hint for two tuners with
//! ledgers of their own, which no lock can see.
//!
//! Built for a loaded 2-core machine: every wait polls with a generous deadline.

use crate::common;

use common::binary::{binary, output};
use common::capture::Capture;
use common::sim::{memory_ledger, other_than, skill_id, start_sim};
use common::{cycles_total, metric, Daemon, TempDir};
use genesys_sim::{SimConfig, Simulator};
use serde_json::Value;
use skill_tuner::config::{OnConflict, Settings};
use skill_tuner::cycle::{run_cycle, Mode, StopSignal};
use skill_tuner::demo::{settings_for, sim_secret};
use skill_tuner::history::{ChangeStatus, Ledger, RunMode};
use skill_tuner::runtime;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// A 60-agent org with 4 skills.
async fn sim_60() -> Simulator {
    start_sim(60, |c| c.skills = 4).await
}

/// A config for `sim` with its ledger at `ledger`; `daemon` and `extra` are raw TOML
/// appended to the `[daemon]` section and the end.
fn config_text(sim: &Simulator, ledger: &Path, daemon: &str, extra: &str) -> String {
    format!(
        r#"
[genesys]
api_base_url = "{base}"
login_base_url = "{base}"
client_id = "{id}"
rate_limit_per_minute = 6000
burst = 50
max_concurrency = 2

[breaker]
max_changed_share = 1.0
min_data_share = 0.0
max_demotion_share = 1.0

[history]
path = "{ledger}"

[daemon]
shutdown_grace_secs = 30
schedule = "0 0 2 * * *"
{spacing}
{daemon}

{extra}
"#,
        base = sim.base_url(),
        id = SimConfig::default().client_id,
        ledger = ledger.display(),
        // Tests start cycles back to back.
        spacing = if daemon.contains("min_spacing_secs") {
            ""
        } else {
            "min_spacing_secs = 0"
        },
    )
}

/// `config` written to `dir` for the one-shot commands.
fn config_file(dir: &Path, config: &str) -> PathBuf {
    let path = dir.join("once.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The two lock files beside a ledger (the on-disk protocol: an OS advisory lock on the
/// file, and the holder's JSON line in it).
#[derive(Clone, Copy)]
enum LockKind {
    Daemon,
    Write,
}

fn lock_file(ledger: &Path, kind: LockKind) -> PathBuf {
    let suffix = match kind {
        LockKind::Daemon => ".daemon.lock",
        LockKind::Write => ".write.lock",
    };
    PathBuf::from(format!("{}{suffix}", ledger.display()))
}

/// The holder line in a lock file.
fn holder(ledger: &Path, kind: LockKind) -> Value {
    let path = lock_file(ledger, kind);
    let line = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("{} holds {line:?}: {e}", path.display()))
}

fn holder_pid(ledger: &Path, kind: LockKind) -> String {
    holder(ledger, kind)["pid"].to_string()
}

/// Holds a lock as another skill-tuner would: the file locked, the holder line in it.
fn hold(ledger: &Path, kind: LockKind, what: &str) -> std::fs::File {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(lock_file(ledger, kind))
        .unwrap();
    file.try_lock().unwrap();
    let line = serde_json::json!({
        "pid": std::process::id(),
        "host": "test-host",
        "since": "2027-05-12T12:00:00.000Z",
        "what": what,
    });
    writeln!(file, "{line}").unwrap();
    file
}

fn assert_refused_by(out: &Output, pid: &str, what: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "stderr:\n{stderr}");
    for needle in [
        format!("pid {pid} on host "),
        "since 2027-05-12T".to_string(),
        what.to_string(),
    ] {
        assert!(stderr.contains(&needle), "no {needle:?} in:\n{stderr}");
    }
}

/// Waits until the simulator has taken `n` bulk writes in all.
async fn wait_for_writes(sim: &Simulator, n: u64, d: &mut Daemon) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.org().write_count() < n {
        assert!(Instant::now() < deadline, "no write; logs:\n{}", d.logs());
        assert!(d.alive(), "daemon died:\n{}", d.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_ledger_exits_5_naming_the_first() {
    let sim = sim_60().await;
    let (dir_a, dir_b) = (TempDir::new("daemon-a"), TempDir::new("daemon-b"));
    let ledger = dir_a.path().join("ledger.db");
    let mut a = Daemon::spawn(dir_a.path(), &config_text(&sim, &ledger, "", ""), &[]);
    a.wait_ready().await;

    let mut b = Daemon::spawn(dir_b.path(), &config_text(&sim, &ledger, "", ""), &[]);
    let status = b.wait_exit(30).await;
    let logs = b.logs();
    assert_eq!(status.code(), Some(5), "logs:\n{logs}");
    for needle in [
        "another skill-tuner daemon already runs on the history ledger",
        &format!("pid {} on host ", a.pid()),
        "since 2027-05-12T",
        "One daemon per org and ledger",
    ] {
        assert!(logs.contains(needle), "no {needle:?} in:\n{logs}");
    }
    assert!(
        b.get("/healthz").await.is_none(),
        "the refused daemon never served"
    );
    // The first one is untouched: still running, still ready, still the holder.
    assert!(a.alive(), "{}", a.logs());
    a.wait_ready().await;
    let line = holder(&ledger, LockKind::Daemon);
    assert_eq!(line["pid"].to_string(), a.pid());
    assert_eq!(line["what"], "daemon");
    assert!(
        line["since"].as_str().unwrap().starts_with("2027-05-12T"),
        "from the injected clock: {line}"
    );
    a.signal("TERM");
    assert_eq!(a.wait_exit(30).await.code(), Some(0), "{}", a.logs());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_and_rollback_run_while_the_daemon_idles_and_exit_5_mid_cycle() {
    let sim = sim_60().await;
    let dir = TempDir::new("mid-cycle");
    let ledger = dir.path().join("ledger.db");
    let config = config_text(&sim, &ledger, "", "");
    let once_config = config_file(dir.path(), &config);
    let mut d = Daemon::spawn(dir.path(), &config, &[]);
    d.wait_ready().await;

    // The daemon idles: a person may write.
    let out = output(binary(&["once", "--json"], &once_config)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let once_run = report["run_id"].as_i64().unwrap();
    let out = output(binary(
        &["rollback", &once_run.to_string(), "--json"],
        &once_config,
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let runs_before = Ledger::open_read_only(&ledger)
        .unwrap()
        .recent_runs(50)
        .unwrap()
        .len();
    assert_eq!(runs_before, 2);

    // Slow writes, two at a time: the daemon's cycle is mid-apply for seconds.
    sim.faults()
        .latency_for("routingskills/bulk", Duration::from_millis(600));
    let writes = sim.org().write_count();
    d.signal("USR1");
    wait_for_writes(&sim, writes + 1, &mut d).await;

    let started = Instant::now();
    let out = output(binary(&["once"], &once_config)).await;
    assert_refused_by(&out, &d.pid(), "scheduled cycle");
    let line = holder(&ledger, LockKind::Write);
    assert_eq!(line["pid"].to_string(), d.pid());
    assert_eq!(line["what"], "scheduled cycle (signal)");
    assert!(
        text(&out.stderr).contains("another skill-tuner is writing to the org"),
        "{}",
        text(&out.stderr)
    );
    let out = output(binary(&["rollback", &once_run.to_string()], &once_config)).await;
    assert_refused_by(&out, &d.pid(), "scheduled cycle");
    // Refused at once, not after waiting for the cycle.
    assert!(
        d.get("/metrics")
            .await
            .is_some_and(|(_, m)| metric(&m, "skill_tuner_cycle_running") == Some(1.0)),
        "the cycle ended before the refusals were checked ({:?}); logs:\n{}",
        started.elapsed(),
        d.logs()
    );
    // Neither refused command recorded a run.
    let runs = Ledger::open_read_only(&ledger)
        .unwrap()
        .recent_runs(50)
        .unwrap();
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert_eq!(runs[0].mode, RunMode::Scheduled);

    sim.faults()
        .latency_for("routingskills/bulk", Duration::ZERO);
    d.wait_metrics("the daemon's cycle done", 60, |m| cycles_total(m) >= 1.0)
        .await;
    // Idle again: `once` runs.
    let out = output(binary(&["once"], &once_config)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    d.signal("TERM");
    assert_eq!(d.wait_exit(30).await.code(), Some(0), "{}", d.logs());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_cycle_never_blocks_the_next_start_or_once() {
    let sim = sim_60().await;
    let (dir_a, dir_b) = (TempDir::new("kill-a"), TempDir::new("kill-b"));
    let ledger = dir_a.path().join("ledger.db");
    sim.faults()
        .latency_for("routingskills/bulk", Duration::from_millis(400));
    let mut a = Daemon::spawn(
        dir_a.path(),
        &config_text(&sim, &ledger, "run_on_start = true", ""),
        &[],
    );
    wait_for_writes(&sim, 1, &mut a).await;
    // Both locks held, both naming it.
    assert_eq!(holder_pid(&ledger, LockKind::Daemon), a.pid());
    assert_eq!(holder_pid(&ledger, LockKind::Write), a.pid());
    a.child.kill().unwrap(); // SIGKILL: no clean-up of any kind
    a.child.wait().unwrap();
    sim.faults()
        .latency_for("routingskills/bulk", Duration::ZERO);

    let config = config_text(&sim, &ledger, "", "");
    let mut b = Daemon::spawn(dir_b.path(), &config, &[]);
    b.wait_ready().await;
    assert!(b.alive(), "{}", b.logs());
    assert_eq!(
        holder_pid(&ledger, LockKind::Daemon),
        b.pid(),
        "the dead daemon's line is overwritten"
    );
    // The write lock still names the dead daemon, and blocks nobody.
    assert_eq!(holder_pid(&ledger, LockKind::Write), a.pid());
    let out = output(binary(&["once"], &config_file(dir_b.path(), &config))).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("reconciled runs left unfinished by an interruption"),
        "{stderr}"
    );
    b.signal("TERM");
    assert_eq!(b.wait_exit(30).await.code(), Some(0), "{}", b.logs());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_the_reading_commands_run_while_the_locks_are_held() {
    let sim = sim_60().await;
    let dir = TempDir::new("readers");
    let ledger = dir.path().join("ledger.db");
    let config = config_file(dir.path(), &config_text(&sim, &ledger, "", ""));
    let out = output(binary(&["once"], &config)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // This test process plays a daemon mid-cycle: it holds both locks.
    let _daemon = hold(&ledger, LockKind::Daemon, "daemon");
    let _write = hold(&ledger, LockKind::Write, "scheduled cycle");
    let pid = std::process::id().to_string();
    for args in [
        &["plan"][..],
        &["history"],
        &["show", "1"],
        &["diff", "1"],
        &["export", "--format", "json"],
        &["rollback", "1", "--dry-run"],
    ] {
        let out = output(binary(args, &config)).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = output(binary(&["once"], &config)).await;
    assert_refused_by(&out, &pid, "scheduled cycle");
    let out = output(binary(&["rollback", "1"], &config)).await;
    assert_refused_by(&out, &pid, "scheduled cycle");
    sim.shutdown().await;
}

/// Two daemons, each with a ledger of its own, on one org: the second one's cycle read the
/// roster before the first one's writes and re-reads after them, so every skill it meant to
/// change already holds exactly its planned value. It must say so, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_tuner_with_its_own_ledger_is_warned_about() {
    let sim = sim_60().await;
    let (dir_a, dir_b) = (TempDir::new("tuner-a"), TempDir::new("tuner-b"));
    // One analytics query per cycle, and it is slow: tuner B waits there, roster in hand.
    let extra = "[metrics]\nevaluations = false";
    sim.faults()
        .latency_for("/analytics/", Duration::from_secs(14));
    let mut b = Daemon::spawn(
        dir_b.path(),
        &config_text(
            &sim,
            &dir_b.path().join("ledger.db"),
            "run_on_start = true",
            extra,
        ),
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.counters().count("GET", "/api/v2/users") == 0 {
        assert!(Instant::now() < deadline, "no roster read:\n{}", b.logs());
        assert!(b.alive(), "{}", b.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // B's analytics query is on its way (and held for 14 s); A's is not held.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sim.faults().latency_for("/analytics/", Duration::ZERO);
    let started = Instant::now();
    let config_a = config_file(
        dir_a.path(),
        &config_text(&sim, &dir_a.path().join("ledger.db"), "", extra),
    );
    let out = output(binary(&["once", "--json"], &config_a)).await;
    let stderr_a = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr_a}");
    let report_a: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report_a["conflicts"], 0, "A ran first");
    let written = sim.org().write_count();
    assert!(written >= 5, "A changed too little to test: {report_a}");
    assert!(!stderr_a.contains("another tuner"), "{stderr_a}");
    assert!(
        b.get("/metrics")
            .await
            .is_some_and(|(_, m)| cycles_total(&m) == 0.0),
        "B's cycle ended before A's writes ({:?}): the race this test sets up did not happen",
        started.elapsed()
    );

    let m = b
        .wait_metrics("B's cycle done", 60, |m| cycles_total(m) >= 1.0)
        .await;
    let conflicts = metric(&m, "skill_tuner_conflicts_total").unwrap_or(0.0);
    let matching = metric(&m, "skill_tuner_conflicts_matching_policy_total").unwrap_or(-1.0);
    assert!(conflicts >= 5.0, "{m}");
    assert_eq!(matching, conflicts, "{m}");
    assert_eq!(sim.org().write_count(), written, "B wrote nothing over A");
    let logs = b.logs();
    assert_eq!(
        logs.matches("another tuner (a second skill-tuner with its own ledger?)")
            .count(),
        1,
        "one warning for the cycle:\n{logs}"
    );
    let ledger_b = Ledger::open_read_only(&dir_b.path().join("ledger.db")).unwrap();
    let run = ledger_b.recent_runs(1).unwrap().remove(0);
    let summary = run.summary.unwrap();
    assert_eq!(
        summary["conflicts_matching_policy"].as_f64(),
        Some(conflicts),
        "{summary}"
    );
    b.signal("TERM");
    assert_eq!(b.wait_exit(30).await.code(), Some(0), "{}", b.logs());
    sim.shutdown().await;
}

/// An in-process cycle where people (played by the simulator's edit faults) set some
/// skills to exactly the policy's own value and others to something else.
async fn cycle_with_edits(
    on_conflict: OnConflict,
    matching: usize,
    other: usize,
) -> (Value, String) {
    let sim = start_sim(150, |_| {}).await;
    let mut settings: Settings = settings_for(&sim, 0);
    settings.breaker.max_changed_share = 1.0;
    settings.apply.on_conflict = on_conflict;
    let client = runtime::client_with_secret(&settings, sim_secret(), &sim.clock()).unwrap();
    runtime::start_client(&client, &settings).await.unwrap();
    let ledger = memory_ledger(&sim);
    let (stop, clock) = (StopSignal::default(), sim.clock());
    let run = |mode| run_cycle(&client, &settings, &ledger, mode, &stop, &clock);
    let plan = run(Mode::Plan).await.unwrap();
    // With re-plan, the policy's own value is its target (a person at the planned step
    // would just be moved on); without, the planned value.
    let own = |c: &skill_tuner::cycle::report::ChangeLine| match on_conflict {
        OnConflict::Skip => Some(c.proposed),
        OnConflict::Replan => c.target.filter(|t| (t - c.current).abs() > 1e-6),
    };
    let candidates: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| c.status == ChangeStatus::Planned && own(c).is_some())
        .collect();
    assert!(candidates.len() >= matching + other, "{}", candidates.len());
    for c in &candidates[..matching] {
        let value = own(c).unwrap();
        sim.faults()
            .edit_on_next_read(&c.agent_id, &skill_id(&sim, &c.skill), value);
    }
    for c in &candidates[matching..matching + other] {
        let value = other_than(c.current, own(c).unwrap());
        sim.faults()
            .edit_on_next_read(&c.agent_id, &skill_id(&sim, &c.skill), value);
    }
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "skill_tuner::cycle=warn",
        ))
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    let report = {
        let _guard = tracing::subscriber::set_default(subscriber);
        run(Mode::Once).await.unwrap()
    };
    let summary = ledger.run(report.run_id).unwrap().summary.unwrap();
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["conflicts_matching_policy"],
        summary["conflicts_matching_policy"]
    );
    sim.shutdown().await;
    (json, capture.text())
}

const WARNING: &str = "conflicts found exactly the value this policy would have written";

#[tokio::test]
async fn conflicts_at_the_policys_own_value_are_counted_and_warned_about_once() {
    let (report, logs) = cycle_with_edits(OnConflict::Skip, 6, 2).await;
    assert_eq!(report["conflicts"], 8, "{report}");
    assert_eq!(report["conflicts_matching_policy"], 6, "{report}");
    assert_eq!(logs.matches(WARNING).count(), 1, "{logs}");
    assert!(logs.contains("6 of this cycle's 8 conflicts"), "{logs}");

    // Too few to say: four people who agreed with the policy are just people.
    let (report, logs) = cycle_with_edits(OnConflict::Skip, 4, 0).await;
    assert_eq!(report["conflicts_matching_policy"], 4, "{report}");
    assert!(!logs.contains(WARNING), "{logs}");
}

#[tokio::test]
async fn with_replan_a_conflict_at_the_policys_target_counts() {
    let (report, logs) = cycle_with_edits(OnConflict::Replan, 5, 0).await;
    assert_eq!(report["conflicts"], 5, "{report}");
    assert_eq!(report["conflicts_matching_policy"], 5, "{report}");
    assert_eq!(logs.matches(WARNING).count(), 1, "{logs}");
}

#[test]
fn guard_second_writer_warn_share_is_a_checked_setting() {
    const ID: &str = "[genesys]\nclient_id = \"c\"\n";
    let s =
        Settings::from_toml_str(&format!("{ID}[guard]\nsecond_writer_warn_share = 0.8\n")).unwrap();
    assert!(
        s.to_toml()
            .contains("[guard]\nsecond_writer_warn_share = 0.8\n"),
        "{}",
        s.to_toml()
    );
    assert!(Settings::default()
        .to_toml()
        .contains("[guard]\nsecond_writer_warn_share = 0.5\n"));
    let err = Settings::from_toml_str(&format!("{ID}[guard]\nsecond_writer_warn_share = 1.5\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`guard.second_writer_warn_share`") && err.contains("from 0 to 1"),
        "{err}"
    );
}
