//! Pacing on the API's rate-limit headers, against the simulator: a cycle that shares its
//! token with another user leaves that user its share of every window (no 429 for either);
//! `genesys.rate_share` is validated and shown; the simulator's option is validated.

use crate::common;

use common::binary::{binary, config_file, output};
use common::sim::{client_for, cycle, memory_ledger, relaxed, start_sim, transparent};
use common::TempDir;
use skill_tuner::config::{ConfigError, Settings};
use skill_tuner::cycle::Mode;
use skill_tuner::history::RunOutcome;

#[tokio::test]
async fn a_cycle_leaves_another_user_of_its_token_its_share_of_every_window() {
    // Windows of 3 s allowing 60 requests, 30 of them the other user's: the cycle's calls
    // span several windows, in a few seconds.
    let sim = start_sim(40, |c| {
        c.rate_limit_per_minute = 1_200;
        c.rate_window_secs = 3;
        c.other_user_share = 0.5;
    })
    .await;
    let mut settings = transparent(relaxed(&sim));
    settings.genesys.rate_limit_per_minute = 1_200;
    let client = client_for(&sim, &settings).await;
    let ledger = memory_ledger(&sim);
    let report = cycle(&sim, &client, &settings, &ledger, Mode::Once)
        .await
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Ok, "{report:?}");
    assert!(report.agents_changed > 0, "{report:?}");
    let counters = sim.counters();
    let calls = counters.total() - counters.count("POST", "/oauth/token");
    assert!(
        calls > 60,
        "{calls} calls fit in the first windows' share: nothing was paced"
    );
    assert_eq!(counters.rate_limited(), 0, "{:?}", counters.by_endpoint());
    let other = sim.other_user();
    assert!(other.requests >= 60, "{other:?}");
    assert_eq!(other.rate_limited, 0, "{other:?}");
}

#[test]
fn rate_share_outside_0_to_1_is_refused_by_name() {
    for bad in ["0", "0.0", "-0.5", "1.01", "nan"] {
        let text = format!("[genesys]\nclient_id = \"x\"\nrate_share = {bad}\n");
        match Settings::from_toml_str(&text) {
            Err(e @ ConfigError::Invalid { .. }) => {
                let problem = e
                    .problems()
                    .iter()
                    .find(|p| p.key == "genesys.rate_share")
                    .cloned();
                let problem = problem.unwrap_or_else(|| panic!("{bad}: {e}"));
                assert!(problem.expected.contains("at most 1"), "{problem:?}");
            }
            other => panic!("rate_share = {bad} accepted: {other:?}"),
        }
    }
    let ok = Settings::from_toml_str("[genesys]\nclient_id = \"x\"\nrate_share = 0.5\n").unwrap();
    assert_eq!(ok.genesys.rate_share, 0.5);
    assert_eq!(Settings::default().genesys.rate_share, 1.0);
}

#[tokio::test]
async fn check_config_shows_the_rate_share() {
    let dir = TempDir::new("rate-share");
    let sim = start_sim(10, |_| {}).await;
    let mut settings = relaxed(&sim);
    settings.genesys.rate_share = 0.25;
    let config = config_file(dir.path(), &settings, &dir.path().join("ledger.db"));
    let out = output(binary(&["check-config"], &config)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("rate_share = 0.25"), "{stdout}");
    assert!(stdout.contains("# pacing: "), "{stdout}");
}

#[test]
fn the_simulators_other_user_share_is_checked() {
    let out = std::process::Command::new(common::BIN)
        .args(["sim", "--port", "0", "--other-user-share", "1.5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a share from 0 to 1"), "{stderr}");
}

/// `bench --other-user-share` measures against the rate the other user leaves (no timing is
/// asserted: speed is measured by the command, never by tests).
#[test]
fn bench_bounds_the_cycle_by_the_rate_another_user_leaves_it() {
    let out = std::process::Command::new(common::BIN)
        .args([
            "bench",
            "--agents",
            "200",
            "--skills",
            "4",
            "--changed",
            "0.2",
            "--rate",
            "60000",
            "--other-user-share",
            "0.5",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: skill_tuner::bench::BenchResult =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(r.other_user_share, 0.5);
    assert_eq!(r.rate_left_per_minute, 30_000);
    assert!(
        (r.bound_s - r.api_calls as f64 * 60.0 / 30_000.0).abs() < 1e-3,
        "{r:?}"
    );
    assert_eq!((r.http_429, r.other_user_429), (0, 0), "{r:?}");
    assert!(r.other_user_requests > 0, "{r:?}");
}
