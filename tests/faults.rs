//! The fault suite (issue 7): every fault the embedded simulator can inject, first each in
//! isolation and then all together in one cycle, through the real `run_cycle` with a file
//! ledger (and, for kill -9, through the real binary).
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
//! `cargo test --test faults -- --nocapture` prints
//! `faults: N injected, N survived, 0 lost, 0 overwritten`, computed from the scenarios.
//!
//! Scenarios are entries of one table ([`scenarios`]): the daemon's signal scenarios
//! (SIGHUP with a broken config, SIGTERM mid-cycle, login down at start-up) are meant to
//! be added as more entries returning the same [`Tally`].

use futures_util::FutureExt;
use serde_json::Value;
use skill_tuner::config::Settings;
use skill_tuner::cycle::{run_cycle, Mode, StopSignal};
use skill_tuner::demo::{settings_for, sim_secret};
use skill_tuner::genesys::GenesysClient;
use skill_tuner::history::{ChangeRecord, ChangeStatus, Ledger};
use skill_tuner::report::{ChangeLine, CycleReport};
use skill_tuner::runtime;
use skill_tuner::sim::{Faults, SimConfig, Simulator};
use std::collections::BTreeSet;
use std::future::Future;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const BULK: &str = "/api/v2/users/{id}/routingskills/bulk";

// ---------------------------------------------------------------- scenario table and tally

/// What one scenario did and found. Problems are collected, not panicked on, so the summary
/// line is printed even when a scenario breaks an invariant.
#[derive(Debug, Default)]
struct Tally {
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
    fn new(name: &'static str) -> Self {
        Tally {
            name,
            ..Tally::default()
        }
    }

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

/// Not `Send`: `run_cycle`'s future is not provably `Send` (a higher-ranked lifetime in its
/// write stream), so scenarios run inline on the test's task, one after another.
type ScenarioFuture = Pin<Box<dyn Future<Output = Tally>>>;

/// One row of the table: a name and the async fn that runs it.
struct Scenario {
    name: &'static str,
    run: fn() -> ScenarioFuture,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "429 storm",
            run: || Box::pin(storm_429()),
        },
        Scenario {
            name: "5xx burst",
            run: || Box::pin(burst_5xx()),
        },
        Scenario {
            name: "latency spike and timeouts",
            run: || Box::pin(latency_and_timeouts()),
        },
        Scenario {
            name: "token revoked mid-cycle",
            run: || Box::pin(token_revoked_mid_cycle()),
        },
        Scenario {
            name: "malformed and truncated bodies",
            run: || Box::pin(malformed_bodies()),
        },
        Scenario {
            name: "human edits between read and write",
            run: || Box::pin(human_edits()),
        },
        Scenario {
            name: "kill -9 mid-apply and restart",
            run: || Box::pin(kill_9_mid_apply()),
        },
        Scenario {
            name: "all faults in one cycle",
            run: || Box::pin(everything_at_once()),
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_suite() {
    logs(); // install the capturing subscriber before anything logs
    let started = Instant::now();
    let mut tallies = Vec::new();
    for scenario in scenarios() {
        let t0 = Instant::now();
        logs().clear();
        // A panic in a scenario (a broken setup) is a failed scenario, not a lost summary.
        let tally = match AssertUnwindSafe((scenario.run)()).catch_unwind().await {
            Ok(t) => t,
            Err(panic) => {
                let mut t = Tally::new(scenario.name);
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                t.problems.push(format!("panicked: {text}"));
                t
            }
        };
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
        tallies.push(tally);
    }
    let injected: u64 = tallies.iter().map(|t| t.injected).sum();
    let survived: u64 = tallies.iter().map(Tally::survived).sum();
    let lost: u64 = tallies.iter().map(|t| t.lost).sum();
    let overwritten: u64 = tallies.iter().map(|t| t.overwritten).sum();
    println!(
        "faults: {injected} injected, {survived} survived, {lost} lost, {overwritten} overwritten"
    );
    eprintln!("fault suite took {} ms", started.elapsed().as_millis());
    let problems: Vec<String> = tallies
        .iter()
        .flat_map(|t| t.problems.iter().map(move |p| format!("{}: {p}", t.name)))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(lost, 0);
    assert_eq!(overwritten, 0);
    assert_eq!(survived, injected);
    assert!(
        injected >= 40,
        "too few faults fired to prove anything: {injected}"
    );
}

// ---------------------------------------------------------------- captured logs

/// Everything the library logs (debug and up), for the "visible in the logs" checks.
/// Scenarios run one after another, so clearing at the start of each isolates them.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

fn logs() -> &'static Capture {
    static LOGS: OnceLock<Capture> = OnceLock::new();
    LOGS.get_or_init(|| {
        let capture = Capture::default();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "skill_tuner=debug,skill_tuner::sim=warn",
            ))
            .with_ansi(false)
            .with_writer(capture.clone())
            .try_init();
        capture
    })
}

fn expect_log(t: &mut Tally, needle: &str) {
    let text = logs().text();
    t.require(
        text.contains(needle),
        format!("no log line containing {needle:?}"),
    );
}

// ---------------------------------------------------------------- the rig

/// A unique temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "skill-tuner-faults-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Rig {
    sim: Simulator,
    settings: Settings,
    client: GenesysClient,
    ledger: Ledger,
    _dir: TempDir,
}

/// Settings that let a cycle apply its plan, retry fast, and alert nobody.
fn relaxed(sim: &Simulator) -> Settings {
    let mut s = settings_for(sim, 60_000);
    s.breaker.max_changed_share = 1.0;
    s.breaker.min_data_share = 0.0;
    s.breaker.max_demotion_share = 1.0;
    s.alerts.workitem.enabled = false;
    s.alerts.webhook.enabled = false;
    s.genesys.max_concurrency = 4;
    s.genesys.request_timeout_secs = 5;
    s.genesys.retry.base_delay_ms = 20;
    s.genesys.retry.max_delay_ms = 200;
    s
}

async fn rig(tag: &str, agents: usize) -> Rig {
    let sim = Simulator::start(SimConfig {
        agents,
        seed: 7,
        rate_limit_per_minute: 0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let settings = relaxed(&sim);
    rig_with(tag, sim, settings).await
}

async fn rig_with(tag: &str, sim: Simulator, settings: Settings) -> Rig {
    let client = runtime::client_with_secret(&settings, sim_secret()).unwrap();
    runtime::start_client(&client, &settings).await.unwrap();
    let dir = TempDir::new(tag);
    let ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
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
        let scratch = Ledger::in_memory().unwrap();
        let report = run_cycle(
            &self.client,
            &self.settings,
            &scratch,
            Mode::Plan,
            &StopSignal::default(),
        )
        .await
        .unwrap();
        report
            .changes
            .into_iter()
            .filter(|c| c.status == "planned")
            .collect()
    }

    fn skill_id(&self, name: &str) -> String {
        self.sim
            .org()
            .skills()
            .into_iter()
            .find(|(_, n)| n == name)
            .unwrap()
            .0
    }

    async fn once(&self) -> Result<CycleReport, skill_tuner::cycle::CycleError> {
        run_cycle(
            &self.client,
            &self.settings,
            &self.ledger,
            Mode::Once,
            &StopSignal::default(),
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

/// A value that is neither `a` nor `b` (a person's edit).
fn other_than(a: f64, b: f64) -> f64 {
    [0.5, 1.5, 2.5, 3.5, 4.5]
        .into_iter()
        .find(|v| (v - a).abs() > 1e-6 && (v - b).abs() > 1e-6)
        .unwrap()
}

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
                None => !close(now, c.before),
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
    let agents: BTreeSet<&str> = rows
        .iter()
        .filter(|c| c.status == ChangeStatus::Applied)
        .map(|c| c.agent_id.as_str())
        .collect();
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
    let mut t = Tally::new("429 storm");
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
        report.outcome == "ok",
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
    let mut t = Tally::new("5xx burst");
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
        report.outcome == "partial",
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
    let mut t = Tally::new("latency spike and timeouts");
    let sim = Simulator::start(SimConfig {
        agents: 40,
        seed: 7,
        rate_limit_per_minute: 0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
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
        report.outcome == "ok",
        format!("outcome {}", report.outcome),
    );
    check_run(&mut t, &r, &report, writes_before, &[]);
    expect_log(&mut t, "Timeout");
    t
}

/// Every token is revoked after the first write: the next calls get 401, one new token is
/// fetched, each refused call is repeated once, and the cycle finishes.
async fn token_revoked_mid_cycle() -> Tally {
    let mut t = Tally::new("token revoked mid-cycle");
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
        report.outcome == "ok",
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
    let mut t = Tally::new("malformed and truncated bodies");
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
            .is_some_and(|run| run.outcome.as_deref() == Some("failed")),
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
        report.outcome == "ok",
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
    let mut t = Tally::new("human edits between read and write");
    let r = rig("edits", 40).await;
    let plan = one_per_agent(&r.preview().await);
    assert!(plan.len() >= 3, "need three changing agents: {plan:?}");
    r.sim.reset_counters();
    let writes_before = r.sim.org().write_count();
    let f = r.sim.faults();
    let mut edits: Vec<Edit> = Vec::new();
    for (i, c) in plan.iter().take(2).enumerate() {
        let skill = r.skill_id(&c.skill);
        let value = other_than(c.current, c.proposed);
        if i == 0 {
            f.edit_on_next_read(&c.agent_id, &skill, value);
        } else {
            f.edit_after_next_read(&c.agent_id, &skill, value);
            f.conflict_next_patch(&c.agent_id, 1);
        }
        edits.push((c.agent_id.clone(), skill, value));
    }
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
    let mut t = Tally::new("all faults in one cycle");
    let sim = Simulator::start(SimConfig {
        agents: 40,
        seed: 7,
        rate_limit_per_minute: 0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut settings = relaxed(&sim);
    settings.genesys.request_timeout_secs = 1;
    let r = rig_with("all", sim, settings).await;
    let plan = one_per_agent(&r.preview().await);
    assert!(plan.len() >= 6, "need six changing agents: {plan:?}");
    r.sim.reset_counters();
    let writes_before = r.sim.org().write_count();
    let f = r.sim.faults();
    let mut edits: Vec<Edit> = Vec::new();
    for (i, c) in plan.iter().take(2).enumerate() {
        let skill = r.skill_id(&c.skill);
        let value = other_than(c.current, c.proposed);
        if i == 0 {
            f.edit_on_next_read(&c.agent_id, &skill, value);
        } else {
            f.edit_after_next_read(&c.agent_id, &skill, value);
            f.conflict_next_patch(&c.agent_id, 1);
        }
        edits.push((c.agent_id.clone(), skill, value));
    }
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

fn config_file(dir: &Path, settings: &Settings, ledger: &Path) -> PathBuf {
    let mut s = settings.clone();
    s.history.path = ledger.to_path_buf();
    let path = dir.join("skill-tuner.toml");
    std::fs::write(&path, s.to_toml()).unwrap();
    path
}

fn binary(args: &[&str], config: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_skill-tuner"));
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env(
            "SKILL_TUNER_CLIENT_SECRET",
            SimConfig::default().client_secret,
        )
        .env_remove("SKILL_TUNER_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("STATE_DIRECTORY")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

async fn output(mut cmd: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// `once` in the real binary is killed with SIGKILL in the middle of its writes; the next
/// start reconciles the killed run against the org (no write), and a second `once` finishes
/// the job without writing any skill the killed run already applied.
async fn kill_9_mid_apply() -> Tally {
    let mut t = Tally::new("kill -9 mid-apply and restart");
    let dir = TempDir::new("kill9");
    let ledger_path = dir.path().join("ledger.db");
    let sim = Simulator::start(SimConfig {
        agents: 40,
        seed: 7,
        rate_limit_per_minute: 0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut settings = relaxed(&sim);
    // Straight to the target, so a re-plan of an applied skill finds nothing to do.
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

    let killed = {
        let ledger = Ledger::open(&ledger_path).unwrap();
        let unfinished = ledger.unfinished_runs().unwrap();
        t.require(unfinished.len() == 1, "the killed run is not unfinished");
        unfinished[0].id
    };

    // The restart: `once` reconciles first, then finishes the job.
    let out = output(binary(&["once", "--json"], &config)).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    t.require(out.status.success(), format!("restart failed: {stderr}"));
    t.require(
        stderr.contains("reconciled runs left unfinished by an interruption"),
        format!("the restart did not log the reconciliation: {stderr}"),
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let second = report["run_id"].as_i64().unwrap();
    let ledger = Ledger::open(&ledger_path).unwrap();
    let run = ledger.run(killed).unwrap();
    t.require(
        run.outcome.as_deref() == Some("interrupted"),
        format!("killed run outcome {:?}", run.outcome),
    );
    let first_rows = ledger.changes(killed).unwrap();
    let second_rows = ledger.changes(second).unwrap();
    // The killed run's rows against the org, and its writes: one per agent it applied.
    let applied_first: BTreeSet<(String, String)> = first_rows
        .iter()
        .filter(|c| c.status == ChangeStatus::Applied)
        .map(|c| (c.agent_id.clone(), c.skill_id.clone()))
        .collect();
    t.require(!applied_first.is_empty(), "nothing applied before the kill");
    t.require(
        first_rows.iter().any(|c| c.status == ChangeStatus::Skipped),
        "the kill came too late to test anything",
    );
    let first_agents: BTreeSet<&str> = applied_first.iter().map(|(a, _)| a.as_str()).collect();
    t.require(
        first_agents.len() as u64 == writes_at_kill,
        format!(
            "{writes_at_kill} writes before the kill, {} agents reconciled as applied",
            first_agents.len()
        ),
    );
    // Skipped rows of the killed run were re-planned by the second run; check the second run's
    // rows against the org, and the killed run's rows that the second did not touch.
    let touched: BTreeSet<(String, String)> = second_rows
        .iter()
        .map(|c| (c.agent_id.clone(), c.skill_id.clone()))
        .collect();
    let untouched: Vec<ChangeRecord> = first_rows
        .iter()
        .filter(|c| !touched.contains(&(c.agent_id.clone(), c.skill_id.clone())))
        .cloned()
        .collect();
    check_rows(&mut t, &sim, &untouched, first_agents.len() as u64, &[]);
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
