//! The real `skill-tuner run` binary against the in-process simulator: signals, reload,
//! graceful stop, overlap guard, `/metrics`, sd_notify. Only 127.0.0.1 and a temp dir.
//!
//! Built for a loaded 2-core machine: every wait polls with a generous deadline.

use crate::common;

use common::sim::start_sim;
use common::{api_calls_with_status, cycles_total, metric, metric_or_zero, Daemon, TempDir};
use genesys_sim::{SimConfig, Simulator};
use skill_tuner::history::{Ledger, RunOutcome};
use std::collections::{BTreeMap, HashSet};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A 60-agent org with 4 skills.
async fn sim_60() -> Simulator {
    start_sim(60, |c| c.skills = 4).await
}

/// A config for `sim`; `daemon` and `extra` are raw TOML appended to their sections.
fn config_text(sim: &Simulator, dir: &Path, daemon: &str, extra: &str) -> String {
    format!(
        r#"
[genesys]
api_base_url = "{base}"
login_base_url = "{base}"
client_id = "{id}"
rate_limit_per_minute = 6000
burst = 50
{extra_genesys}

[breaker]
max_changed_share = 1.0

[history]
path = "{ledger}"

[daemon]
shutdown_grace_secs = 30
{spacing}
{daemon}

{extra}
"#,
        base = sim.base_url(),
        id = SimConfig::default().client_id,
        ledger = dir.join("ledger.db").display(),
        extra_genesys = "",
        // Tests start cycles back to back; the spacing test sets its own.
        spacing = if daemon.contains("min_spacing_secs") {
            ""
        } else {
            "min_spacing_secs = 0"
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_valid_config_and_keeps_the_old_one_on_a_broken_config() {
    let sim = sim_60().await;
    let dir = TempDir::new("hup");
    let mut d = Daemon::spawn(
        &dir.0,
        &config_text(&sim, &dir.0, r#"schedule = "0 0 2 * * *""#, ""),
        &[],
    );
    d.wait_ready().await;
    let m = d.metrics().await;
    assert!(m.contains(r#"schedule="0 0 2 * * * UTC""#), "{m}");
    assert_eq!(
        metric(&m, "skill_tuner_config_last_reload_successful"),
        Some(1.0)
    );
    // POST /run is off by default.
    assert_eq!(d.post("/run").await, Some(404));

    // A valid change: the new schedule is registered.
    d.write_config(&config_text(
        &sim,
        &dir.0,
        "schedule = \"0 30 3 * * *\"\ntime_zone = \"Europe/Dublin\"",
        "",
    ));
    d.signal("HUP");
    let m = d
        .wait_metrics("a successful reload", 20, |m| {
            metric(m, r#"skill_tuner_config_reloads_total{result="ok"}"#) == Some(1.0)
        })
        .await;
    assert!(
        m.contains(r#"schedule="0 30 3 * * * Europe/Dublin""#),
        "{m}"
    );
    assert_eq!(
        metric(&m, "skill_tuner_config_last_reload_successful"),
        Some(1.0)
    );
    let first_success = metric(
        &m,
        "skill_tuner_config_last_reload_success_timestamp_seconds",
    );

    // Broken in three ways: a bad value, a syntax error, missing credentials.
    let broken = [
        (
            config_text(&sim, &dir.0, r#"schedule = "every day""#, ""),
            "daemon.schedule",
        ),
        ("[genesys\nclient_id = ".to_string(), "skill-tuner.toml"),
        (
            config_text(&sim, &dir.0, r#"schedule = "0 0 4 * * *""#, "").replace(
                "burst = 50",
                "burst = 50\nclient_secret_env = \"ST_TEST_NO_SUCH_SECRET_VAR\"",
            ),
            "ST_TEST_NO_SUCH_SECRET_VAR",
        ),
    ];
    for (i, (text, names)) in broken.iter().enumerate() {
        let m = d.reload_failing(text, (i + 1) as f64).await;
        assert_eq!(
            metric(&m, "skill_tuner_config_last_reload_successful"),
            Some(0.0)
        );
        assert!(
            m.contains(r#"schedule="0 30 3 * * * Europe/Dublin""#),
            "old config kept: {m}"
        );
        assert_eq!(
            metric(
                &m,
                "skill_tuner_config_last_reload_success_timestamp_seconds"
            ),
            first_success
        );
        assert!(
            d.alive(),
            "the daemon exited on a bad reload:\n{}",
            d.logs()
        );
        assert_eq!(d.get("/healthz").await.map(|r| r.0), Some(200));
        assert_eq!(d.get("/readyz").await.map(|r| r.0), Some(200));
        let logs = d.logs();
        assert!(
            logs.contains("config reload failed") && logs.contains(names),
            "the log names the file/key ({names}):\n{logs}"
        );
    }

    d.signal("TERM");
    let status = d.wait_exit(20).await;
    assert_eq!(status.code(), Some(0), "logs:\n{}", d.logs());
    sim.shutdown().await;
}

/// A daemon whose start-up cycle is mid-apply: bulk writes take `latency`, two at a time, and
/// the first has landed.
async fn mid_apply_daemon(sim: &Simulator, dir: &TempDir, latency: Duration) -> Daemon {
    sim.faults().latency_for("routingskills/bulk", latency);
    let config = config_text(
        sim,
        &dir.0,
        "schedule = \"0 0 2 * * *\"\nrun_on_start = true",
        "",
    )
    .replace("burst = 50", "burst = 50\nmax_concurrency = 2");
    let mut d = Daemon::spawn(&dir.0, &config, &[]);
    let org = sim.org();
    let deadline = Instant::now() + Duration::from_secs(30);
    while org.write_count() < 1 {
        assert!(
            Instant::now() < deadline,
            "no write started; logs:\n{}",
            d.logs()
        );
        assert!(d.alive(), "daemon died:\n{}", d.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_cycle_exits_zero_and_leaves_no_agent_half_applied() {
    let sim = sim_60().await;
    // Slow bulk writes, two at a time: the cycle is mid-apply for several seconds.
    let dir = TempDir::new("term");
    let mut d = mid_apply_daemon(&sim, &dir, Duration::from_millis(800)).await;
    let org = sim.org();
    d.signal("TERM");
    let status = d.wait_exit(30).await;
    assert_eq!(status.code(), Some(0), "logs:\n{}", d.logs());

    let ledger = Ledger::open(&dir.0.join("ledger.db")).unwrap();
    let runs = ledger.recent_runs(10).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert!(
        run.finished_at.is_some(),
        "the outcome was recorded: {run:?}"
    );
    assert_eq!(run.outcome, Some(RunOutcome::Interrupted), "{run:?}");
    let changes = ledger.changes(run.id).unwrap();
    let mut by_agent: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for c in &changes {
        by_agent
            .entry(c.agent_id.as_str())
            .or_default()
            .insert(c.status.as_str());
        let now = org.proficiency(&c.agent_id, &c.skill_id);
        match c.status.as_str() {
            "applied" => assert_eq!(now, Some(c.after), "{c:?}"),
            "skipped" => assert_eq!(now, Some(c.before), "{c:?}"),
            other => panic!("unexpected status {other} after a stop: {c:?}"),
        }
    }
    for (agent, statuses) in &by_agent {
        assert_eq!(
            statuses.len(),
            1,
            "agent {agent} half applied: {statuses:?}"
        );
    }
    let applied_agents = by_agent.values().filter(|s| s.contains("applied")).count();
    let skipped_agents = by_agent.values().filter(|s| s.contains("skipped")).count();
    assert!(applied_agents >= 1, "{by_agent:?}");
    assert!(skipped_agents >= 1, "the stop came mid-cycle: {by_agent:?}");
    assert_eq!(org.write_count(), applied_agents as u64);
    assert!(d.logs().contains("stopping"), "{}", d.logs());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_longer_than_the_schedule_interval_never_overlaps() {
    let sim = sim_60().await;
    // Every cycle lists users once; 2.5 s there makes each cycle outlast the 2 s interval.
    sim.faults()
        .latency_for("/api/v2/users", Duration::from_millis(2500));
    let dir = TempDir::new("overlap");
    // The default breaker trips (no writes), so cycles stay short apart from the latency.
    let config = config_text(&sim, &dir.0, r#"schedule = "*/2 * * * * *""#, "")
        .replace("max_changed_share = 1.0", "max_changed_share = 0.1");
    let mut d = Daemon::spawn(&dir.0, &config, &[]);
    d.wait_metrics("two cycles and a skipped tick", 40, |m| {
        cycles_total(m) >= 2.0
            && metric_or_zero(m, r#"skill_tuner_ticks_skipped_total{reason="overlap"}"#) >= 1.0
    })
    .await;
    d.signal("TERM");
    assert_eq!(d.wait_exit(30).await.code(), Some(0), "{}", d.logs());
    assert!(d.logs().contains("cycles never overlap"));

    let ledger = Ledger::open(&dir.0.join("ledger.db")).unwrap();
    let mut runs = ledger.recent_runs(100).unwrap();
    runs.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    assert!(runs.len() >= 2, "{runs:?}");
    for pair in runs.windows(2) {
        let end = pair[0].finished_at.as_deref().expect("finished");
        assert!(
            end <= pair[1].started_at.as_str(),
            "run {} ended {end} after run {} started {}",
            pair[0].id,
            pair[1].id,
            pair[1].started_at
        );
    }
    sim.shutdown().await;
}

/// A strict-enough reader of the Prometheus text format (0.0.4): every sample belongs to a
/// family declared by `# TYPE` before it, names and labels are well formed, values parse.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    assert!(text.ends_with('\n'), "ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().unwrap_or_default();
            assert!(valid_name(name), "bad name in {line}");
            if kind == "TYPE" {
                let t = parts.next().unwrap_or_default();
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                    "{line}"
                );
                assert!(
                    types.insert(name.to_string(), t.to_string()).is_none(),
                    "duplicate TYPE {name}"
                );
            } else {
                assert_eq!(kind, "HELP", "{line}");
            }
            continue;
        }
        assert!(!line.trim().is_empty(), "no blank lines expected");
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let name = series.split('{').next().unwrap();
        assert!(valid_name(name), "bad name in {line}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("bad labels in {line}"));
            // name="value" pairs with \\, \" and \n escapes.
            let mut chars = inner.chars().peekable();
            loop {
                let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                assert!(valid_name(&key), "bad label name in {line}");
                assert_eq!(chars.next(), Some('"'), "{line}");
                loop {
                    match chars.next() {
                        Some('\\') => assert!(
                            matches!(chars.next(), Some('\\' | '"' | 'n')),
                            "bad escape in {line}"
                        ),
                        Some('"') => break,
                        Some(_) => {}
                        None => panic!("unterminated label in {line}"),
                    }
                }
                match chars.next() {
                    Some(',') => continue,
                    None => break,
                    Some(c) => panic!("unexpected {c} in {line}"),
                }
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|base| types.get(*base).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        let t = types
            .get(family)
            .unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
        if t == "counter" {
            assert!(name.ends_with("_total"), "counter without _total: {line}");
            assert!(value >= 0.0, "{line}");
        }
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "duplicate series {series}"
        );
    }
    samples
}

/// A daemon on a nightly schedule with `POST /run` on, its token `RUN_TOKEN`.
fn spawn_with_run_endpoint(sim: &Simulator, dir: &TempDir) -> Daemon {
    Daemon::spawn(
        &dir.0,
        &config_text(
            sim,
            &dir.0,
            "schedule = \"0 0 2 * * *\"\nenable_run_endpoint = true",
            "",
        ),
        &[("SKILL_TUNER_RUN_TOKEN", RUN_TOKEN)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_after_runs_by_post_and_sigusr1() {
    let sim = sim_60().await;
    let dir = TempDir::new("metrics");
    let mut d = spawn_with_run_endpoint(&sim, &dir);
    d.wait_ready().await;
    assert_eq!(
        d.post_with("/run", Some(RUN_TOKEN)).await.map(|r| r.0),
        Some(202)
    );
    d.wait_metrics("a cycle by POST /run", 30, |m| cycles_total(m) >= 1.0)
        .await;
    d.signal("USR1");
    let text = d
        .wait_metrics("a cycle by SIGUSR1", 30, |m| cycles_total(m) >= 2.0)
        .await;
    let resp = reqwest::get(format!("http://{}/metrics", d.admin))
        .await
        .unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    // Prometheus asks for OpenMetrics first, and gets it.
    let open = reqwest::Client::new()
        .get(format!("http://{}/metrics", d.admin))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert!(open.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text; version=1.0.0"));
    let open = open.text().await.unwrap();
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(
        open.contains("# TYPE skill_tuner_cycles counter\n"),
        "{open}"
    );

    let s = parse_prometheus(&text);
    assert_eq!(s["skill_tuner_cycle_duration_seconds_count"], 2.0);
    assert_eq!(
        s[r#"skill_tuner_cycle_duration_seconds_bucket{le="+Inf"}"#],
        2.0
    );
    assert_eq!(s[r#"skill_tuner_cycles_total{outcome="ok"}"#], 2.0);
    assert!(s["skill_tuner_last_success_timestamp_seconds"] > 1.7e9);
    assert!(s["skill_tuner_token_requests_total"] >= 1.0);
    assert!(s[r#"skill_tuner_changes_total{status="applied"}"#] >= 1.0);
    assert_eq!(s["skill_tuner_ready"], 1.0);
    // Every route called has its latency histogram, its buckets adding up to its count.
    let users = r#"method="GET",route="/api/v2/users""#;
    let count = s[&format!("skill_tuner_api_request_duration_seconds_count{{{users}}}")];
    assert!(count >= 1.0, "{text}");
    assert_eq!(
        s[&format!(r#"skill_tuner_api_request_duration_seconds_bucket{{{users},le="+Inf"}}"#)],
        count
    );
    assert!(s[&format!("skill_tuner_api_request_duration_seconds_sum{{{users}}}")] > 0.0);
    assert!(s.contains_key(r#"skill_tuner_api_retries_total{reason="rate_limited"}"#));
    assert!(s.contains_key("skill_tuner_config_last_reload_success_timestamp_seconds"));
    assert!(
        s.keys().any(
            |k| k.starts_with("skill_tuner_api_calls_total{method=\"GET\",route=\"/api/")
                && k.contains("status=\"200\"")
        ),
        "{text}"
    );
    d.signal("INT");
    assert_eq!(d.wait_exit(20).await.code(), Some(0), "{}", d.logs());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sd_notify_messages_arrive_on_the_notify_socket() {
    let sim = sim_60().await;
    let dir = TempDir::new("notify");
    let sock_path = dir.0.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_reader = stop.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !stop_reader.load(Ordering::SeqCst) {
            if let Ok(n) = sock.recv(&mut buf) {
                let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    });
    let mut d = Daemon::spawn(
        &dir.0,
        &config_text(&sim, &dir.0, r#"schedule = "0 0 2 * * *""#, ""),
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let mut seen: Vec<String> = Vec::new();
    let wait_for = |what: &str, seen: &mut Vec<String>| -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(msg) = rx.recv_timeout(Duration::from_millis(100)) {
                seen.push(msg.clone());
                if msg.lines().any(|l| l == what) {
                    return msg;
                }
            }
            assert!(Instant::now() < deadline, "no {what}; seen {seen:?}");
        }
    };
    wait_for("READY=1", &mut seen);
    // Pings at half the 1 s watchdog interval, from the loop: several within 2 s.
    let ping = |m: &&String| m.lines().eq(["WATCHDOG=1"]);
    let before = seen.iter().filter(ping).count();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        if let Ok(msg) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(msg);
        }
    }
    let pings = seen.iter().filter(ping).count() - before;
    assert!(pings >= 2, "watchdog pings in 2 s: {pings}; {seen:?}");

    d.wait_ready().await;
    // While a cycle runs, STATUS says so (not "idle"), then idle again once it is done.
    d.signal("USR1");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut statuses = Vec::new();
    while !statuses
        .iter()
        .any(|s: &String| s.starts_with("STATUS=idle"))
    {
        if let Ok(msg) = rx.recv_timeout(Duration::from_millis(100)) {
            statuses.extend(
                msg.lines()
                    .filter(|l| l.starts_with("STATUS="))
                    .map(String::from),
            );
            seen.push(msg);
        }
        assert!(
            Instant::now() < deadline,
            "no idle STATUS after the cycle; seen {seen:?}"
        );
    }
    assert!(
        statuses[0].starts_with("STATUS=running cycle (signal) since "),
        "{statuses:?}"
    );
    d.signal("HUP");
    let reloading = wait_for("RELOADING=1", &mut seen);
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("MONOTONIC_USEC")
        .parse()
        .unwrap();
    assert!(usec > 0);
    wait_for("READY=1", &mut seen);
    d.signal("TERM");
    wait_for("STOPPING=1", &mut seen);
    assert_eq!(d.wait_exit(20).await.code(), Some(0), "{}", d.logs());
    stop.store(true, Ordering::SeqCst);
    reader.join().unwrap();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_down_at_start_keeps_the_daemon_up_but_not_ready_until_login_works() {
    let sim = sim_60().await;
    sim.faults().login_down(true);
    let dir = TempDir::new("login");
    let mut d = Daemon::spawn(
        &dir.0,
        &config_text(&sim, &dir.0, r#"schedule = "0 0 2 * * *""#, ""),
        &[],
    );
    let m = d
        .wait_metrics("the admin listener", 20, |m| {
            m.contains("skill_tuner_build_info{")
        })
        .await;
    assert_eq!(metric(&m, "skill_tuner_token_valid"), Some(0.0));
    assert_eq!(d.get("/healthz").await.map(|r| r.0), Some(200));
    let (status, body) = d.get("/readyz").await.unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("token"), "{body}");
    // A run request while not ready is skipped, not fatal.
    d.signal("USR1");
    d.wait_metrics("a not-ready skip", 20, |m| {
        metric_or_zero(m, r#"skill_tuner_ticks_skipped_total{reason="not_ready"}"#) >= 1.0
    })
    .await;
    assert!(d.alive());
    sim.faults().login_down(false);
    d.wait_ready().await;
    d.signal("TERM");
    assert_eq!(d.wait_exit(20).await.code(), Some(0), "{}", d.logs());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_exits_at_once_and_the_grace_period_bounds_the_wait() {
    let sim = sim_60().await;
    // Each bulk write takes 6 s: a stop has to wait for the writes in flight.
    sim.faults()
        .latency_for("routingskills/bulk", Duration::from_secs(6));
    let dirs = [TempDir::new("second"), TempDir::new("grace")];
    let daemon_cfg = |grace: u64| {
        format!("schedule = \"0 0 2 * * *\"\nrun_on_start = true\nshutdown_grace_secs = {grace}")
    };
    let mut second = Daemon::spawn(
        &dirs[0].0,
        &config_text(&sim, &dirs[0].0, &daemon_cfg(60), "")
            .replace("shutdown_grace_secs = 30\n", ""),
        &[],
    );
    let mut grace = Daemon::spawn(
        &dirs[1].0,
        &config_text(&sim, &dirs[1].0, &daemon_cfg(1), "")
            .replace("shutdown_grace_secs = 30\n", ""),
        &[],
    );
    for d in [&second, &grace] {
        d.wait_metrics("a cycle mid-apply", 30, |m| {
            metric(m, "skill_tuner_cycle_running") == Some(1.0)
                && metric_or_zero(m, r#"skill_tuner_api_calls_total{method="GET",route="/api/v2/users/{id}/routingskills",status="200"}"#) >= 1.0
        })
        .await;
    }
    second.signal("TERM");
    grace.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !second.logs().contains("stopping: the running cycle") {
        assert!(Instant::now() < deadline, "{}", second.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = Instant::now();
    second.signal("TERM");
    assert_eq!(
        second.wait_exit(20).await.code(),
        Some(1),
        "{}",
        second.logs()
    );
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    assert!(second.logs().contains("second stop signal"));

    assert_eq!(
        grace.wait_exit(20).await.code(),
        Some(1),
        "{}",
        grace.logs()
    );
    assert!(grace
        .logs()
        .contains("did not finish within daemon.shutdown_grace_secs"));
    sim.shutdown().await;
}

/// Writes `value` as a private (0600) file at `path`, replacing it.
fn write_private(path: &Path, value: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut f, value.as_bytes()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_credentials_that_cannot_log_in_keeps_the_working_client() {
    let sim = sim_60().await;
    let dir = TempDir::new("rotate");
    let secret = dir.0.join("client_secret");
    write_private(&secret, &SimConfig::default().client_secret);
    let config = config_text(&sim, &dir.0, r#"schedule = "0 0 2 * * *""#, "").replace(
        "burst = 50",
        &format!("burst = 50\nclient_secret_file = \"{}\"", secret.display()),
    );
    let mut d = Daemon::spawn(&dir.0, &config, &[]);
    d.wait_ready().await;

    // A wrong secret rotated in: one token request says 401, so the reload fails and the
    // client that works stays.
    write_private(&secret, "not-the-secret-9f3e");
    d.signal("HUP");
    let m = d
        .wait_metrics("the reload with a wrong secret to fail", 30, |m| {
            metric(m, r#"skill_tuner_config_reloads_total{result="failed"}"#) == Some(1.0)
        })
        .await;
    assert_eq!(
        metric(&m, r#"skill_tuner_config_reloads_total{result="ok"}"#),
        Some(0.0)
    );
    assert_eq!(
        metric(&m, "skill_tuner_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(metric(&m, "skill_tuner_token_valid"), Some(1.0), "{m}");
    assert_eq!(d.get("/readyz").await.map(|r| r.0), Some(200));
    let logs = d.logs();
    assert!(
        logs.contains("config reload failed") && logs.contains("HTTP 401"),
        "the log gives the reason:\n{logs}"
    );
    assert!(
        !logs.contains("not-the-secret-9f3e"),
        "the secret was logged"
    );
    // The running client still runs cycles.
    d.signal("USR1");
    d.wait_metrics("a cycle on the kept client", 30, |m| {
        metric_or_zero(m, r#"skill_tuner_cycles_total{outcome="ok"}"#) >= 1.0
    })
    .await;

    // Login unreachable: a changed `[genesys]` cannot be verified, so it is refused too.
    write_private(&secret, &SimConfig::default().client_secret);
    sim.faults().login_down(true);
    d.write_config(&config.replace("burst = 50", "burst = 40"));
    d.signal("HUP");
    d.wait_metrics("the unverifiable reload to fail", 30, |m| {
        metric(m, r#"skill_tuner_config_reloads_total{result="failed"}"#) == Some(2.0)
    })
    .await;
    assert!(d.logs().contains("HTTP 503"), "{}", d.logs());
    assert_eq!(d.get("/readyz").await.map(|r| r.0), Some(200));

    // The next SIGHUP tries again; login works now, the client is rebuilt.
    sim.faults().login_down(false);
    d.signal("HUP");
    let m = d
        .wait_metrics("a successful reload", 30, |m| {
            metric(m, r#"skill_tuner_config_reloads_total{result="ok"}"#) == Some(1.0)
        })
        .await;
    assert_eq!(
        metric(&m, "skill_tuner_config_last_reload_successful"),
        Some(1.0)
    );
    assert!(
        metric_or_zero(&m, "skill_tuner_token_failures_total") >= 2.0,
        "the refused logins are counted: {m}"
    );
    assert!(d.logs().contains("client_rebuilt=true"), "{}", d.logs());
    d.wait_ready().await;
    d.signal("TERM");
    assert_eq!(d.wait_exit(20).await.code(), Some(0), "{}", d.logs());
    sim.shutdown().await;
}

/// The bearer token the tests give `POST /run` (through `SKILL_TUNER_RUN_TOKEN`).
const RUN_TOKEN: &str = "test-run-token-4f1c2a9e7b3d5a60";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_with_login_down_is_not_ready_until_login_works() {
    let sim = sim_60().await;
    let dir = TempDir::new("revoked");
    let mut d = Daemon::spawn(
        &dir.0,
        &config_text(&sim, &dir.0, r#"schedule = "0 0 2 * * *""#, ""),
        &[],
    );
    d.wait_ready().await;
    sim.faults().revoke_tokens();
    sim.faults().login_down(true);
    d.signal("USR1");
    d.wait_metrics("a failed cycle", 30, |m| {
        metric_or_zero(m, r#"skill_tuner_cycles_total{outcome="failed"}"#) >= 1.0
    })
    .await;
    let (status, body) = d.get("/readyz").await.unwrap();
    assert_eq!(
        status, 503,
        "/readyz with a revoked token and login down: {body}"
    );
    assert!(body.contains("token"), "{body}");
    let m = d.metrics().await;
    assert_eq!(metric(&m, "skill_tuner_token_valid"), Some(0.0), "{m}");
    assert_eq!(metric(&m, "skill_tuner_ready"), Some(0.0), "{m}");
    // Not ready: the next request is skipped instead of failing against the API again.
    d.signal("USR1");
    d.wait_metrics("a not-ready skip", 20, |m| {
        metric_or_zero(m, r#"skill_tuner_ticks_skipped_total{reason="not_ready"}"#) >= 1.0
    })
    .await;

    // Login back: ready again by itself (the token is fetched anew in the background).
    sim.faults().login_down(false);
    let deadline = Instant::now() + Duration::from_secs(90);
    while d.get("/readyz").await.map(|r| r.0) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "not ready after login came back:\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        metric(&d.metrics().await, "skill_tuner_token_valid"),
        Some(1.0)
    );
    d.signal("USR1");
    d.wait_metrics("a cycle after login came back", 30, |m| {
        metric_or_zero(m, r#"skill_tuner_cycles_total{outcome="ok"}"#) >= 1.0
    })
    .await;
    d.signal("TERM");
    assert_eq!(d.wait_exit(20).await.code(), Some(0), "{}", d.logs());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_a_retry_after_wait_and_records_the_run_interrupted() {
    let sim = sim_60().await;
    let dir = TempDir::new("retry-after");
    let mut d = mid_apply_daemon(&sim, &dir, Duration::from_millis(300)).await;
    let org = sim.org();
    // Mid-apply, every request from now on is told to come back in 170 s.
    sim.faults().storm_429(100_000, 170);
    d.wait_metrics("a request waiting on Retry-After", 30, |m| {
        api_calls_with_status(m, 429) >= 1.0
    })
    .await;
    let t0 = Instant::now();
    d.signal("TERM");
    let status = d.exited_within(15).await;
    sim.faults().storm_429(0, 0);
    let Some(status) = status else {
        panic!(
            "still running {} s after SIGTERM: the Retry-After wait did not end; logs:\n{}",
            t0.elapsed().as_secs(),
            d.logs()
        );
    };
    assert_eq!(status.code(), Some(0), "logs:\n{}", d.logs());

    let path = dir.0.join("ledger.db");
    let ledger = Ledger::open(&path).unwrap();
    let runs = ledger.recent_runs(10).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(run.outcome, Some(RunOutcome::Interrupted), "{run:?}");
    assert!(run.finished_at.is_some(), "{run:?}");
    let lock = format!("{}.run-{}.lock", path.display(), run.id);
    assert!(!Path::new(&lock).exists(), "the run's lock is left: {lock}");
    let mut by_agent: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    let changes = ledger.changes(run.id).unwrap();
    for c in &changes {
        by_agent
            .entry(c.agent_id.as_str())
            .or_default()
            .insert(c.status.as_str());
        let now = org.proficiency(&c.agent_id, &c.skill_id);
        match c.status.as_str() {
            "applied" => assert_eq!(now, Some(c.after), "{c:?}"),
            "skipped" => assert_eq!(now, Some(c.before), "{c:?}"),
            other => panic!("unexpected status {other} after a stop: {c:?}"),
        }
    }
    assert!(
        by_agent.values().all(|s| s.len() == 1),
        "an agent half applied: {by_agent:?}"
    );
    assert!(
        by_agent.values().any(|s| s.contains("skipped")),
        "{by_agent:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_run_while_not_ready_answers_503_with_the_reason() {
    let sim = sim_60().await;
    sim.faults().login_down(true);
    let dir = TempDir::new("run-not-ready");
    let mut d = spawn_with_run_endpoint(&sim, &dir);
    d.wait_metrics("the admin listener", 20, |m| {
        m.contains("skill_tuner_build_info{")
    })
    .await;
    let (status, body) = d.post_with("/run", Some(RUN_TOKEN)).await.unwrap();
    assert_eq!(status, 503, "POST /run while not ready: {body}");
    assert!(
        body.contains("not ready") && body.contains("token"),
        "{body}"
    );
    assert_eq!(cycles_total(&d.metrics().await), 0.0);

    sim.faults().login_down(false);
    d.wait_ready().await;
    let (status, body) = d.post_with("/run", Some(RUN_TOKEN)).await.unwrap();
    assert_eq!(status, 202, "{body}");
    d.wait_metrics("the requested cycle", 30, |m| cycles_total(m) >= 1.0)
        .await;
    d.signal("TERM");
    assert_eq!(d.wait_exit(20).await.code(), Some(0), "{}", d.logs());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_admin_address_needs_admin_public() {
    let sim = sim_60().await;
    let port = common::free_port();
    let public = format!("0.0.0.0:{port}");
    let env = [("SKILL_TUNER__DAEMON__ADMIN_LISTEN", public.as_str())];
    let refused_dir = TempDir::new("public-refused");
    let mut refused = Daemon::spawn(
        &refused_dir.0,
        &config_text(&sim, &refused_dir.0, r#"schedule = "0 0 2 * * *""#, ""),
        &env,
    );
    let status = refused.exited_within(20).await;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(2),
        "0.0.0.0 without daemon.admin_public; logs:\n{}",
        refused.logs()
    );
    assert!(
        refused.logs().contains("daemon.admin_public"),
        "{}",
        refused.logs()
    );

    let dir = TempDir::new("public");
    let mut d = Daemon::spawn(
        &dir.0,
        &config_text(
            &sim,
            &dir.0,
            "schedule = \"0 0 2 * * *\"\nadmin_public = true",
            "",
        ),
        &env,
    );
    d.admin = format!("127.0.0.1:{port}");
    d.wait_ready().await;
    assert!(
        d.logs().contains("not loopback"),
        "a public listener is logged:\n{}",
        d.logs()
    );
    d.signal("TERM");
    assert_eq!(d.wait_exit(20).await.code(), Some(0), "{}", d.logs());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_run_needs_the_bearer_token_and_probes_do_not() {
    let sim = sim_60().await;
    let dir = TempDir::new("run-token");
    let mut d = spawn_with_run_endpoint(&sim, &dir);
    d.wait_ready().await;
    let wrong = "wrong-token-7c1d9b2e44aa0f31";
    for token in [None, Some(wrong), Some("")] {
        let (status, body) = d.post_with("/run", token).await.unwrap();
        assert_eq!(status, 401, "POST /run with {token:?}: {body}");
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(d.get(path).await.map(|r| r.0), Some(200), "{path}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        cycles_total(&d.metrics().await),
        0.0,
        "a refused request ran"
    );
    let (status, body) = d.post_with("/run", Some(RUN_TOKEN)).await.unwrap();
    assert_eq!(status, 202, "{body}");
    d.wait_metrics("the requested cycle", 30, |m| cycles_total(m) >= 1.0)
        .await;
    let logs = d.logs();
    assert!(
        logs.contains("POST /run refused") && logs.contains("POST /run accepted"),
        "requests are logged:\n{logs}"
    );
    assert!(
        !logs.contains(RUN_TOKEN) && !logs.contains(wrong),
        "a token was logged:\n{logs}"
    );
    d.signal("TERM");
    assert_eq!(d.wait_exit(20).await.code(), Some(0), "{}", d.logs());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_endpoint_without_a_token_is_refused_at_start_and_on_reload() {
    let sim = sim_60().await;
    let refused_dir = TempDir::new("no-token");
    let mut refused = Daemon::spawn(
        &refused_dir.0,
        &config_text(
            &sim,
            &refused_dir.0,
            "schedule = \"0 0 2 * * *\"\nenable_run_endpoint = true",
            "",
        ),
        &[],
    );
    let status = refused.exited_within(20).await;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(2),
        "enable_run_endpoint without a token; logs:\n{}",
        refused.logs()
    );
    let logs = refused.logs();
    assert!(
        logs.contains("daemon.run_token_file") && logs.contains("SKILL_TUNER_RUN_TOKEN"),
        "{logs}"
    );

    // Running with the endpoint off; a reload that turns it on without a token is refused.
    let dir = TempDir::new("no-token-reload");
    let off = config_text(&sim, &dir.0, r#"schedule = "0 0 2 * * *""#, "");
    let mut d = Daemon::spawn(&dir.0, &off, &[]);
    d.wait_ready().await;
    let on = off.replace(
        "shutdown_grace_secs = 30",
        "shutdown_grace_secs = 30\nenable_run_endpoint = true",
    );
    d.reload_failing(&on, 1.0).await;
    assert_eq!(
        d.post_with("/run", Some(RUN_TOKEN)).await.map(|r| r.0),
        Some(404)
    );
    // With a token file it is accepted.
    let token_file = dir.0.join("run_token");
    write_private(&token_file, RUN_TOKEN);
    d.write_config(&on.replace(
        "enable_run_endpoint = true",
        &format!(
            "enable_run_endpoint = true\nrun_token_file = \"{}\"",
            token_file.display()
        ),
    ));
    d.signal("HUP");
    d.wait_metrics("a successful reload", 30, |m| {
        metric(m, r#"skill_tuner_config_reloads_total{result="ok"}"#) == Some(1.0)
    })
    .await;
    assert_eq!(
        d.post_with("/run", Some(RUN_TOKEN)).await.map(|r| r.0),
        Some(202)
    );
    d.wait_metrics("the requested cycle", 30, |m| cycles_total(m) >= 1.0)
        .await;
    d.signal("TERM");
    assert_eq!(d.wait_exit(20).await.code(), Some(0), "{}", d.logs());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycle_starts_keep_min_spacing_whatever_the_trigger() {
    let sim = sim_60().await;
    let dir = TempDir::new("spacing");
    let spawned = Instant::now();
    let mut d = Daemon::spawn(
        &dir.0,
        &config_text(
            &sim,
            &dir.0,
            "schedule = \"0 0 2 * * *\"\nenable_run_endpoint = true\nmin_spacing_secs = 300",
            "",
        ),
        &[("SKILL_TUNER_RUN_TOKEN", RUN_TOKEN)],
    );
    d.wait_ready().await;
    assert_eq!(
        d.post_with("/run", Some(RUN_TOKEN)).await.map(|r| r.0),
        Some(202)
    );
    d.wait_metrics("the first cycle", 30, |m| cycles_total(m) >= 1.0)
        .await;
    // 21 requests in a burst: none starts a cycle; each says when one may start.
    let earliest = common::sim::test_now() + chrono::Duration::seconds(300);
    for i in 0..21 {
        let (status, body) = d.post_with("/run", Some(RUN_TOKEN)).await.unwrap();
        assert_eq!(status, 503, "request {i}: {body}");
        let when = body
            .split_whitespace()
            .find_map(|w| chrono::DateTime::parse_from_rfc3339(w).ok())
            .unwrap_or_else(|| panic!("no RFC 3339 time in {body:?}"));
        let latest = earliest
            + chrono::Duration::from_std(spawned.elapsed()).unwrap()
            + chrono::Duration::seconds(2);
        assert!(
            when >= earliest && when <= latest,
            "{when} not within {earliest}..{latest}: {body}"
        );
        assert!(body.contains("min_spacing"), "{body}");
    }
    // The same rule for a signal.
    d.signal("USR1");
    let m = d
        .wait_metrics("a min-spacing skip", 20, |m| {
            metric_or_zero(
                m,
                r#"skill_tuner_ticks_skipped_total{reason="min_spacing"}"#,
            ) >= 1.0
        })
        .await;
    assert_eq!(cycles_total(&m), 1.0, "{m}");
    d.signal("TERM");
    assert_eq!(d.wait_exit(20).await.code(), Some(0), "{}", d.logs());
    sim.shutdown().await;
}

/// The runs in the ledger, through `skill-tuner history --json`.
async fn history_json(config: &Path) -> Vec<serde_json::Value> {
    let out = common::binary::output(common::binary::binary(
        &["history", "--json", "--limit", "100"],
        config,
    ))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn triggers(runs: &[serde_json::Value]) -> Vec<String> {
    runs.iter()
        .map(|r| r["trigger"].as_str().unwrap_or("-").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_records_its_trigger() {
    let sim = sim_60().await;
    let dir = TempDir::new("trigger");
    let mut d = Daemon::spawn(
        &dir.0,
        &config_text(
            &sim,
            &dir.0,
            "schedule = \"*/5 * * * * *\"\nrun_on_start = true\nenable_run_endpoint = true",
            "",
        ),
        &[("SKILL_TUNER_RUN_TOKEN", RUN_TOKEN)],
    );
    d.wait_metrics("the start-up cycle", 30, |m| cycles_total(m) >= 1.0)
        .await;
    let runs = history_json(&d.config).await;
    let first = runs.last().unwrap();
    assert_eq!(first["mode"], "scheduled");
    assert_eq!(first["trigger"], "startup", "{runs:?}");

    // One run by each trigger (a request that meets a running cycle is tried again).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Vec::new();
    for wanted in ["http", "signal", "schedule"] {
        loop {
            last = triggers(&history_json(&d.config).await);
            if last.iter().any(|t| t == wanted) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no {wanted} run: {last:?}\n{}",
                d.logs()
            );
            match wanted {
                "http" => {
                    let _ = d.post_with("/run", Some(RUN_TOKEN)).await;
                }
                "signal" => d.signal("USR1"),
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    }
    d.signal("TERM");
    assert_eq!(d.wait_exit(30).await.code(), Some(0), "{}", d.logs());

    for command in ["once", "plan"] {
        let out = common::binary::output(common::binary::binary(&[command], &d.config)).await;
        assert!(
            out.status.code().is_some_and(|c| c != 1 && c != 2),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let runs = history_json(&d.config).await;
    let all = triggers(&runs);
    for wanted in ["startup", "http", "signal", "schedule", "once", "plan"] {
        assert!(all.iter().any(|t| t == wanted), "no {wanted} in {all:?}");
    }
    for run in &runs {
        let (mode, trigger) = (run["mode"].as_str().unwrap(), run["trigger"].as_str());
        match mode {
            "scheduled" => assert!(
                matches!(trigger, Some("startup" | "http" | "signal" | "schedule")),
                "{run}"
            ),
            other => assert_eq!(trigger, Some(other), "{run}"),
        }
    }
    let http = runs.iter().find(|r| r["trigger"] == "http").unwrap();
    let id = http["id"].as_i64().unwrap().to_string();
    let out = common::binary::output(common::binary::binary(&["show", &id], &d.config)).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("trigger http"), "{text}");
    let out = common::binary::output(common::binary::binary(
        &["export", "--format", "csv"],
        &d.config,
    ))
    .await;
    let csv = String::from_utf8_lossy(&out.stdout);
    let header: Vec<&str> = csv.lines().next().unwrap_or_default().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "run_trigger")
        .unwrap_or_else(|| panic!("no run_trigger column: {header:?}"));
    assert!(
        csv.lines()
            .skip(1)
            .any(|l| l.split(',').nth(col) == Some("http")),
        "{csv}"
    );
    let _ = last;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_that_cannot_open_means_not_ready_and_no_cycles_until_it_opens() {
    let sim = sim_60().await;
    let dir = TempDir::new("ledger");
    // The ledger's directory is a regular file: SQLite cannot open it.
    let blocker = dir.0.join("state");
    std::fs::write(&blocker, "not a directory").unwrap();
    let config = config_text(&sim, &dir.0, r#"schedule = "0 0 2 * * *""#, "").replace(
        &format!("path = \"{}\"", dir.0.join("ledger.db").display()),
        &format!("path = \"{}\"", blocker.join("ledger.db").display()),
    );
    let mut d = Daemon::spawn(&dir.0, &config, &[]);
    d.wait_metrics("the token", 20, |m| {
        metric(m, "skill_tuner_token_valid") == Some(1.0)
    })
    .await;
    let (status, body) = d.get("/readyz").await.unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("ledger"), "{body}");
    assert!(d.logs().contains("cannot open the history ledger"));
    d.signal("USR1");
    let m = d
        .wait_metrics("a not-ready skip", 20, |m| {
            metric_or_zero(m, r#"skill_tuner_ticks_skipped_total{reason="not_ready"}"#) >= 1.0
        })
        .await;
    assert_eq!(cycles_total(&m), 0.0);
    assert_eq!(sim.org().write_count(), 0);

    // Fixed on disk: the next run request opens it and runs.
    std::fs::remove_file(&blocker).unwrap();
    std::fs::create_dir(&blocker).unwrap();
    d.signal("USR1");
    d.wait_metrics("a cycle after the ledger opened", 30, |m| {
        cycles_total(m) >= 1.0
    })
    .await;
    d.wait_ready().await;
    d.signal("TERM");
    assert_eq!(d.wait_exit(20).await.code(), Some(0), "{}", d.logs());
    sim.shutdown().await;
}

/// Started inside a repeated hour (or a gap), the daemon's next run is in the future and it
/// runs nothing until then — no burst of cycles for ticks it thinks it missed. Also across
/// SIGHUP inside the same hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_inside_a_dst_change_the_next_run_is_in_the_future() {
    let sim = sim_60().await;
    // (now, zone, schedule): Berlin and New York inside their repeated hour, London in the
    // hour after its spring-forward jump.
    for (now, zone, schedule) in [
        ("2026-10-25T01:03:00Z", "Europe/Berlin", "0 */5 * * * *"),
        ("2026-11-01T06:10:00Z", "America/New_York", "0 30 1 * * *"),
        ("2027-03-28T01:03:00Z", "Europe/London", "0 30 1 * * *"),
    ] {
        let dir = TempDir::new("dst-start");
        let daemon = format!("schedule = \"{schedule}\"\ntime_zone = \"{zone}\"");
        let d = Daemon::spawn(
            &dir.0,
            &config_text(&sim, &dir.0, &daemon, ""),
            &[(skill_tuner::clock::NOW_ENV, now)],
        );
        d.wait_ready().await;
        let started = common::sim::instant(now).timestamp() as f64;
        let m = d.metrics().await;
        let next = metric(&m, "skill_tuner_next_run_timestamp_seconds").unwrap();
        assert!(
            next > started,
            "{zone} {schedule}: next run {next} <= {started}"
        );
        d.signal("HUP");
        d.wait_metrics("the reload", 20, |m| {
            metric(m, r#"skill_tuner_config_reloads_total{result="ok"}"#) == Some(1.0)
        })
        .await;
        let m = d.metrics().await;
        let next = metric(&m, "skill_tuner_next_run_timestamp_seconds").unwrap();
        assert!(
            next > started,
            "after SIGHUP: {zone} {schedule}: {next} <= {started}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let m = d.metrics().await;
        assert_eq!(cycles_total(&m), 0.0, "{zone} {schedule}: {}", d.logs());
        assert_eq!(
            metric_or_zero(&m, r#"skill_tuner_ticks_skipped_total{reason="overlap"}"#),
            0.0
        );
    }
}

/// Every metric the shipped alerting rules and Grafana dashboard name is one the daemon
/// exports (histogram series by their `_bucket`/`_sum`/`_count` samples, counters with
/// their `_total`), so neither silently watches nothing after a rename.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitoring_files_name_only_exported_metrics() {
    let sim = sim_60().await;
    let dir = TempDir::new("monitoring");
    let d = Daemon::spawn(
        &dir.0,
        &config_text(&sim, &dir.0, r#"schedule = "0 0 2 * * *""#, ""),
        &[],
    );
    d.wait_ready().await;
    let text = d.metrics().await;
    let mut exported = HashSet::new();
    for line in text.lines() {
        let (name, kind) = match line.strip_prefix("# TYPE ") {
            Some(rest) => {
                let mut parts = rest.split_whitespace();
                (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                )
            }
            None if !line.starts_with('#') => {
                (line.split(['{', ' ']).next().unwrap_or_default(), "")
            }
            None => continue,
        };
        exported.insert(name.to_string());
        match kind {
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    exported.insert(format!("{name}{suffix}"));
                }
            }
            "counter" => {
                exported.insert(format!("{name}_total"));
            }
            _ => {}
        }
    }
    let named = |text: &str| -> Vec<String> {
        let mut out = Vec::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let rest = &text[i..];
            let starts = rest.starts_with("skill_tuner_") || rest.starts_with("process_");
            let boundary =
                i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
            if starts && boundary {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                out.push(rest[..end].to_string());
                i += end;
            } else {
                i += 1;
            }
        }
        out
    };
    for file in [
        "deploy/monitoring/skill-tuner-alerts.yml",
        "deploy/monitoring/grafana-dashboard.json",
    ] {
        let text = std::fs::read_to_string(file).unwrap();
        let names = named(&text);
        assert!(names.len() >= 8, "{file} names too few metrics: {names:?}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{file} names `{name}`, which /metrics does not export:\n{text}"
            );
        }
    }
}
