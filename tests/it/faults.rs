//! The fault suite: every fault the embedded simulator can inject, first each in
//! isolation and then all together in one cycle, through the real `run_cycle` with a file
//! ledger (and, for kill -9 and the daemon's signals, through the real binary).
//!
//! After each scenario the same invariants are checked against the simulator's org:
//! - no change lost or applied twice: every change row of the run agrees with the org
//!   (applied ⇒ the org holds `after`; conflict ⇒ it holds the person's value; skipped or
//!   failed ⇒ it holds `before`), and the org saw exactly one successful bulk write per
//!   agent with an applied row;
//! - no human edit overwritten: every injected edit is still in the org afterwards;
//! - every fault is visible: in the client's counters (the report's `api` block) matching
//!   the simulator's, and in the captured logs where the code logs it.
//!
//! Each scenario is a test of its own, runnable by name (`cargo test --test it
//! faults::retry_after_429`); all of them share the rig, the checks and the runner [`run`].
//! A scenario collects its problems in a [`Tally`] instead of panicking, so its row is
//! printed whatever it found; the runner then fails the test on any problem.
//!
//! The summary is kept without running anything twice: every scenario test prints its own
//! row, and the test that completes the table ([`SCENARIOS`], in whatever order they finish)
//! also prints the totals line `faults: N injected, N survived, 0 lost, 0 overwritten` and
//! checks that enough faults fired in all. `cargo test --test it faults:: -- --nocapture`
//! shows the table; a single scenario run alone shows its row only.
//!
//! The daemon's scenarios (SIGHUP with a broken config, SIGTERM mid-cycle, login down at
//! start-up) drive the real `skill-tuner run` binary with the helpers shared with the daemon
//! tests (`common`), check the same invariants on its ledger, and find the fault in its
//! `/metrics` and its log file.

use crate::common;

use common::binary::{binary, config_file, output};
use common::capture::Capture;
use common::sim::{applied_agents, cycle, memory_ledger, other_than, skill_id, start_sim};
use common::{api_calls_with_status, cycles_total, metric, metric_or_zero, Daemon, TempDir};
use futures_util::FutureExt;
use genesys_sim::{Faults, Simulator};
use serde_json::Value;
use skill_tuner::config::Settings;
use skill_tuner::cycle::report::{ChangeLine, CycleReport};
use skill_tuner::cycle::Mode;
use skill_tuner::demo::sim_secret;
use skill_tuner::genesys::GenesysClient;
use skill_tuner::history::{ChangeRecord, ChangeStatus, Ledger, RunOutcome};
use skill_tuner::runtime;
use std::collections::BTreeSet;
use std::future::Future;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

const BULK: &str = "/api/v2/users/{id}/routingskills/bulk";

// ---------------------------------------------------------------- the scenarios, one test each

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_429() {
    run("429 storm", storm_429()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_5xx() {
    run("5xx burst", burst_5xx()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_spike_and_timeouts() {
    run("latency spike and timeouts", latency_and_timeouts()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_revoked_mid_cycle() {
    run("token revoked mid-cycle", token_revoked()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_truncated_bodies() {
    run("malformed and truncated bodies", malformed_bodies()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_edits_between_read_and_write() {
    run("human edits between read and write", human_edits()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_apply_and_restart() {
    run("kill -9 mid-apply and restart", kill_9_mid_apply()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_faults_in_one_cycle() {
    run("all faults in one cycle", everything_at_once()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_config() {
    run("SIGHUP with a broken config", sighup_broken_config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_cycle() {
    run("SIGTERM mid-cycle", sigterm_mid_apply()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_down_at_start_up() {
    run("login down at start-up", login_down_at_start()).await;
}

/// Every scenario's name: the totals line is printed once all of them have a row.
const SCENARIOS: [&str; 11] = [
    "429 storm",
    "5xx burst",
    "latency spike and timeouts",
    "token revoked mid-cycle",
    "malformed and truncated bodies",
    "human edits between read and write",
    "kill -9 mid-apply and restart",
    "all faults in one cycle",
    "SIGHUP with a broken config",
    "SIGTERM mid-cycle",
    "login down at start-up",
];

// ---------------------------------------------------------------- tally, runner and summary

/// What one scenario did and found. Problems are collected, not panicked on, so the row is
/// printed even when a scenario breaks an invariant.
#[derive(Debug, Default)]
struct Tally {
    /// Set by [`run`].
    name: &'static str,
    /// Fault events that actually fired (counted where they are observable).
    injected: u64,
    /// Change rows whose ledger status disagrees with the org, or writes made twice.
    lost: u64,
    /// People's edits no longer in the org.
    overwritten: u64,
    problems: Vec<String>,
}

impl Tally {
    fn require(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.problems.push(what.into());
        }
    }

    fn survived(&self) -> u64 {
        if self.problems.is_empty() {
            self.injected
        } else {
            0
        }
    }
}

/// The rows of the scenarios finished so far in this process, and when the first started.
struct Table {
    rows: Vec<Tally>,
    started: Option<Instant>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    rows: Vec::new(),
    started: None,
});

fn table() -> std::sync::MutexGuard<'static, Table> {
    // The lock is never held across a panic, but a poisoned table still holds whole rows.
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs one scenario with its own captured logs, prints its row (and, if it completes the
/// table, the totals), and fails the test on any problem it found. A panic in the scenario (a
/// broken setup) is one of its problems, so its row is not lost.
///
/// Not `Send`: `run_cycle`'s future is not provably `Send` (a higher-ranked lifetime in its
/// write stream), so a scenario runs inline on its test's task.
async fn run(name: &'static str, scenario: impl Future<Output = Tally>) {
    assert!(SCENARIOS.contains(&name), "{name:?} is not in SCENARIOS");
    install_log_router();
    let t0 = Instant::now();
    table().started.get_or_insert(t0);
    let outcome = SCENARIO_LOGS
        .scope(
            Capture::default(),
            AssertUnwindSafe(scenario).catch_unwind(),
        )
        .await;
    let mut tally = outcome.unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Tally {
            problems: vec![format!("panicked: {text}")],
            ..Tally::default()
        }
    });
    tally.name = name;
    eprintln!(
        "  {:<36} {:>3} injected  {:>2} lost  {:>2} overwritten  {:>5} ms  {}",
        tally.name,
        tally.injected,
        tally.lost,
        tally.overwritten,
        t0.elapsed().as_millis(),
        if tally.problems.is_empty() {
            "ok".to_string()
        } else {
            format!("PROBLEMS: {:?}", tally.problems)
        }
    );
    let (problems, lost, overwritten, injected) = (
        tally.problems.clone(),
        tally.lost,
        tally.overwritten,
        tally.injected,
    );
    let totals = {
        let mut table = table();
        table.rows.push(tally);
        let complete = SCENARIOS
            .iter()
            .all(|n| table.rows.iter().any(|t| t.name == *n));
        complete.then(|| totals(&table))
    };
    assert!(problems.is_empty(), "{name}: {problems:#?}");
    assert_eq!(lost, 0);
    assert_eq!(overwritten, 0);
    assert!(
        injected >= 1,
        "{name}: no fault fired, which proves nothing"
    );
    // The scenario that completed the table checks the totals when every row is clean; a
    // scenario with problems fails its own test.
    if let Some((injected, survived, all_clean)) = totals {
        if all_clean {
            assert_eq!(survived, injected);
            assert!(
                injected >= 40,
                "too few faults fired to prove anything: {injected}"
            );
        }
    }
}

/// Prints the totals line over every scenario's row; returns (injected, survived, whether
/// every row is clean).
fn totals(table: &Table) -> (u64, u64, bool) {
    let rows = &table.rows;
    let injected: u64 = rows.iter().map(|t| t.injected).sum();
    let survived: u64 = rows.iter().map(Tally::survived).sum();
    let lost: u64 = rows.iter().map(|t| t.lost).sum();
    let overwritten: u64 = rows.iter().map(|t| t.overwritten).sum();
    println!(
        "faults: {injected} injected, {survived} survived, {lost} lost, {overwritten} overwritten"
    );
    if let Some(started) = table.started {
        eprintln!(
            "fault scenarios took {} ms from the first start to the last end",
            started.elapsed().as_millis()
        );
    }
    (
        injected,
        survived,
        rows.iter().all(|t| t.problems.is_empty()),
    )
}

// ---------------------------------------------------------------- captured logs

tokio::task_local! {
    /// The captured logs of the scenario this task is running.
    static SCENARIO_LOGS: Capture;
}

/// Everything the library logs (debug and up) in the running scenario, for the "visible in
/// the logs" checks.
fn logs() -> Capture {
    SCENARIO_LOGS.with(Capture::clone)
}

/// Installs, once per process, the global subscriber that hands each event to the capture of
/// the scenario whose task emitted it ([`SCENARIO_LOGS`]). Scenarios run beside each other
/// and beside the rest of this binary's tests, so one shared capture would mix their logs;
/// an event from elsewhere (another test, a task a scenario spawned) is dropped, so a check
/// can miss a line but never find another test's.
fn install_log_router() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(LogRouter))
            .expect("the fault scenarios own this binary's global tracing subscriber");
    });
}

struct LogRouter;

impl LogRouter {
    /// What the scenarios read: `skill_tuner=debug,genesys_sim=warn`.
    fn wanted(meta: &Metadata<'_>) -> bool {
        let target = meta.target();
        meta.is_event()
            && ((target.starts_with("skill_tuner") && *meta.level() <= Level::DEBUG)
                || (target.starts_with("genesys_sim") && *meta.level() <= Level::WARN))
    }
}

impl<S: Subscriber> Layer<S> for LogRouter {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        // Sometimes: whether an event is captured depends on the task that emits it.
        if Self::wanted(meta) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }

    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        Self::wanted(meta) && SCENARIO_LOGS.try_with(|_| ()).is_ok()
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let _ = SCENARIO_LOGS.try_with(|capture| {
            let meta = event.metadata();
            let mut line = LogLine(format!("{} {}:", meta.level(), meta.target()));
            event.record(&mut line);
            line.0.push('\n');
            let _ = capture.clone().write_all(line.0.as_bytes());
        });
    }
}

/// One event as text: the message, then every field as `name=value`.
struct LogLine(String);

impl tracing::field::Visit for LogLine {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let _ = match field.name() {
            "message" => write!(self.0, " {value:?}"),
            name => write!(self.0, " {name}={value:?}"),
        };
    }
}

fn expect_log(t: &mut Tally, needle: &str) {
    let text = logs().text();
    t.require(
        text.contains(needle),
        format!("no log line containing {needle:?}"),
    );
}

// ---------------------------------------------------------------- the rig

struct Rig {
    sim: Simulator,
    settings: Settings,
    client: GenesysClient,
    ledger: Ledger,
    _dir: TempDir,
}

/// Settings that let a cycle apply its plan, retry fast, and alert nobody.
fn relaxed(sim: &Simulator) -> Settings {
    let mut s = common::sim::relaxed(sim);
    s.genesys.max_concurrency = 4;
    s.genesys.request_timeout_secs = 5;
    s.genesys.retry.base_delay_ms = 20;
    s.genesys.retry.max_delay_ms = 200;
    s
}

async fn rig(tag: &str, agents: usize) -> Rig {
    let sim = start_sim(agents, |c| c.seed = 7).await;
    let settings = relaxed(&sim);
    rig_with(tag, sim, settings).await
}

async fn rig_with(tag: &str, sim: Simulator, settings: Settings) -> Rig {
    let client = runtime::client_with_secret(&settings, sim_secret(), &sim.clock()).unwrap();
    runtime::start_client(&client, &settings).await.unwrap();
    let dir = TempDir::new(tag);
    let ledger = Ledger::open(&dir.path().join("ledger.db"))
        .unwrap()
        .with_clock(sim.clock());
    Rig {
        sim,
        settings,
        client,
        ledger,
        _dir: dir,
    }
}

impl Rig {
    /// The changes a `once` would make now (a dry run on a throw-away ledger).
    async fn preview(&self) -> Vec<ChangeLine> {
        let scratch = memory_ledger(&self.sim);
        let report = cycle(
            &self.sim,
            &self.client,
            &self.settings,
            &scratch,
            Mode::Plan,
        )
        .await
        .unwrap();
        report
            .changes
            .into_iter()
            .filter(|c| c.status == ChangeStatus::Planned)
            .collect()
    }

    async fn once(&self) -> Result<CycleReport, skill_tuner::cycle::CycleError> {
        cycle(
            &self.sim,
            &self.client,
            &self.settings,
            &self.ledger,
            Mode::Once,
        )
        .await
    }

    /// Runs `once` while `act` fires on the faults as soon as the org has seen `writes`
    /// successful bulk writes (mid-apply). Returns the report and whether `act` fired.
    async fn once_with_mid_apply(
        &self,
        writes: u64,
        act: impl FnOnce(&Faults),
    ) -> (Result<CycleReport, skill_tuner::cycle::CycleError>, bool) {
        let done = AtomicBool::new(false);
        let base = self.sim.org().write_count();
        let cycle = async {
            let r = self.once().await;
            done.store(true, Ordering::SeqCst);
            r
        };
        let trigger = async {
            while !done.load(Ordering::SeqCst) {
                if self.sim.org().write_count() >= base + writes {
                    act(self.sim.faults());
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            false
        };
        tokio::join!(cycle, trigger)
    }
}

/// Ends the latency spike on `path` as soon as the client has seen a request time out (or
/// after 15 s), so the retry finds a healthy server however slow this machine is.
async fn spike_until_a_timeout(r: &Rig, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while r.client.stats().retries_timeout == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    r.sim.faults().latency_for(path, Duration::ZERO);
}

/// A person's edit: (agent, skill id, value).
type Edit = (String, String, f64);

/// Distinct agents' first planned change each.
fn one_per_agent(plan: &[ChangeLine]) -> Vec<ChangeLine> {
    let mut seen = BTreeSet::new();
    plan.iter()
        .filter(|c| seen.insert(c.agent_id.clone()))
        .cloned()
        .collect()
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-6)
}

/// The invariants shared by every scenario, for the change rows of `rows`, given the org's
/// successful bulk writes since the run began and the edits people made.
fn check_rows(
    t: &mut Tally,
    sim: &Simulator,
    rows: &[ChangeRecord],
    successful_writes: u64,
    edits: &[Edit],
) {
    let org = sim.org();
    let edit_of = |c: &ChangeRecord| {
        edits
            .iter()
            .find(|(a, s, _)| a == &c.agent_id && s == &c.skill_id)
            .map(|e| e.2)
    };
    for c in rows {
        let now = org.proficiency(&c.agent_id, &c.skill_id);
        let ok = match c.status {
            ChangeStatus::Applied => close(now, c.after) && edit_of(c).is_none(),
            ChangeStatus::Conflict => match edit_of(c) {
                Some(v) => close(now, v),
                None => !close(now, c.before) && !close(now, c.after),
            },
            ChangeStatus::Skipped | ChangeStatus::Failed => close(now, c.before),
            other => {
                t.problems.push(format!("unsettled row {other:?}: {c:?}"));
                t.lost += 1;
                continue;
            }
        };
        if !ok {
            t.lost += 1;
            t.problems.push(format!(
                "ledger says {:?} but the org holds {now:?}: {}/{} {} → {}",
                c.status, c.agent_id, c.skill_id, c.before, c.after
            ));
        }
    }
    for (agent, skill, value) in edits {
        let now = org.proficiency(agent, skill);
        if !close(now, *value) {
            t.overwritten += 1;
            t.problems.push(format!(
                "a person's {value} on {agent}/{skill} became {now:?}"
            ));
        }
    }
    // One bulk write per agent with an applied row, never two (≤ 50 skills per agent).
    let agents = applied_agents(rows);
    if successful_writes != agents.len() as u64 {
        t.lost += successful_writes.abs_diff(agents.len() as u64);
        t.problems.push(format!(
            "{successful_writes} successful bulk writes for {} agents with applied rows",
            agents.len()
        ));
    }
}

/// Checks one in-process `once` run, and that the client saw what the simulator served.
fn check_run(t: &mut Tally, r: &Rig, report: &CycleReport, writes_before: u64, edits: &[Edit]) {
    let rows = r.ledger.changes(report.run_id).unwrap();
    t.require(!rows.is_empty(), "the run planned nothing");
    t.require(
        rows.iter().any(|c| c.status == ChangeStatus::Applied),
        "the run applied nothing",
    );
    let writes = r.sim.org().write_count() - writes_before;
    check_rows(t, &r.sim, &rows, writes, edits);
    // The report's counters agree with what the simulator served, status by status.
    let served = r.sim.counters();
    for status in [401u16, 409, 429, 500, 502, 503, 504] {
        let seen = report.api.with_status(&status.to_string());
        t.require(
            seen == served.status_count(status),
            format!(
                "client counted {seen} × {status}, simulator served {}",
                served.status_count(status)
            ),
        );
    }
    let run = r.ledger.run(report.run_id).unwrap();
    t.require(
        run.finished_at.is_some(),
        "the run is not finished in the ledger",
    );
}

/// Fault events the simulator served in this run (it counts injected statuses).
fn served_faults(sim: &Simulator) -> u64 {
    let c = sim.counters();
    [401u16, 409, 429, 500, 502, 503, 504]
        .iter()
        .map(|s| c.status_count(*s))
        .sum()
}

// ---------------------------------------------------------------- scenarios

/// 429s before the cycle and a second storm in the middle of the writes: every one is waited
/// out (`Retry-After`), none fails a change, none makes a write land twice.
async fn storm_429() -> Tally {
    let mut t = Tally::default();
    let r = rig("storm", 40).await;
    r.sim
        .faults()
        .latency_for("routingskills/bulk", Duration::from_millis(40));
    r.sim.reset_counters();
    let writes_before = r.sim.org().write_count();
    r.sim.faults().storm_429(2, 1);
    let (report, fired) = r.once_with_mid_apply(1, |f| f.storm_429(3, 1)).await;
    let report = report.unwrap();
    t.require(fired, "the mid-apply storm never fired");
    let served = r.sim.counters().rate_limited();
    t.injected += served;
    t.require(served == 5, format!("{served} × 429 served, 5 injected"));
    t.require(
        report.api.retries_rate_limited == served,
        format!("retries_rate_limited = {}", report.api.retries_rate_limited),
    );
    t.require(
        report.outcome == RunOutcome::Ok,
        format!("outcome {}", report.outcome),
    );
    t.require(report.failed == 0, "a change failed");
    check_run(&mut t, &r, &report, writes_before, &[]);
    expect_log(&mut t, "RateLimited");
    t
}

/// Retryable 502/503/504 on reads, analytics and writes are retried; a 500 on one agent's
/// write is not (it fails that agent's changes, the org keeps `before`, others proceed).
async fn burst_5xx() -> Tally {
    let mut t = Tally::default();
    let r = rig("5xx", 40).await;
    let plan = one_per_agent(&r.preview().await);
    let victim = plan[0].agent_id.clone();
    r.sim.reset_counters();
    let writes_before = r.sim.org().write_count();
    let f = r.sim.faults();
    f.fail_next(1, 500, &format!("{victim}/routingskills/bulk"));
    f.fail_next(3, 503, "/analytics/conversations");
    f.fail_next(2, 504, "/api/v2/users");
    f.fail_next(2, 502, "routingskills/bulk");
    let report = r.once().await.unwrap();
    let served = served_faults(&r.sim);
    t.injected += served;
    t.require(served == 8, format!("{served} 5xx served, 8 injected"));
    t.require(
        report.api.retries_server_error == 7,
        format!(
            "retries_server_error = {} (7 retryable injected)",
            report.api.retries_server_error
        ),
    );
    let rows = r.ledger.changes(report.run_id).unwrap();
    t.require(
        rows.iter()
            .filter(|c| c.agent_id == victim)
            .all(|c| c.status == ChangeStatus::Failed),
        "the agent whose write got a 500 is not `failed`",
    );
    t.require(
        report.outcome == RunOutcome::Partial,
        format!("outcome {}", report.outcome),
    );
    check_run(&mut t, &r, &report, writes_before, &[]);
    expect_log(&mut t, "write failed");
    expect_log(&mut t, "ServerError");
    t
}

/// A latency spike longer than the request timeout on the analytics queries (the first
/// attempt times out and is retried once the spike is over), and slow writes.
async fn latency_and_timeouts() -> Tally {
    let mut t = Tally::default();
    let sim = sim_40().await;
    let mut settings = relaxed(&sim);
    settings.genesys.request_timeout_secs = 1;
    let r = rig_with("latency", sim, settings).await;
    r.sim.reset_counters();
    let writes_before = r.sim.org().write_count();
    let f = r.sim.faults();
    f.latency_for("/analytics/", Duration::from_millis(1_500));
    f.latency_for("routingskills/bulk", Duration::from_millis(150));
    let spike_over = spike_until_a_timeout(&r, "/analytics/");
    let (report, ()) = tokio::join!(r.once(), spike_over);
    let report = report.unwrap();
    r.sim.faults().clear();
    let timeouts = report.api.with_status("error");
    t.injected += timeouts;
    t.require(timeouts >= 1, "no request timed out");
    t.require(
        report.api.retries_timeout == timeouts,
        format!(
            "{timeouts} timed out, retries_timeout = {}",
            report.api.retries_timeout
        ),
    );
    t.require(
        report.outcome == RunOutcome::Ok,
        format!("outcome {}", report.outcome),
    );
    check_run(&mut t, &r, &report, writes_before, &[]);
    expect_log(&mut t, "Timeout");
    t
}

/// Every token is revoked after the first write: the next calls get 401, one new token is
/// fetched, each refused call is repeated once, and the cycle finishes.
async fn token_revoked() -> Tally {
    let mut t = Tally::default();
    let r = rig("revoke", 40).await;
    r.sim
        .faults()
        .latency_for("routingskills/bulk", Duration::from_millis(40));
    r.sim.reset_counters();
    let writes_before = r.sim.org().write_count();
    let (report, fired) = r.once_with_mid_apply(1, Faults::revoke_tokens).await;
    let report = report.unwrap();
    t.require(fired, "the revocation never fired");
    let refused = r.sim.counters().status_count(401);
    t.injected += refused;
    t.require(refused >= 1, "no 401 served");
    t.require(
        report.api.unauthorized_refreshes == refused,
        format!(
            "{refused} × 401, unauthorized_refreshes = {}",
            report.api.unauthorized_refreshes
        ),
    );
    t.require(
        report.api.token_requests >= 1 && report.api.token_failures == 0,
        format!(
            "token_requests = {}, failures = {}",
            report.api.token_requests, report.api.token_failures
        ),
    );
    t.require(
        report.outcome == RunOutcome::Ok,
        format!("outcome {}", report.outcome),
    );
    check_run(&mut t, &r, &report, writes_before, &[]);
    expect_log(&mut t, "access token refused (401)");
    t
}

/// Truncated 2xx bodies: reads are fetched once more; a write whose answer is unreadable
/// landed (it was a 2xx) and must not be sent again; two bad catalogue reads in a row fail
/// the cycle before it writes anything.
async fn malformed_bodies() -> Tally {
    let mut t = Tally::default();
    let r = rig("malformed", 40).await;
    let plan = one_per_agent(&r.preview().await);
    let victim = plan[0].agent_id.clone();

    // Two bad answers in a row for the skill catalogue: the cycle fails cleanly, writes nothing.
    r.sim.faults().malformed_next(2, "/routing/skills");
    let writes_before = r.sim.org().write_count();
    let failed = r.once().await;
    t.injected += 2;
    t.require(
        failed.is_err(),
        "a cycle with an unreadable catalogue succeeded",
    );
    t.require(
        r.sim.org().write_count() == writes_before,
        "a failed collection wrote",
    );
    let runs = r.ledger.recent_runs(1).unwrap();
    t.require(
        runs.first()
            .is_some_and(|run| run.outcome == Some(RunOutcome::Failed)),
        format!("the failed run is recorded as {runs:?}"),
    );
    expect_log(&mut t, "unreadable response body");

    // One bad answer each: reads are repeated, the write is not.
    logs().clear();
    r.sim.reset_counters();
    let writes_before = r.sim.org().write_count();
    let f = r.sim.faults();
    f.malformed_next(1, "/routing/skills");
    f.malformed_next(1, "/analytics/conversations");
    f.malformed_next(1, "/analytics/evaluations");
    f.malformed_next(1, &format!("{victim}/routingskills/bulk"));
    let report = r.once().await.unwrap();
    t.injected += 4;
    t.require(
        report.api.decode_errors == 4,
        format!("decode_errors = {} (4 injected)", report.api.decode_errors),
    );
    t.require(
        r.sim.counters().count("PATCH", BULK) == report.agents_changed as u64,
        format!(
            "{} bulk PATCHes for {} agents (a write was sent twice?)",
            r.sim.counters().count("PATCH", BULK),
            report.agents_changed
        ),
    );
    t.require(
        report.outcome == RunOutcome::Ok,
        format!("outcome {}", report.outcome),
    );
    check_run(&mut t, &r, &report, writes_before, &[]);
    expect_log(&mut t, "unreadable response body");
    t
}

/// People edit skills between our plan and our write: one edit is seen by the re-read, one
/// lands just after the re-read and the server answers 409 (re-read, see it, leave it); one
/// agent gets 409s with no edit at all (re-read, re-decide, write once).
async fn human_edits() -> Tally {
    let mut t = Tally::default();
    let r = rig("edits", 40).await;
    let plan = one_per_agent(&r.preview().await);
    assert!(plan.len() >= 3, "need three changing agents: {plan:?}");
    r.sim.reset_counters();
    let writes_before = r.sim.org().write_count();
    let edits = edits_on_two(&r, &plan);
    let f = r.sim.faults();
    f.conflict_next_patch(&plan[2].agent_id, 2);
    let report = r.once().await.unwrap();
    let conflicts_served = r.sim.counters().status_count(409);
    t.injected += edits.len() as u64 + conflicts_served;
    t.require(
        conflicts_served == 3,
        format!("{conflicts_served} × 409 served, 3 injected"),
    );
    t.require(
        report.conflicts == 2,
        format!("{} conflicts reported, 2 edits", report.conflicts),
    );
    let rows = r.ledger.changes(report.run_id).unwrap();
    t.require(
        rows.iter()
            .filter(|c| c.agent_id == plan[2].agent_id)
            .all(|c| c.status == ChangeStatus::Applied),
        "409s without an edit did not end applied",
    );
    check_run(&mut t, &r, &report, writes_before, &edits);
    expect_log(&mut t, "a person changed this skill since our read");
    expect_log(&mut t, "write conflict; re-reading and re-deciding");
    t
}

/// Everything at once in one cycle: human edits and 409s, a 429 storm before and during the
/// writes, 5xx on reads, analytics and writes, a timeout spike, truncated bodies on reads and
/// on a write, and a token revocation mid-apply.
async fn everything_at_once() -> Tally {
    let mut t = Tally::default();
    let sim = sim_40().await;
    let mut settings = relaxed(&sim);
    settings.genesys.request_timeout_secs = 1;
    let r = rig_with("all", sim, settings).await;
    let plan = one_per_agent(&r.preview().await);
    assert!(plan.len() >= 6, "need six changing agents: {plan:?}");
    r.sim.reset_counters();
    let writes_before = r.sim.org().write_count();
    let edits = edits_on_two(&r, &plan);
    let f = r.sim.faults();
    f.conflict_next_patch(&plan[2].agent_id, 1);
    let failing = plan[3].agent_id.clone();
    f.fail_next(1, 500, &format!("{failing}/routingskills/bulk"));
    f.malformed_next(1, &format!("{}/routingskills/bulk", plan[4].agent_id));
    f.malformed_next(1, "/routing/skills");
    f.malformed_next(1, "/api/v2/users");
    f.fail_next(2, 503, "/analytics/conversations");
    f.fail_next(1, 504, "/api/v2/users");
    f.fail_next(1, 502, &format!("{}/routingskills/bulk", plan[5].agent_id));
    f.storm_429(2, 1);
    f.latency_for("/analytics/evaluations", Duration::from_millis(1_500));
    f.latency_for("routingskills/bulk", Duration::from_millis(40));
    let spike_over = spike_until_a_timeout(&r, "/analytics/evaluations");
    let ((report, fired), ()) = tokio::join!(
        r.once_with_mid_apply(2, |f| {
            f.revoke_tokens();
            f.storm_429(2, 1);
        }),
        spike_over
    );
    let report = report.unwrap();
    r.sim.faults().clear();
    t.require(fired, "the mid-apply faults never fired");
    let served = served_faults(&r.sim);
    let timeouts = report.api.with_status("error");
    t.require(timeouts >= 1, "no request timed out");
    t.injected += served + timeouts + report.api.decode_errors + edits.len() as u64;
    let c = r.sim.counters();
    t.require(c.rate_limited() == 4, format!("{} × 429", c.rate_limited()));
    t.require(
        c.status_count(409) == 2,
        format!("{} × 409", c.status_count(409)),
    );
    t.require(c.status_count(401) >= 1, "no 401 after the revocation");
    t.require(
        c.status_count(500) + c.status_count(502) + c.status_count(503) + c.status_count(504) == 5,
        "not every 5xx was served",
    );
    t.require(
        report.api.decode_errors == 3,
        format!("decode_errors = {}", report.api.decode_errors),
    );
    t.require(
        report.api.retries_rate_limited == 4,
        format!("retries_rate_limited = {}", report.api.retries_rate_limited),
    );
    t.require(
        report.api.unauthorized_refreshes == c.status_count(401),
        "a 401 was not followed by a refresh",
    );
    let rows = r.ledger.changes(report.run_id).unwrap();
    t.require(
        rows.iter()
            .filter(|c| c.agent_id == failing)
            .all(|c| c.status == ChangeStatus::Failed),
        "the agent whose write got a 500 is not `failed`",
    );
    t.require(
        report.conflicts == 2,
        format!("{} conflicts", report.conflicts),
    );
    check_run(&mut t, &r, &report, writes_before, &edits);
    for needle in [
        "RateLimited",
        "ServerError",
        "access token refused (401)",
        "unreadable response body",
        "a person changed this skill since our read",
        "write conflict; re-reading and re-deciding",
        "write failed",
    ] {
        expect_log(&mut t, needle);
    }
    t
}

// ---------------------------------------------------------------- kill -9 (real binary)

/// `once` in the real binary is killed with SIGKILL in the middle of its writes. The next
/// start — a `plan`, which writes nothing — reconciles the killed run against the org: every
/// row settled and true to the org, one write per agent it applied, the run `interrupted`.
/// A second `once` then finishes the job without writing any skill the killed run applied.
async fn kill_9_mid_apply() -> Tally {
    let mut t = Tally::default();
    let dir = TempDir::new("kill9");
    let ledger_path = dir.path().join("ledger.db");
    let sim = sim_40().await;
    let mut settings = relaxed(&sim);
    // Straight to the target, so a re-plan of an applied skill finds nothing to do: any write
    // of the same skill in the next run would be a double apply.
    settings.policy.default.smoothing = 1.0;
    settings.policy.default.max_step = 5.0;
    settings.genesys.max_concurrency = 2;
    let config = config_file(dir.path(), &settings, &ledger_path);
    sim.faults()
        .latency_for("routingskills/bulk", Duration::from_millis(200));

    let mut child = binary(&["once"], &config).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while sim.org().write_count() < 3 {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            t.problems
                .push("no kill: the run ended or never wrote".into());
            return t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    t.injected += 1;
    // Let writes in flight at the kill land (or not) before looking.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sim.faults()
        .latency_for("routingskills/bulk", Duration::ZERO);
    let writes_at_kill = sim.org().write_count();

    // The killed run is unfinished, with rows still `planned`.
    let killed = {
        let ledger = Ledger::open(&ledger_path).unwrap();
        let unfinished = ledger.unfinished_runs().unwrap();
        t.require(unfinished.len() == 1, "the killed run is not unfinished");
        let Some(run) = unfinished.first() else {
            return t;
        };
        t.require(
            ledger
                .changes(run.id)
                .unwrap()
                .iter()
                .any(|c| c.status == ChangeStatus::Planned),
            "no row of the killed run is left `planned`",
        );
        run.id
    };

    // The restart: `plan` reconciles first, and writes nothing.
    let out = output(binary(&["plan", "--json"], &config)).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    t.require(out.status.success(), format!("restart failed: {stderr}"));
    t.require(
        stderr.contains("reconciled runs left unfinished by an interruption"),
        format!("the restart did not log the reconciliation: {stderr}"),
    );
    t.require(
        sim.org().write_count() == writes_at_kill,
        "the reconciling `plan` wrote to the org",
    );
    let ledger = Ledger::open(&ledger_path).unwrap();
    let run = ledger.run(killed).unwrap();
    t.require(
        run.outcome == Some(RunOutcome::Interrupted),
        format!("killed run outcome {:?}", run.outcome),
    );
    // Every row of the killed run against the org, and its writes: one per agent it applied.
    let first_rows = ledger.changes(killed).unwrap();
    check_rows(&mut t, &sim, &first_rows, writes_at_kill, &[]);
    let count = |s: ChangeStatus| first_rows.iter().filter(|c| c.status == s).count();
    eprintln!(
        "killed run #{killed}: {writes_at_kill} writes before the kill; reconciled {} applied, {} skipped, {} conflict",
        count(ChangeStatus::Applied),
        count(ChangeStatus::Skipped),
        count(ChangeStatus::Conflict)
    );
    let applied_first: BTreeSet<(String, String)> = first_rows
        .iter()
        .filter(|c| c.status == ChangeStatus::Applied)
        .map(|c| (c.agent_id.clone(), c.skill_id.clone()))
        .collect();
    t.require(!applied_first.is_empty(), "nothing applied before the kill");
    t.require(
        count(ChangeStatus::Skipped) > 0,
        "the kill came too late to test anything",
    );
    drop(ledger);

    // `once` again: finishes the job.
    let out = output(binary(&["once", "--json"], &config)).await;
    t.require(
        out.status.success(),
        format!(
            "once after the kill failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let second = report["run_id"].as_i64().unwrap();
    let ledger = Ledger::open(&ledger_path).unwrap();
    let second_rows = ledger.changes(second).unwrap();
    // Skipped rows of the killed run were re-planned by the second run; the killed run's rows
    // that the second did not touch still agree with the org.
    let touched: BTreeSet<(String, String)> = second_rows
        .iter()
        .map(|c| (c.agent_id.clone(), c.skill_id.clone()))
        .collect();
    let untouched: Vec<ChangeRecord> = first_rows
        .iter()
        .filter(|c| !touched.contains(&(c.agent_id.clone(), c.skill_id.clone())))
        .cloned()
        .collect();
    check_rows(
        &mut t,
        &sim,
        &untouched,
        applied_agents(&first_rows).len() as u64,
        &[],
    );
    let again: Vec<_> = second_rows
        .iter()
        .filter(|c| applied_first.contains(&(c.agent_id.clone(), c.skill_id.clone())))
        .collect();
    if !again.is_empty() {
        t.lost += again.len() as u64;
        t.problems.push(format!(
            "applied before the kill and planned again: {again:?}"
        ));
    }
    // One write per agent the second run changed, none for the killed run's.
    let writes_second = sim.org().write_count() - writes_at_kill;
    check_rows(&mut t, &sim, &second_rows, writes_second, &[]);
    for c in first_rows
        .iter()
        .filter(|c| c.status == ChangeStatus::Skipped)
    {
        t.require(
            second_rows.iter().any(|r| {
                r.agent_id == c.agent_id
                    && r.skill_id == c.skill_id
                    && r.status == ChangeStatus::Applied
            }),
            format!("skipped by the kill and never applied: {c:?}"),
        );
    }
    sim.shutdown().await;
    t
}

// ---------------------------------------------------------------- the daemon (real binary, signals)

/// A 40-agent org, seeded like the in-process scenarios.
async fn sim_40() -> Simulator {
    start_sim(40, |c| c.seed = 7).await
}

/// The relaxed settings for `skill-tuner run`: the ledger in `dir`, a daily schedule that
/// never fires during a test (cycles run on SIGUSR1 or at start).
fn daemon_settings(sim: &Simulator, dir: &Path) -> Settings {
    let mut s = relaxed(sim);
    s.history.path = dir.join("ledger.db");
    s.daemon.schedule = "0 0 2 * * *".into();
    s.daemon.time_zone = "UTC".into();
    s.daemon.run_on_start = false;
    s.daemon.shutdown_grace_secs = 30;
    s
}

/// A rig (the in-process client, for the preview) around `sim` with the daemon's settings,
/// the daemon's own directory, and the plan a cycle would make now.
async fn daemon_rig(tag: &str, sim: Simulator, settings: &Settings) -> (Rig, Vec<ChangeLine>) {
    let r = rig_with(tag, sim, settings.clone()).await;
    let plan = r.preview().await;
    (r, plan)
}

/// People's edits ([`edits_on_two`]) on the first two agents the cycle writes (it writes in
/// agent-id order, so these are in flight before any stop).
fn edits_on_first_agents(r: &Rig, plan: &[ChangeLine]) -> Vec<Edit> {
    let mut firsts = one_per_agent(plan);
    firsts.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
    assert!(firsts.len() >= 6, "need changing agents: {plan:?}");
    edits_on_two(r, &firsts)
}

/// People's edits on the first two agents of `changes`: the first seen by the re-read before
/// the write, the second made just after that re-read and revealed by a 409.
fn edits_on_two(r: &Rig, changes: &[ChangeLine]) -> Vec<Edit> {
    let f = r.sim.faults();
    let mut edits = Vec::new();
    for (i, c) in changes.iter().take(2).enumerate() {
        let skill = skill_id(&r.sim, &c.skill);
        let value = other_than(c.current, c.proposed);
        if i == 0 {
            f.edit_on_next_read(&c.agent_id, &skill, value);
        } else {
            f.edit_after_next_read(&c.agent_id, &skill, value);
            f.conflict_next_patch(&c.agent_id, 1);
        }
        edits.push((c.agent_id.clone(), skill, value));
    }
    edits
}

/// The `skill_tuner_config_info{fingerprint=…,schedule=…}` sample: the config in use.
fn config_info(text: &str) -> String {
    text.lines()
        .find(|l| l.starts_with("skill_tuner_config_info{"))
        .unwrap_or_default()
        .to_string()
}

/// The daemon's last run in its ledger against the org: the shared invariants, every edit
/// met (its row is a conflict) and kept. Returns the run's rows.
fn check_daemon_run(
    t: &mut Tally,
    sim: &Simulator,
    ledger: &Path,
    runs: usize,
    writes: u64,
    edits: &[Edit],
) -> Vec<ChangeRecord> {
    let ledger = Ledger::open(ledger).unwrap();
    t.require(
        ledger.unfinished_runs().unwrap().is_empty(),
        "a run is left unfinished in the ledger",
    );
    let recent = ledger.recent_runs(10).unwrap();
    t.require(
        recent.len() == runs,
        format!("{} runs in the ledger, {runs} expected", recent.len()),
    );
    let Some(run) = recent.first() else {
        t.problems.push("no run in the ledger".into());
        return Vec::new();
    };
    t.require(
        run.finished_at.is_some(),
        format!("the run is not finished: {run:?}"),
    );
    let rows = ledger.changes(run.id).unwrap();
    t.require(!rows.is_empty(), "the run planned nothing");
    t.require(
        rows.iter().any(|c| c.status == ChangeStatus::Applied),
        "the run applied nothing",
    );
    for (agent, skill, _) in edits {
        t.require(
            rows.iter().any(|c| {
                &c.agent_id == agent && &c.skill_id == skill && c.status == ChangeStatus::Conflict
            }),
            format!("the edit of {agent}/{skill} was never met by the run"),
        );
    }
    check_rows(t, sim, &rows, writes, edits);
    rows
}

/// Runs one cycle on SIGUSR1 with people's edits on its first agents, and checks it: ledger
/// against org, edits kept, the conflicts and 409s in `/metrics` as the simulator served them.
/// `cycles` is the daemon's cycle count before this one.
async fn daemon_cycle_with_edits(
    t: &mut Tally,
    d: &Daemon,
    r: &Rig,
    plan: &[ChangeLine],
    ledger: &Path,
    cycles: f64,
) {
    let edits = edits_on_first_agents(r, plan);
    r.sim.reset_counters();
    let writes_before = r.sim.org().write_count();
    d.signal("USR1");
    let m = d
        .wait_metrics("the cycle run by SIGUSR1", 30, |m| {
            cycles_total(m) > cycles && metric(m, "skill_tuner_cycle_running") == Some(0.0)
        })
        .await;
    let conflicts_served = r.sim.counters().status_count(409);
    t.injected += edits.len() as u64 + conflicts_served;
    t.require(
        conflicts_served == 1,
        format!("{conflicts_served} × 409 served, 1 injected"),
    );
    t.require(
        metric(&m, r#"skill_tuner_cycles_total{outcome="ok"}"#) == Some(cycles + 1.0),
        format!("the cycle's outcome is not ok:\n{m}"),
    );
    t.require(
        metric_or_zero(&m, "skill_tuner_conflicts_total") == edits.len() as f64,
        format!(
            "skill_tuner_conflicts_total = {}, {} edits",
            metric_or_zero(&m, "skill_tuner_conflicts_total"),
            edits.len()
        ),
    );
    t.require(
        api_calls_with_status(&m, 409) == conflicts_served as f64,
        format!(
            "/metrics counts {} × 409, the simulator served {conflicts_served}",
            api_calls_with_status(&m, 409)
        ),
    );
    let writes = r.sim.org().write_count() - writes_before;
    check_daemon_run(t, &r.sim, ledger, 1, writes, &edits);
}

/// Stops the daemon with SIGTERM (no cycle running): exit 0.
async fn stop_daemon(t: &mut Tally, d: &mut Daemon) {
    d.signal("TERM");
    let status = d.wait_exit(30).await;
    t.require(
        status.code() == Some(0),
        format!("exit {status:?} on SIGTERM; logs:\n{}", d.logs()),
    );
}

/// Requires a line with `needle` in the daemon's log, waiting a while for it: the daemon's
/// state (`/readyz`, `/metrics`) can change a moment before the line that tells of it is written.
async fn expect_daemon_log(t: &mut Tally, d: &Daemon, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.logs().contains(needle) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = d.logs();
    t.require(
        logs.contains(needle),
        format!("no daemon log line containing {needle:?}:\n{logs}"),
    );
}

/// SIGHUP with three broken configs in turn (a bad value next to a change that would trip the
/// breaker, a syntax error, a missing secret): each reload fails visibly (`/metrics`, the
/// log names the key or file), the daemon stays alive and ready with the old config, and the
/// next cycle runs by the old config (the breaker does not trip) and keeps people's edits.
async fn sighup_broken_config() -> Tally {
    let mut t = Tally::default();
    let sim = sim_40().await;
    let dir = TempDir::new("hup");
    let settings = daemon_settings(&sim, dir.path());
    let (r, plan) = daemon_rig("hup-preview", sim, &settings).await;
    let mut d = Daemon::spawn(dir.path(), &settings.to_toml(), &[]);
    d.wait_ready().await;
    let m = d.metrics().await;
    let info = config_info(&m);
    t.require(
        info.contains(r#"schedule="0 0 2 * * * UTC""#),
        format!("config in use: {info}"),
    );

    let mut bad_value = settings.clone();
    bad_value.daemon.schedule = "every day".into();
    bad_value.breaker.max_changed_share = 0.01;
    let mut no_secret = settings.clone();
    no_secret.genesys.client_secret_env = "ST_FAULTS_NO_SUCH_SECRET_VAR".into();
    no_secret.daemon.schedule = "0 0 4 * * *".into();
    let broken = [
        (bad_value.to_toml(), "daemon.schedule"),
        ("[genesys\nclient_id = ".to_string(), "skill-tuner.toml"),
        (no_secret.to_toml(), "ST_FAULTS_NO_SUCH_SECRET_VAR"),
    ];
    for (i, (text, names)) in broken.iter().enumerate() {
        let m = d.reload_failing(text, (i + 1) as f64).await;
        t.injected += 1;
        t.require(
            metric(&m, "skill_tuner_config_last_reload_successful") == Some(0.0),
            format!("reload {i}: last_reload_successful is not 0"),
        );
        t.require(
            metric(&m, r#"skill_tuner_config_reloads_total{result="ok"}"#) == Some(0.0),
            format!("reload {i}: counted as ok"),
        );
        t.require(
            config_info(&m) == info,
            format!("reload {i}: the config changed: {}", config_info(&m)),
        );
        t.require(d.alive(), format!("reload {i}: the daemon exited"));
        t.require(
            d.get("/healthz").await.map(|r| r.0) == Some(200),
            format!("reload {i}: /healthz is not 200"),
        );
        t.require(
            d.get("/readyz").await.map(|r| r.0) == Some(200),
            format!("reload {i}: /readyz is not 200"),
        );
        t.require(
            metric(&m, "skill_tuner_ready") == Some(1.0),
            format!("reload {i}: skill_tuner_ready is not 1"),
        );
        let logs = d.logs();
        t.require(
            logs.contains("config reload failed") && logs.contains(names),
            format!("reload {i}: the log does not name {names}:\n{logs}"),
        );
    }

    // The old config still runs the cycles: its breaker lets the plan through.
    daemon_cycle_with_edits(&mut t, &d, &r, &plan, &dir.path().join("ledger.db"), 0.0).await;
    let m = d.metrics().await;
    t.require(
        metric_or_zero(&m, "skill_tuner_breaker_trips_total") == 0.0,
        "the broken config's breaker tripped the cycle",
    );
    stop_daemon(&mut t, &mut d).await;
    expect_daemon_log(&mut t, &d, "keeping the running config").await;
    r.sim.shutdown().await;
    t
}

/// SIGTERM while the daemon's first cycle is mid-apply (slow writes, two at a time, people's
/// edits on the first agents): the writes in flight finish, no new one starts, exit 0; every
/// agent's changes are all applied or all skipped (a person's skill aside), the ledger agrees
/// with the org and no edit is overwritten.
async fn sigterm_mid_apply() -> Tally {
    let mut t = Tally::default();
    let sim = sim_40().await;
    let dir = TempDir::new("term");
    let mut settings = daemon_settings(&sim, dir.path());
    settings.daemon.run_on_start = true;
    settings.genesys.max_concurrency = 2;
    let (r, plan) = daemon_rig("term-preview", sim, &settings).await;
    let edits = edits_on_first_agents(&r, &plan);
    r.sim.reset_counters();
    r.sim
        .faults()
        .latency_for("routingskills/bulk", Duration::from_millis(300));
    let writes_before = r.sim.org().write_count();
    let mut d = Daemon::spawn(dir.path(), &settings.to_toml(), &[]);

    // Mid-apply: the edited agents are done (their edits landed) and two writes have.
    let org = r.sim.org();
    let deadline = Instant::now() + Duration::from_secs(30);
    while org.write_count() < writes_before + 2
        || !edits
            .iter()
            .all(|(a, s, v)| close(org.proficiency(a, s), *v))
    {
        if Instant::now() > deadline || !d.alive() {
            t.problems
                .push(format!("never mid-apply; logs:\n{}", d.logs()));
            return t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let m = d.metrics().await;
    t.require(
        metric(&m, "skill_tuner_cycle_running") == Some(1.0),
        "no cycle running when SIGTERM was sent",
    );
    d.signal("TERM");
    t.injected += 1;
    let status = d.wait_exit(30).await;
    r.sim
        .faults()
        .latency_for("routingskills/bulk", Duration::ZERO);
    t.require(
        status.code() == Some(0),
        format!("exit {status:?} on SIGTERM mid-cycle; logs:\n{}", d.logs()),
    );
    let conflicts_served = r.sim.counters().status_count(409);
    t.injected += edits.len() as u64 + conflicts_served;
    t.require(
        conflicts_served == 1,
        format!("{conflicts_served} × 409 served, 1 injected"),
    );

    let writes = org.write_count() - writes_before;
    let rows = check_daemon_run(
        &mut t,
        &r.sim,
        &dir.path().join("ledger.db"),
        1,
        writes,
        &edits,
    );
    let run = Ledger::open(&dir.path().join("ledger.db"))
        .unwrap()
        .recent_runs(1)
        .unwrap();
    t.require(
        run.first()
            .is_some_and(|run| run.outcome == Some(RunOutcome::Interrupted)),
        format!("the stopped run is recorded as {run:?}"),
    );
    // All or nothing per agent: a person's skill is theirs, the rest applied or skipped.
    let mut by_agent: std::collections::BTreeMap<&str, BTreeSet<&str>> = Default::default();
    for c in &rows {
        match c.status {
            ChangeStatus::Conflict => {}
            ChangeStatus::Applied | ChangeStatus::Skipped => {
                by_agent
                    .entry(c.agent_id.as_str())
                    .or_default()
                    .insert(c.status.as_str());
            }
            other => t
                .problems
                .push(format!("unexpected status {other:?} after a stop: {c:?}")),
        }
    }
    for (agent, statuses) in &by_agent {
        if statuses.len() != 1 {
            t.lost += 1;
            t.problems
                .push(format!("agent {agent} half applied: {statuses:?}"));
        }
    }
    let applied = by_agent.values().filter(|s| s.contains("applied")).count();
    let skipped = by_agent.values().filter(|s| s.contains("skipped")).count();
    t.require(applied >= 1, "nothing applied before the stop");
    t.require(skipped >= 1, "the stop did not come mid-cycle");
    for needle in [
        "stopping: the running cycle finishes its writes in flight",
        "stopped after the running cycle finished",
    ] {
        expect_daemon_log(&mut t, &d, needle).await;
    }
    r.sim.shutdown().await;
    t
}

/// The login endpoint answers 503 when the daemon starts: it stays up (`/healthz` 200) but
/// not ready (`/readyz` 503, a run request is skipped, nothing written), the failed logins are
/// counted in `/metrics` and logged; once login works it becomes ready by itself and its next
/// cycle keeps the invariants.
async fn login_down_at_start() -> Tally {
    let mut t = Tally::default();
    let sim = sim_40().await;
    let dir = TempDir::new("login");
    let settings = daemon_settings(&sim, dir.path());
    let (r, plan) = daemon_rig("login-preview", sim, &settings).await;
    r.sim.reset_counters();
    r.sim.faults().login_down(true);
    let writes_before = r.sim.org().write_count();
    let mut d = Daemon::spawn(dir.path(), &settings.to_toml(), &[]);
    let m = d
        .wait_metrics("a failed login", 20, |m| {
            m.contains("skill_tuner_build_info{")
                && metric_or_zero(m, "skill_tuner_token_failures_total") >= 1.0
        })
        .await;
    t.require(
        metric(&m, "skill_tuner_token_valid") == Some(0.0),
        "a token while login is down",
    );
    t.require(
        metric(&m, "skill_tuner_ready") == Some(0.0),
        "ready while login is down",
    );
    t.require(
        d.get("/healthz").await.map(|r| r.0) == Some(200),
        "/healthz is not 200 while login is down",
    );
    let readyz = d.get("/readyz").await;
    t.require(
        readyz
            .as_ref()
            .is_some_and(|(s, body)| *s == 503 && body.contains("token")),
        format!("/readyz while login is down: {readyz:?}"),
    );
    // A run request while not ready is skipped, not fatal, and writes nothing.
    d.signal("USR1");
    let m = d
        .wait_metrics("a not-ready skip", 20, |m| {
            metric_or_zero(m, r#"skill_tuner_ticks_skipped_total{reason="not_ready"}"#) >= 1.0
        })
        .await;
    t.require(cycles_total(&m) == 0.0, "a cycle ran while not ready");
    t.require(
        r.sim.org().write_count() == writes_before,
        "written while not ready",
    );
    t.require(d.alive(), "the daemon exited while login was down");

    r.sim.faults().login_down(false);
    d.wait_ready().await;
    let m = d.metrics().await;
    let served = r.sim.counters().status_count(503);
    t.injected += served;
    t.require(served >= 1, "no login answered 503");
    let failures = metric_or_zero(&m, "skill_tuner_token_failures_total");
    t.require(
        failures == served as f64,
        format!(
            "skill_tuner_token_failures_total = {failures}, the simulator refused {served} logins"
        ),
    );
    t.require(
        metric(&m, "skill_tuner_token_valid") == Some(1.0)
            && metric(&m, "skill_tuner_ready") == Some(1.0),
        "not ready after login came back",
    );
    for needle in ["login failed; not ready, retrying", "logged in; ready"] {
        expect_daemon_log(&mut t, &d, needle).await;
    }

    daemon_cycle_with_edits(&mut t, &d, &r, &plan, &dir.path().join("ledger.db"), 0.0).await;
    stop_daemon(&mut t, &mut d).await;
    r.sim.shutdown().await;
    t
}
