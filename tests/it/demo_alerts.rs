//! Alerts that do not reach a supervisor: `config/demo.toml` against the standalone `sim`
//! files its workitems (the simulator creates the worktype the file names), and a cycle
//! whose workitems all fail is `partial` (exit 4), never plain `ok`.

use crate::common;

use common::binary::{binary, config_file, output};
use common::sim::{relaxed, start_sim};
use common::{free_port, TempDir, BIN};
use genesys_sim::SimConfig;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn report_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `skill-tuner sim` on `port`, killed on drop.
struct StandaloneSim(Child);

impl StandaloneSim {
    /// Starts it and waits for its "listening" line.
    fn start(port: u16) -> Self {
        let mut child = Command::new(BIN)
            .args(["sim", "--port", &port.to_string(), "--rate", "0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("listening") {
                    let _ = tx.send(());
                }
            }
        });
        let sim = StandaloneSim(child);
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the standalone simulator never said it was listening");
        sim
    }
}

impl Drop for StandaloneSim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_config_files_its_workitems_against_the_standalone_sim() {
    let dir = TempDir::new("standalone-sim");
    let port = free_port();
    let _sim = StandaloneSim::start(port);
    let base = format!("http://127.0.0.1:{port}");
    // config/demo.toml as shipped; only the port (free, not 8089), the pace and the ledger
    // location differ, through the environment.
    let mut cmd = Command::new(BIN);
    cmd.args(["once", "--json", "--config", "config/demo.toml"])
        .env(
            "SKILL_TUNER_CLIENT_SECRET",
            SimConfig::default().client_secret,
        )
        .env("SKILL_TUNER__GENESYS__API_BASE_URL", &base)
        .env("SKILL_TUNER__GENESYS__LOGIN_BASE_URL", &base)
        .env("SKILL_TUNER__GENESYS__RATE_LIMIT_PER_MINUTE", "60000")
        .env(
            "SKILL_TUNER__ALERTS__WEBHOOK__URL",
            format!("{base}/_sim/webhook"),
        )
        .env(
            "SKILL_TUNER__HISTORY__PATH",
            dir.path().join("ledger.db").as_os_str(),
        )
        .env("RUST_LOG", "warn")
        .env_remove("SKILL_TUNER_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("STATE_DIRECTORY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = output(cmd).await;
    let report = report_of(&out);
    let alerts = &report["alerts"];
    let over = alerts["over_threshold"].as_u64().unwrap();
    assert!(over > 0, "the demo cycle raised no alerts: {alerts}");
    assert_eq!(alerts["workitems_failed"], 0, "{alerts}");
    // One workitem per over-threshold change, and one per change under the threshold
    // that moves its agent into or out of a skill group (the demo org has such groups).
    let crossings = alerts["skill_group_crossings"].as_u64().unwrap();
    assert!(crossings > 0, "{alerts}");
    assert_eq!(
        alerts["workitems_created"].as_u64(),
        Some(over + crossings),
        "{alerts}"
    );
    assert_eq!(alerts["webhook"], "ok", "{alerts}");
    assert_eq!(report["outcome"], "ok");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_whose_workitems_all_fail_is_partial_not_ok() {
    let dir = TempDir::new("alerts-fail");
    let sim = start_sim(30, |c| c.seed = 3).await;
    let mut settings = relaxed(&sim);
    settings.alerts.threshold = 0.5;
    settings.alerts.workitem.enabled = true;
    // A well-formed id the org does not have: every workitem is refused with a 400.
    settings.alerts.workitem.worktype_id = "00000000-0000-4000-8000-000000000000".into();
    let config = config_file(dir.path(), &settings, &dir.path().join("ledger.db"));
    let out = output(binary(&["once", "--json"], &config)).await;
    let report = report_of(&out);
    let alerts = &report["alerts"];
    let over = alerts["over_threshold"].as_u64().unwrap();
    assert!(over > 0, "no over-threshold change to alert on: {alerts}");
    assert_eq!(alerts["workitems_failed"].as_u64(), Some(over), "{alerts}");
    assert_eq!(alerts["workitems_created"], 0, "{alerts}");
    // The writes themselves landed: only the alerts failed.
    assert_eq!(report["failed"], 0);
    assert!(sim.org().write_count() > 0);
    assert_eq!(report["outcome"], "partial", "{alerts}");
    assert_eq!(out.status.code(), Some(4));
    // The ledger records it so too.
    let history = output(binary(&["history", "--json"], &config)).await;
    let runs: serde_json::Value = serde_json::from_slice(&history.stdout).unwrap();
    assert_eq!(runs[0]["outcome"], "partial", "{runs}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_limit_zero_is_a_usage_error_not_an_empty_history() {
    let dir = TempDir::new("history-limit");
    let sim = start_sim(10, |c| c.seed = 3).await;
    let config = config_file(dir.path(), &relaxed(&sim), &dir.path().join("ledger.db"));
    for _ in 0..2 {
        assert!(output(binary(&["plan"], &config)).await.status.success());
    }
    let zero = output(binary(&["history", "--limit", "0"], &config)).await;
    let stderr = String::from_utf8_lossy(&zero.stderr);
    assert_eq!(zero.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("at least 1"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&zero.stdout).contains("no runs recorded yet"),
        "runs exist"
    );
    let one = output(binary(&["history", "--limit", "1"], &config)).await;
    let text = String::from_utf8_lossy(&one.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("#2"), "{text}");
    sim.shutdown().await;
}
