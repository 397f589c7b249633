//! The exit-code table (`skill_tuner::exit`), pinned for every command and class through the
//! real binary against the simulator on loopback: 0 ok, 1 failed, 2 bad config or
//! credentials, 3 breaker, 4 partial, 5 another writer holds the ledger, 64 usage.

use crate::common;

use common::binary::{binary, binary_with_secret, config_file, output};
use common::sim::{relaxed, start_sim};
use common::{free_port, TempDir, BIN};
use skill_tuner::config::Settings;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Collects every (command, expected, got) mismatch so one run shows the whole table.
#[derive(Default)]
struct Table {
    rows: Vec<String>,
    wrong: Vec<String>,
}

impl Table {
    fn check(&mut self, label: &str, out: &Output, expected: i32) {
        let got = out.status.code();
        self.rows.push(format!("{label:<55} {expected:>3} {got:?}"));
        if got != Some(expected) {
            self.wrong.push(format!(
                "{label}: expected {expected}, got {got:?}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }

    fn assert_all(&self) {
        assert!(
            self.wrong.is_empty(),
            "{} of {} exit codes wrong:\n\n{}\n\nall:\n{}",
            self.wrong.len(),
            self.rows.len(),
            self.wrong.join("\n\n"),
            self.rows.join("\n")
        );
        eprintln!("{}", self.rows.join("\n"));
    }
}

/// `settings` as a config file in its own directory under `dir`, sharing `ledger`.
fn config(dir: &Path, name: &str, settings: &Settings, ledger: &Path) -> PathBuf {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).unwrap();
    config_file(&sub, settings, ledger)
}

/// The binary with bare arguments (no `--config` added).
fn bare(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("SKILL_TUNER_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd`, killing it after `secs` (a daemon that did not exit as expected).
async fn bounded(mut cmd: Command, secs: u64) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(secs);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn run_id_of(out: &Output) -> String {
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    report["run_id"].as_i64().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_exits_with_the_code_of_its_class() {
    let dir = TempDir::new("exit-codes");
    let sim = start_sim(30, |c| c.seed = 5).await;
    let ledger = dir.path().join("ledger.db");
    let mut base = relaxed(&sim);
    base.daemon.admin_listen = format!("127.0.0.1:{}", free_port());
    let good = config(dir.path(), "good", &base, &ledger);
    let mut t = Table::default();

    // 64: usage errors, for every command; --help and --version are not errors.
    for args in [
        &["frobnicate"][..],
        &[],
        &["plan", "--frobnicate"],
        &["once", "--frobnicate"],
        &["run", "--frobnicate"],
        &["check-config", "--frobnicate"],
        &["history", "--limit", "many"],
        &["history", "--limit", "0"],
        &["show"],
        &["diff", "latest"],
        &["rollback", "1", "--force"],
        &["export", "--format", "xml"],
        &["demo", "--agents", "lots"],
        &["sim", "--port", "http"],
        &["bench", "--rate", "fast"],
    ] {
        t.check(
            &format!("usage: {}", args.join(" ")),
            &output(bare(args)).await,
            64,
        );
    }
    for args in [
        &["--help"][..],
        &["--version"],
        &["once", "--help"],
        &["help"],
    ] {
        t.check(
            &format!("ok: {}", args.join(" ")),
            &output(bare(args)).await,
            0,
        );
    }

    // 2: a missing or invalid config file, for every command that reads one.
    let missing = dir.path().join("no-such.toml");
    let frozen_file = dir.path().join("frozen.toml");
    let frozen = base.to_toml().replace("max_step = 1.0", "max_step = 0.0");
    std::fs::write(&frozen_file, frozen).unwrap();
    let per_config: [&[&str]; 9] = [
        &["plan"],
        &["once"],
        &["run"],
        &["check-config"],
        &["history"],
        &["show", "1"],
        &["diff", "1"],
        &["rollback", "1"],
        &["export"],
    ];
    for args in per_config {
        for (what, file) in [("missing", &missing), ("invalid", &frozen_file)] {
            let out = bounded(binary(args, file), 30).await;
            t.check(&format!("bad config ({what}): {}", args.join(" ")), &out, 2);
        }
    }

    // 3: the breaker trips (plan reports it too); nothing is applied.
    let mut tight = base.clone();
    tight.breaker.max_changed_share = 0.0;
    tight.breaker.min_agents = 0;
    let tight_file = config(dir.path(), "breaker", &tight, &ledger);
    for args in [&["plan"][..], &["once"]] {
        let out = output(binary(args, &tight_file)).await;
        t.check(&format!("breaker: {}", args.join(" ")), &out, 3);
    }
    assert_eq!(sim.org().write_count(), 0, "the breaker applied something");

    // 0: a dry run.
    let plan = output(binary(&["plan", "--json"], &good)).await;
    t.check("ok: plan", &plan, 0);
    let plan_run = run_id_of(&plan);

    // 4: every workitem fails (a worktype the org does not have): writes done, alerts not.
    let mut no_worktype = base.clone();
    no_worktype.alerts.threshold = 0.5;
    no_worktype.alerts.workitem.enabled = true;
    no_worktype.alerts.workitem.worktype_id = "00000000-0000-4000-8000-000000000000".into();
    let partial_file = config(dir.path(), "partial", &no_worktype, &ledger);
    let once = output(binary(&["once", "--json"], &partial_file)).await;
    t.check("partial (every alert failed): once", &once, 4);
    let once_run = run_id_of(&once);
    assert!(
        sim.org().write_count() > 0,
        "the partial cycle wrote nothing"
    );

    // 0: a real cycle (nothing left to change is still ok) and the ledger commands.
    t.check("ok: once", &output(binary(&["once"], &good)).await, 0);
    for args in [
        &["check-config"][..],
        &["history"],
        &["show", &once_run],
        &["diff", &once_run],
        &["rollback", &once_run, "--dry-run"],
        &["export"],
    ] {
        let out = output(binary(args, &good)).await;
        t.check(&format!("ok: {}", args.join(" ")), &out, 0);
    }

    // 2: no secret, or one the login refuses (401), wherever credentials are needed; the
    // ledger-only commands need none.
    for (what, secret) in [("no secret", ""), ("wrong secret", "not-the-secret")] {
        for args in [
            &["plan"][..],
            &["once"],
            &["diff", &once_run],
            &["rollback", &once_run, "--dry-run"],
        ] {
            let out = output(binary_with_secret(args, &good, secret, "warn")).await;
            t.check(&format!("{what}: {}", args.join(" ")), &out, 2);
        }
        for args in [&["history"][..], &["show", &once_run], &["export"]] {
            let out = output(binary_with_secret(args, &good, secret, "warn")).await;
            t.check(&format!("{what} (not needed): {}", args.join(" ")), &out, 0);
        }
    }
    for args in [&["check-config"][..], &["run"]] {
        let out = bounded(binary_with_secret(args, &good, "", "warn"), 30).await;
        t.check(&format!("no secret: {}", args.join(" ")), &out, 2);
    }

    // 2: a skill name the org does not have.
    let mut unknown = base.clone();
    unknown.scope.skills = vec!["No Such Skill".into()];
    let unknown_file = config(dir.path(), "unknown-skill", &unknown, &ledger);
    for args in [&["plan"][..], &["once"]] {
        let out = output(binary(args, &unknown_file)).await;
        t.check(&format!("unknown skill: {}", args.join(" ")), &out, 2);
    }

    // 1: failures a retry may fix, or a request the ledger refuses.
    let mut unreachable = base.clone();
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    unreachable.genesys.api_base_url = Some(nowhere.clone());
    unreachable.genesys.login_base_url = Some(nowhere);
    let unreachable_file = config(dir.path(), "unreachable", &unreachable, &ledger);
    for args in [&["plan"][..], &["once"], &["diff", &once_run]] {
        let out = output(binary(args, &unreachable_file)).await;
        t.check(
            &format!("failed (API unreachable): {}", args.join(" ")),
            &out,
            1,
        );
    }
    t.check(
        "failed (no such run): show 999",
        &output(binary(&["show", "999"], &good)).await,
        1,
    );
    t.check(
        "failed (a dry run has nothing to roll back): rollback",
        &output(binary(&["rollback", &plan_run], &good)).await,
        1,
    );

    // 5: another process holds the ledger's write lock past the busy timeout: `once` must
    // write and is refused; `history` only reads (read-only handle) and still works.
    let holder = rusqlite::Connection::open(&ledger).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE;").unwrap();
    let (history, once) = tokio::join!(
        output(binary(&["history"], &good)),
        output(binary(&["once"], &good))
    );
    holder.execute_batch("COMMIT;").unwrap();
    t.check("ledger busy: history (reads)", &history, 0);
    t.check("ledger busy: once", &once, 5);

    t.assert_all();
    sim.shutdown().await;
}

#[test]
fn the_help_the_readme_and_the_unit_state_the_same_table() {
    let help = bare(&["--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let readme = std::fs::read_to_string("README.md").unwrap();
    let deploy = std::fs::read_to_string("deploy/README.md").unwrap();
    for (code, words) in [
        (0, "ok"),
        (1, "failed"),
        (2, "bad config or credentials"),
        (3, "breaker"),
        (4, "partial"),
        (5, "another writer holds the"),
        (64, "usage"),
    ] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{code} ")))
            .unwrap_or_else(|| panic!("--help lacks exit code {code}:\n{help}"));
        assert!(line.contains(words), "--help: {line}");
        for (name, text) in [("README.md", &readme), ("deploy/README.md", &deploy)] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("| {code} |")) && l.contains(words)),
                "{name} lacks a `| {code} | …{words}…` row"
            );
        }
    }
    let unit = std::fs::read_to_string("systemd/skill-tuner.service").unwrap();
    assert!(
        unit.lines().any(|l| l == "RestartPreventExitStatus=2 5"),
        "the unit must not restart on a bad config (2) or a held ledger (5)"
    );
}
