//! Many orgs in one config (`[[orgs]]`): inheritance from the top level, errors that name
//! the org, process-wide keys kept top-level, each org its own OAuth client, `--org`.

use crate::common;

use common::binary::{binary, output};
use common::TempDir;
use skill_tuner::config::{secret, ConfigError, OrgChoiceError, Orgs, Settings, DEFAULT_ORG};
use skill_tuner::history::writer_lock::LockKind;
use skill_tuner::history::{Ledger, RunMode};
use std::path::Path;

/// Two orgs over shared top-level settings.
const TWO: &str = r#"
[genesys]
region = "eu-west-1"
rate_limit_per_minute = 600

[policy.default]
max_step = 0.5
dead_band = 0.1

[breaker]
max_changed_share = 0.2

[history]
path = "/var/lib/skill-tuner/ledger.db"

[[orgs]]
name = "brand-a"
genesys.client_id = "client-a"

[[orgs]]
name = "brand-b"
[orgs.genesys]
client_id = "client-b"
region = "us-east-1"
[orgs.policy.default]
max_step = 0.25
[orgs.daemon]
schedule = "0 30 3 * * *"
"#;

fn problems(text: &str) -> Vec<String> {
    match Orgs::from_toml_str(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            let listed: Vec<String> = e.problems().iter().map(ToString::to_string).collect();
            assert!(!listed.is_empty(), "{e}");
            listed
        }
    }
}

#[test]
fn each_org_inherits_the_top_level_and_overrides_key_by_key() {
    let orgs = Orgs::from_toml_str(TWO).unwrap();
    assert!(orgs.listed());
    assert_eq!(orgs.names(), ["brand-a", "brand-b"]);
    let a = orgs.choose(Some("brand-a")).unwrap();
    let b = orgs.choose(Some("brand-b")).unwrap();
    assert_eq!(a.genesys.region, "eu-west-1");
    assert_eq!(b.genesys.region, "us-east-1");
    assert_eq!(a.genesys.rate_limit_per_minute, 600);
    assert_eq!(b.genesys.rate_limit_per_minute, 600);
    // A nested table merges: brand-b's own max_step, the shared dead band.
    assert_eq!(a.policy.default.max_step, 0.5);
    assert_eq!(b.policy.default.max_step, 0.25);
    assert_eq!(b.policy.default.dead_band, 0.1);
    assert_eq!(b.breaker.max_changed_share, 0.2);
    assert_eq!(a.daemon.schedule, Settings::default().daemon.schedule);
    assert_eq!(b.daemon.schedule, "0 30 3 * * *");
    // The process-wide sections are the top level's.
    assert_eq!(a.history.path, b.history.path);
    // Each org reads its own secret variable unless it names one.
    assert_eq!(
        a.genesys.client_secret_env,
        "SKILL_TUNER_CLIENT_SECRET_BRAND_A"
    );
    assert_eq!(
        b.genesys.client_secret_env,
        "SKILL_TUNER_CLIENT_SECRET_BRAND_B"
    );
    assert_ne!(a.fingerprint(), b.fingerprint());
}

#[test]
fn an_orgs_problems_name_the_org_and_the_key() {
    let text = TWO.replace("max_step = 0.25", "max_step = 0.0");
    let listed = problems(&text);
    assert!(
        listed
            .iter()
            .any(|p| p.starts_with("orgs[1] (name \"brand-b\"): `policy.default.max_step`: > 0")),
        "{listed:?}"
    );
    // A value of the wrong type is named the same way.
    let listed = problems(&TWO.replace("max_step = 0.25", "max_step = \"big\""));
    assert!(
        listed
            .iter()
            .any(|p| p.starts_with("orgs[1] (name \"brand-b\"): `policy.default.max_step`")),
        "{listed:?}"
    );
    // The whole file's message carries it too.
    let err = Orgs::from_toml_str(&text).unwrap_err().to_string();
    assert!(err.contains("orgs[1] (name \"brand-b\")"), "{err}");
}

#[test]
fn process_wide_keys_are_refused_in_an_org() {
    for (extra, key) in [
        ("history.path = \"/tmp/other.db\"", "orgs[0].history"),
        ("log.level = \"debug\"", "orgs[0].log"),
        (
            "daemon.admin_listen = \"127.0.0.1:1\"",
            "orgs[0].daemon.admin_listen",
        ),
        (
            "daemon.shutdown_grace_secs = 5",
            "orgs[0].daemon.shutdown_grace_secs",
        ),
    ] {
        let text = TWO.replace(
            "genesys.client_id = \"client-a\"",
            &format!("genesys.client_id = \"client-a\"\n{extra}"),
        );
        let listed = problems(&text);
        assert!(
            listed
                .iter()
                .any(|p| p.starts_with(&format!("`{key}`: set only at the top level"))),
            "{extra}: {listed:?}"
        );
    }
    // An org's own schedule is fine: only the listener's keys of `[daemon]` are the process's.
    Orgs::from_toml_str(&TWO.replace(
        "genesys.client_id = \"client-a\"",
        "genesys.client_id = \"client-a\"\ndaemon.run_on_start = true",
    ))
    .unwrap();
}

#[test]
fn org_names_are_required_valid_and_unique() {
    let missing = problems(&TWO.replace("name = \"brand-a\"\n", ""));
    assert!(
        missing.iter().any(|p| p.starts_with("`orgs[0].name`")),
        "{missing:?}"
    );
    let upper = problems(&TWO.replace("\"brand-a\"", "\"Brand A\""));
    assert!(
        upper
            .iter()
            .any(|p| p.starts_with("`orgs[0].name`") && p.contains("a-z")),
        "{upper:?}"
    );
    let twice = problems(&TWO.replace("\"brand-b\"", "\"brand-a\""));
    assert!(
        twice
            .iter()
            .any(|p| p.starts_with("orgs[1] (name \"brand-a\"): `name`") && p.contains("orgs[0]")),
        "{twice:?}"
    );
    let empty = problems("orgs = []\n[genesys]\nclient_id = \"x\"\n");
    assert!(empty.iter().any(|p| p.starts_with("`orgs`")), "{empty:?}");
}

#[test]
fn each_org_needs_its_own_oauth_client_and_secret() {
    let same_client = problems(&TWO.replace("\"client-b\"", "\"client-a\""));
    assert!(
        same_client
            .iter()
            .any(|p| p.starts_with("orgs[1] (name \"brand-b\"): `genesys.client_id`")),
        "{same_client:?}"
    );
    // A secret variable set at the top level and not per org would be shared.
    let shared = TWO.replace(
        "rate_limit_per_minute = 600",
        "rate_limit_per_minute = 600\nclient_secret_file = \"/etc/skill-tuner/secret\"",
    );
    let listed = problems(&shared);
    assert!(
        listed
            .iter()
            .any(|p| p.starts_with("orgs[1] (name \"brand-b\"): `genesys.client_secret_file`")),
        "{listed:?}"
    );
}

#[test]
fn without_org_a_config_of_several_is_a_choice_listing_them() {
    let orgs = Orgs::from_toml_str(TWO).unwrap();
    let err = orgs.choose(None).unwrap_err();
    assert_eq!(
        err,
        OrgChoiceError::Ambiguous(vec!["brand-a".into(), "brand-b".into()])
    );
    assert!(err.to_string().contains("brand-a, brand-b"), "{err}");
    let unknown = orgs.choose(Some("brand-c")).unwrap_err().to_string();
    assert!(
        unknown.contains("brand-c") && unknown.contains("brand-a"),
        "{unknown}"
    );
    // `Settings` is one org: a config of several is refused there with the same message.
    let err = Settings::from_toml_str(TWO).unwrap_err();
    assert!(matches!(err, ConfigError::Org(_)), "{err}");
}

/// A config from before `[[orgs]]` (the shipped reference) is one org, `default`, exactly
/// as it always parsed.
#[test]
fn a_single_org_config_is_one_org_named_default() {
    let path = Path::new("config/skill-tuner.toml");
    let (orgs, _) = Orgs::load_reporting(path, false).unwrap();
    assert!(!orgs.listed());
    assert_eq!(orgs.names(), [DEFAULT_ORG]);
    let only = orgs.choose(None).unwrap();
    assert_eq!(only.org, None);
    assert_eq!(only, &Settings::load_with_env(path, false).unwrap());
    assert_eq!(orgs.choose(Some(DEFAULT_ORG)).unwrap(), only);
}

#[test]
fn an_orgs_secret_is_its_own_and_never_genesys_shared_variable() {
    let dir = TempDir::new("org-secret");
    let orgs = Orgs::from_toml_str(TWO).unwrap();
    let b = orgs.choose(Some("brand-b")).unwrap();
    let err = secret::load_org_client_secret(&b.genesys, b.org.as_deref())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("SKILL_TUNER_CLIENT_SECRET_BRAND_B")
            && err.contains("client_secret_brand-b")
            && !err.contains("GENESYSCLOUD_OAUTHCLIENT_SECRET"),
        "{err}"
    );
    let file = dir.path().join("b.secret");
    std::fs::write(&file, "s3cret-b\n").unwrap();
    let mut g = b.genesys.clone();
    g.client_secret_file = Some(file.clone());
    let (_, source) = secret::load_org_client_secret(&g, b.org.as_deref()).unwrap();
    assert_eq!(source, secret::SecretSource::File(file));
    assert_eq!(secret::credential_name(None), "client_secret");
    assert_eq!(
        secret::credential_name(Some("brand-b")),
        "client_secret_brand-b"
    );
}

/// The org's runs, as one handle sees them.
fn run_ids(ledger: &Ledger) -> Vec<i64> {
    ledger
        .recent_runs(50)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect()
}

#[test]
fn one_ledger_keeps_each_orgs_runs_and_write_lock_apart() {
    let dir = TempDir::new("org-ledger");
    let path = dir.path().join("ledger.db");
    let a = Ledger::open(&path).unwrap().with_org("brand-a");
    let b = Ledger::open(&path).unwrap().with_org("brand-b");
    let ra = a.begin_run(RunMode::Once, "ha", None).unwrap();
    let rb = b.begin_run(RunMode::Once, "hb", None).unwrap();
    assert_eq!(run_ids(&a), [ra]);
    assert_eq!(run_ids(&b), [rb]);
    assert!(a.unfinished_runs().unwrap().iter().all(|r| r.id == ra));
    // Another org's run is not there for this org's commands (show, diff, rollback).
    let err = a.run(rb).unwrap_err().to_string();
    assert!(
        err.contains(&format!("no run {rb} of org `brand-a`")),
        "{err}"
    );
    // The org is on every row.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let orgs: Vec<(i64, String)> = conn
        .prepare("SELECT id, org FROM runs ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(orgs, [(ra, "brand-a".into()), (rb, "brand-b".into())]);

    // Each org's writer lock is its own: brand-b writes while brand-a does.
    let held_a = a.lock_for_writing("once").unwrap().unwrap();
    let held_b = b.lock_for_writing("once").unwrap().unwrap();
    assert_ne!(held_a.path(), held_b.path());
    assert_eq!(
        held_b.path(),
        LockKind::Write.path_for_org(&path, "brand-b")
    );
    let again = Ledger::open(&path).unwrap().with_org("brand-a");
    let refused = again.lock_for_writing("rollback").unwrap_err().to_string();
    assert!(refused.contains("for org `brand-a`"), "{refused}");
    // The unlisted org keeps the lock file it always had.
    assert_eq!(
        LockKind::Write.path_for_org(&path, DEFAULT_ORG),
        LockKind::Write.path_for(&path)
    );
    assert!(LockKind::Write
        .path_for(&path)
        .to_string_lossy()
        .ends_with("ledger.db.write.lock"));
}

#[test]
fn a_ledger_from_before_orgs_migrates_its_runs_to_the_default_org() {
    let dir = TempDir::new("org-migrate");
    let path = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL,
                finished_at TEXT, mode TEXT NOT NULL, config_hash TEXT NOT NULL, outcome TEXT,
                summary TEXT, rollback_of INTEGER REFERENCES runs(id), triggered_by TEXT);
             CREATE TABLE changes (change_id TEXT NOT NULL, run_id INTEGER NOT NULL REFERENCES runs(id),
                agent_id TEXT NOT NULL, agent_name TEXT NOT NULL, skill_id TEXT NOT NULL,
                skill_name TEXT NOT NULL, before REAL NOT NULL, after REAL NOT NULL, target REAL,
                score TEXT, reason TEXT NOT NULL, status TEXT NOT NULL, correlation_id TEXT,
                detail TEXT, workitem_id TEXT, updated_at TEXT NOT NULL,
                PRIMARY KEY (run_id, change_id));
             INSERT INTO runs (started_at, finished_at, mode, config_hash, outcome, triggered_by) VALUES
                ('2027-05-10T02:00:00.000Z', '2027-05-10T02:01:00.000Z', 'once', 'h', 'ok', 'once');
             INSERT INTO changes VALUES ('c1', 1, 'u1', 'Ann', 's1', 'Billing', 2.0, 2.5, 2.5,
                NULL, 'better', 'applied', NULL, NULL, NULL, '2027-05-10T02:00:30.000Z');
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let default = Ledger::open(&path).unwrap();
    assert_eq!(default.org(), DEFAULT_ORG);
    assert_eq!(run_ids(&default), [1]);
    assert_eq!(default.changes(1).unwrap().len(), 1);
    let other = Ledger::open(&path).unwrap().with_org("brand-a");
    assert!(run_ids(&other).is_empty());
    assert!(other.all_changes().unwrap().is_empty());
}

/// A two-org config for the binary: both orgs on the simulator-free ledger commands.
fn two_org_config(dir: &Path, ledger: &Path) -> std::path::PathBuf {
    let text = TWO.replace(
        "/var/lib/skill-tuner/ledger.db",
        &ledger.display().to_string(),
    );
    let path = dir.join("orgs.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn ledger_commands_take_org_and_need_it_with_several() {
    let dir = TempDir::new("org-cli");
    let ledger = dir.path().join("ledger.db");
    let b = Ledger::open(&ledger).unwrap().with_org("brand-b");
    let run = b.begin_run(RunMode::Once, "hb", None).unwrap();
    drop(b);
    let config = two_org_config(dir.path(), &ledger);
    for args in [
        &["history"][..],
        &["show", &run.to_string()],
        &["export"],
        &["plan"],
        &["once"],
        &["rollback", &run.to_string()],
    ] {
        let out = output(binary(args, &config)).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(
            err.contains("choose one with --org NAME") && err.contains("brand-a, brand-b"),
            "{args:?}: {err}"
        );
    }
    let out = output(binary(&["history", "--json", "--org", "brand-b"], &config)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.len(), 1);
    let out = output(binary(&["history", "--json", "--org", "brand-a"], &config)).await;
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(runs.is_empty());
    let out = output(binary(&["history", "--org", "brand-z"], &config)).await;
    assert_eq!(out.status.code(), Some(64));
    // `check-config` shows every org's effective settings (the secrets are not there: it
    // says so, naming the org's own variable).
    let mut check = binary(&["check-config"], &config);
    check
        .env("SKILL_TUNER_CLIENT_SECRET_BRAND_A", "a")
        .env("SKILL_TUNER_CLIENT_SECRET_BRAND_B", "b");
    let out = output(check).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "# ---- org `brand-a` (orgs[0])",
        "# ---- org `brand-b` (orgs[1])",
        "client_id = \"client-b\"",
        "schedule = \"0 30 3 * * *\"",
        "environment variable SKILL_TUNER_CLIENT_SECRET_BRAND_B (value not shown)",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
}
