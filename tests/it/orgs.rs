//! Many orgs in one config (`[[orgs]]`): inheritance from the top level, errors that name
//! the org, process-wide keys kept top-level, each org its own OAuth client, `--org`.

use crate::common;

use common::binary::{binary, binary_with_secret, output};
use common::sim::start_sim;
use common::{cycles_total, metric, metric_or_zero, Daemon, TempDir};
use genesys_sim::Simulator;
use skill_tuner::config::{
    secret, ConfigError, Environment, OrgChoiceError, Orgs, Origin, Settings, DEFAULT_ORG,
};
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
[orgs.guard]
skill_group_crossings = "block"
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
    // A section no code here knows of by name works per org all the same.
    use skill_tuner::config::CrossingGuard;
    assert_eq!(a.guard.skill_group_crossings, CrossingGuard::Warn);
    assert_eq!(b.guard.skill_group_crossings, CrossingGuard::Block);
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

/// `TWO` in a file of `dir`, read with exactly the variables `vars` (the process's own
/// environment untouched: tests share it).
fn load_two_with(dir: &TempDir, text: &str, vars: &[(&str, &str)]) -> Result<Orgs, ConfigError> {
    let path = dir.path().join("orgs.toml");
    std::fs::write(&path, text).unwrap();
    let env = Environment::from_vars(vars.iter().copied());
    Orgs::load_with_environment(&path, &env).map(|(orgs, _)| orgs)
}

/// `SKILL_TUNER__ORGS__<ORG>__SECTION__KEY` sets that org's key alone: over its own table
/// (as `SKILL_TUNER__SECTION__KEY` is over the file's top level), over the top level's
/// variable too, typed like every environment value; variable names are matched in any case.
#[test]
fn an_orgs_variable_sets_its_key_over_its_table_and_the_top_level() {
    let dir = TempDir::new("org-env");
    let orgs = load_two_with(
        &dir,
        TWO,
        &[
            (
                "SKILL_TUNER__ORGS__BRAND_B__GENESYS__REGION",
                "eu-central-1",
            ),
            (
                "SKILL_TUNER__ORGS__BRAND_A__POLICY__DEFAULT__MAX_STEP",
                "0.3",
            ),
            ("SKILL_TUNER__GENESYS__RATE_LIMIT_PER_MINUTE", "900"),
            (
                "SKILL_TUNER__ORGS__BRAND_A__GENESYS__RATE_LIMIT_PER_MINUTE",
                "300",
            ),
            ("SKILL_TUNER__ORGS__BRAND_A__GENESYS__CLIENT_ID", "00123"),
            (
                "SKILL_TUNER__ORGS__BRAND_A__SCOPE__SKILLS",
                "Billing, Sales",
            ),
            (
                "skill_tuner__orgs__brand_b__daemon__schedule",
                "0 45 1 * * *",
            ),
            // Not read as a config key at all (one underscore): no error, no effect.
            ("SKILL_TUNER_ORGS_BRAND_A", "x"),
        ],
    )
    .unwrap();
    let a = orgs.choose(Some("brand-a")).unwrap();
    let b = orgs.choose(Some("brand-b")).unwrap();
    // brand-b's table says us-east-1; its variable wins. brand-a keeps the top level's.
    assert_eq!(b.genesys.region, "eu-central-1");
    assert_eq!(a.genesys.region, "eu-west-1");
    // A key brand-a's table leaves out: set for brand-a alone.
    assert_eq!(a.policy.default.max_step, 0.3);
    assert_eq!(b.policy.default.max_step, 0.25);
    assert_eq!(a.policy.default.dead_band, 0.1);
    // The org's variable over the top level's variable, which the other org still gets.
    assert_eq!(a.genesys.rate_limit_per_minute, 300);
    assert_eq!(b.genesys.rate_limit_per_minute, 900);
    // Typed as every environment value: a string stays as written, a list is split.
    assert_eq!(a.genesys.client_id, "00123");
    assert_eq!(b.genesys.client_id, "client-b");
    assert_eq!(a.scope.skills, ["Billing", "Sales"]);
    assert!(b.scope.skills.is_empty());
    assert_eq!(b.daemon.schedule, "0 45 1 * * *");
    // Without the environment nothing of it applies.
    let plain = load_two_with(&dir, TWO, &[]).unwrap();
    assert_eq!(plain, Orgs::from_toml_str(TWO).unwrap());
}

/// A variable that names no org of the file (a typo), two orgs at once, or no key is an
/// error naming the variable and the orgs; so is one setting a process-wide key, and a
/// value that does not fit its key names the org, the key and the variable.
/// A process's environment is fixed at start, so on a reload a variable naming no org
/// names one the new file removed: ignored there (else no reload could remove that org
/// before a restart), still refused when the daemon starts.
#[test]
fn a_reload_ignores_the_variable_of_an_org_it_removes() {
    let dir = TempDir::new("org-env-reload");
    let path = dir.path().join("orgs.toml");
    let one = TWO
        .split("[[orgs]]")
        .take(2)
        .collect::<Vec<_>>()
        .join("[[orgs]]");
    assert!(one.contains("brand-a") && !one.contains("brand-b"), "{one}");
    std::fs::write(&path, &one).unwrap();
    let vars = [("SKILL_TUNER__ORGS__BRAND_B__GENESYS__REGION", "eu-west-1")];
    let env = Environment::from_vars(vars);
    assert!(Orgs::load_with_environment(&path, &env).is_err());
    let (orgs, _) = Orgs::load_with_environment(&path, &env.for_reload()).unwrap();
    assert_eq!(orgs.names(), vec!["brand-a".to_string()]);
}

#[test]
fn an_orgs_variable_that_fits_no_org_or_two_is_refused_naming_them() {
    let dir = TempDir::new("org-env-bad");
    let refused = |text: &str, vars: &[(&str, &str)]| -> String {
        match load_two_with(&dir, text, vars) {
            Ok(_) => panic!("accepted with {vars:?}"),
            Err(e) => e.to_string(),
        }
    };
    let typo = refused(
        TWO,
        &[("SKILL_TUNER__ORGS__BRAND_C__GENESYS__REGION", "eu-west-1")],
    );
    assert!(
        typo.contains("`SKILL_TUNER__ORGS__BRAND_C__GENESYS__REGION`")
            && typo.contains("`brand-a` as BRAND_A, `brand-b` as BRAND_B"),
        "{typo}"
    );
    for var in ["SKILL_TUNER__ORGS__BRAND_A", "SKILL_TUNER__ORGS__BRAND_A__"] {
        let keyless = refused(TWO, &[(var, "x")]);
        assert!(
            keyless.contains(var) && keyless.contains("no key after it"),
            "{keyless}"
        );
    }
    let bare = refused(TWO, &[("SKILL_TUNER__ORGS", "brand-a")]);
    assert!(bare.contains("`SKILL_TUNER__ORGS`"), "{bare}");

    let twice = refused(
        TWO,
        &[
            ("SKILL_TUNER__ORGS__BRAND_B__GENESYS__REGION", "eu-west-1"),
            ("skill_tuner__orgs__brand_b__genesys__region", "us-east-1"),
        ],
    );
    assert!(
        twice.contains("SKILL_TUNER__ORGS__BRAND_B__GENESYS__REGION")
            && twice.contains("skill_tuner__orgs__brand_b__genesys__region")
            && twice.contains("matched in any case"),
        "{twice}"
    );

    // `brand-b` and `brand_b` are both BRAND_B in a variable's name.
    let twins = TWO.replace("name = \"brand-a\"", "name = \"brand_b\"");
    let ambiguous = refused(
        &twins,
        &[("SKILL_TUNER__ORGS__BRAND_B__GENESYS__REGION", "eu-west-1")],
    );
    assert!(
        ambiguous.contains("SKILL_TUNER__ORGS__BRAND_B__GENESYS__REGION")
            && ambiguous.contains("`brand_b` and `brand-b`")
            && ambiguous.contains("rename one"),
        "{ambiguous}"
    );
    // So are `a` and `a__b`, for a variable both prefixes fit.
    let nested = TWO
        .replace("name = \"brand-a\"", "name = \"a\"")
        .replace("name = \"brand-b\"", "name = \"a__b\"");
    let prefix = refused(
        &nested,
        &[("SKILL_TUNER__ORGS__A__B__GENESYS__REGION", "eu-west-1")],
    );
    assert!(prefix.contains("`a` and `a__b`"), "{prefix}");
    let orgs = load_two_with(
        &dir,
        &nested,
        &[("SKILL_TUNER__ORGS__A__GENESYS__REGION", "ap-southeast-2")],
    )
    .unwrap();
    assert_eq!(
        orgs.choose(Some("a")).unwrap().genesys.region,
        "ap-southeast-2"
    );
    assert_eq!(
        orgs.choose(Some("a__b")).unwrap().genesys.region,
        "us-east-1"
    );

    // A config without [[orgs]] has no org to name.
    let single = "[genesys]\nclient_id = \"x\"\n";
    let unlisted = refused(
        single,
        &[("SKILL_TUNER__ORGS__DEFAULT__GENESYS__REGION", "eu-west-1")],
    );
    assert!(
        unlisted.contains("SKILL_TUNER__ORGS__DEFAULT__GENESYS__REGION")
            && unlisted.contains("lists no [[orgs]]"),
        "{unlisted}"
    );

    let process_wide = refused(
        TWO,
        &[("SKILL_TUNER__ORGS__BRAND_A__HISTORY__PATH", "/tmp/other.db")],
    );
    assert!(
        process_wide.contains("orgs[0].history")
            && process_wide.contains("set only at the top level")
            && process_wide.contains("SKILL_TUNER__ORGS__BRAND_A__HISTORY__PATH"),
        "{process_wide}"
    );
    let bad_value = refused(
        TWO,
        &[(
            "SKILL_TUNER__ORGS__BRAND_B__GENESYS__RATE_LIMIT_PER_MINUTE",
            "lots",
        )],
    );
    assert!(
        bad_value.contains("orgs[1] (name \"brand-b\"): `genesys.rate_limit_per_minute`")
            && bad_value.contains("got `lots`")
            && bad_value.contains(
                "set by the environment variable SKILL_TUNER__ORGS__BRAND_B__GENESYS__RATE_LIMIT_PER_MINUTE"
            ),
        "{bad_value}"
    );
}

/// Where an org's client id and region came from, as `check-config` prints it: the org's
/// variable, the org's table, the top level's variable, the file's top level.
#[test]
fn check_config_says_which_variable_set_an_orgs_key() {
    let dir = TempDir::new("org-env-sources");
    let path = dir.path().join("orgs.toml");
    std::fs::write(&path, TWO).unwrap();
    let vars = [
        (
            "SKILL_TUNER__ORGS__BRAND_B__GENESYS__CLIENT_ID",
            "client-b-env",
        ),
        ("SKILL_TUNER__GENESYS__REGION", "ap-southeast-2"),
    ];
    let env = Environment::from_vars(vars);
    let a = Settings::sources_for(&path, Some("brand-a"), &env).unwrap();
    let b = Settings::sources_for(&path, Some("brand-b"), &env).unwrap();
    assert_eq!(a.origin("genesys.client_id"), Origin::File(path.clone()));
    assert_eq!(
        a.origin("genesys.region"),
        Origin::Override("SKILL_TUNER__GENESYS__REGION".into())
    );
    assert_eq!(
        b.origin("genesys.client_id"),
        Origin::Override("SKILL_TUNER__ORGS__BRAND_B__GENESYS__CLIENT_ID".into())
    );
    assert_eq!(b.origin("genesys.region"), Origin::File(path.clone()));

    let mut cmd = binary_with_secret(&["check-config"], &path, "unused", "warn");
    for (key, _) in std::env::vars() {
        if key.starts_with("SKILL_TUNER") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(vars)
        .env("SKILL_TUNER_CLIENT_SECRET_BRAND_A", "secret-a")
        .env("SKILL_TUNER_CLIENT_SECRET_BRAND_B", "secret-b");
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (a_part, b_part) = stdout.split_once("org `brand-b`").unwrap();
    let file = path.display().to_string();
    for (part, needle) in [
        (a_part, format!("# genesys.client_id = \"client-a\" from the config file {file}")),
        (
            a_part,
            "# genesys.region = \"ap-southeast-2\" from the environment variable SKILL_TUNER__GENESYS__REGION".into(),
        ),
        (
            b_part,
            "# genesys.client_id = \"client-b-env\" from the environment variable SKILL_TUNER__ORGS__BRAND_B__GENESYS__CLIENT_ID".into(),
        ),
        (b_part, format!("# genesys.region = \"us-east-1\" from the config file {file}")),
    ] {
        assert!(part.contains(&needle), "no {needle:?} in:\n{part}");
    }
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
        &["report", "--html", "page.html"],
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

/// A 60-agent simulator that is its own org: its own OAuth client and secret.
async fn sim_org(tag: &str) -> Simulator {
    start_sim(60, |c| {
        c.skills = 4;
        c.client_id = format!("client-{tag}");
        c.client_secret = format!("secret-{tag}");
    })
    .await
}

/// The secret variable of org `brand-<tag>` with its simulator's secret.
fn secret_env(tag: &str) -> (String, String) {
    (
        format!(
            "SKILL_TUNER_CLIENT_SECRET_BRAND_{}",
            tag.to_ascii_uppercase()
        ),
        format!("secret-{tag}"),
    )
}

/// A daemon config: shared top-level sections, then one `[[orgs]]` per `(tag, sim, extra)`,
/// `extra` being raw TOML keys of the org's table (`daemon.schedule = …`).
fn daemon_config(ledger: &Path, schedule: &str, orgs: &[(&str, &Simulator, &str)]) -> String {
    let mut text = format!(
        r#"
[genesys]
rate_limit_per_minute = 6000
burst = 50
max_concurrency = 2

[breaker]
max_changed_share = 1.0

[history]
path = "{ledger}"

[daemon]
shutdown_grace_secs = 30
min_spacing_secs = 0
schedule = "{schedule}"
"#,
        ledger = ledger.display()
    );
    for (tag, sim, extra) in orgs {
        text.push_str(&format!(
            r#"
[[orgs]]
name = "brand-{tag}"
genesys.api_base_url = "{base}"
genesys.login_base_url = "{base}"
genesys.client_id = "client-{tag}"
{extra}
"#,
            base = sim.base_url()
        ));
    }
    text
}

fn spawn_daemon(dir: &Path, config: &str, tags: &[&str], now: &str) -> Daemon {
    let mut env: Vec<(String, String)> = tags.iter().map(|t| secret_env(t)).collect();
    env.push((skill_tuner::clock::NOW_ENV.into(), now.into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Daemon::spawn(dir, config, &env)
}

/// `name{org="brand-<tag>",rest}` as `/metrics` renders it.
fn of(name: &str, tag: &str, rest: &str) -> String {
    if rest.is_empty() {
        format!("{name}{{org=\"brand-{tag}\"}}")
    } else {
        format!("{name}{{org=\"brand-{tag}\",{rest}}}")
    }
}

/// Org `brand-b`'s login endpoint is down from the start, each refusal 20 s in coming;
/// `brand-a`'s cycle still starts at its scheduled tick, to the second, while `brand-b` skips
/// it as not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_orgs_login_down_does_not_delay_anothers_scheduled_cycle() {
    let (a, b) = (sim_org("a").await, sim_org("b").await);
    b.faults().login_down(true);
    b.faults()
        .latency_for("/oauth/token", std::time::Duration::from_secs(20));
    let dir = TempDir::new("orgs-login-down");
    let ledger = dir.path().join("ledger.db");
    // The daemon's clock starts 10 s before the noon tick both orgs are scheduled for.
    let config = daemon_config(&ledger, "0 0 12 * * *", &[("a", &a, ""), ("b", &b, "")]);
    let d = spawn_daemon(dir.path(), &config, &["a", "b"], "2027-05-12T11:59:50Z");
    let m = d
        .wait_metrics("brand-a's scheduled cycle", 60, |m| {
            metric_or_zero(m, &of("skill_tuner_cycles_total", "a", "outcome=\"ok\"")) >= 1.0
        })
        .await;
    assert!(
        metric_or_zero(
            &m,
            &of(
                "skill_tuner_ticks_skipped_total",
                "b",
                "reason=\"not_ready\""
            )
        ) >= 1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, &of("skill_tuner_token_valid", "b", "")),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, &of("skill_tuner_ready", "a", "")),
        Some(1.0),
        "{m}"
    );
    // On time: the run started within a few seconds of the tick, by the daemon's clock.
    let runs = Ledger::open_read_only(&ledger)
        .unwrap()
        .with_org("brand-a")
        .recent_runs(10)
        .unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let started = common::sim::instant(&runs[0].started_at);
    let tick = common::sim::instant("2027-05-12T12:00:00Z");
    let late = (started - tick).num_milliseconds();
    assert!(
        (0..3_000).contains(&late),
        "started {late} ms after its tick"
    );
    let b_runs = Ledger::open_read_only(&ledger)
        .unwrap()
        .with_org("brand-b")
        .recent_runs(10)
        .unwrap();
    assert!(b_runs.is_empty(), "{b_runs:?}");
    // /readyz names the org that is not ready.
    let (status, body) = d.get("/readyz").await.unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("org `brand-b`: no valid API token"), "{body}");
    assert!(!body.contains("brand-a"), "{body}");
    // Login back: brand-b becomes ready on its own, brand-a untouched.
    b.faults()
        .latency_for("/oauth/token", std::time::Duration::ZERO);
    b.faults().login_down(false);
    d.wait_metrics("brand-b ready", 90, |m| {
        metric(m, &of("skill_tuner_ready", "b", "")) == Some(1.0)
    })
    .await;
}

/// Runs of `org` in the ledger, oldest first.
fn runs_of(ledger: &Path, org: &str) -> Vec<skill_tuner::history::RunRecord> {
    let mut runs = Ledger::open_read_only(ledger)
        .unwrap()
        .with_org(org)
        .recent_runs(50)
        .unwrap();
    runs.reverse();
    runs
}

/// The `config_info` sample of one org.
fn config_info(m: &str, tag: &str) -> String {
    let start = format!("skill_tuner_config_info{{org=\"brand-{tag}\",");
    m.lines()
        .find(|l| l.starts_with(&start))
        .unwrap_or_else(|| panic!("no config_info of brand-{tag} in\n{m}"))
        .to_string()
}

/// SIGHUP with orgs changed, removed, added and left alone, while cycles run: the unchanged
/// org's cycle and schedule are untouched, the changed one takes its new schedule after its
/// cycle, the removed one finishes its cycle and stops, the new one starts. A bad org then
/// rejects the whole reload, naming the org, and the running set stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_removes_and_changes_orgs_one_by_one() {
    let (a, b, c, x) = (
        sim_org("a").await,
        sim_org("b").await,
        sim_org("c").await,
        sim_org("x").await,
    );
    // Long cycles, so the reload lands while they run.
    for sim in [&a, &b, &x] {
        sim.faults().latency(std::time::Duration::from_millis(120));
    }
    let dir = TempDir::new("orgs-reload");
    let ledger = dir.path().join("ledger.db");
    let first = daemon_config(
        &ledger,
        "0 0 2 * * *",
        &[("a", &a, ""), ("b", &b, ""), ("x", &x, "")],
    );
    let d = spawn_daemon(
        dir.path(),
        &first,
        &["a", "b", "c", "x"],
        common::sim::TEST_NOW,
    );
    d.wait_ready().await;
    let before = d.metrics().await;
    let a_info = config_info(&before, "a");
    let a_next = metric(
        &before,
        &of("skill_tuner_next_run_timestamp_seconds", "a", ""),
    );

    d.signal("USR1");
    d.wait_metrics("three cycles running", 30, |m| {
        ["a", "b", "x"]
            .iter()
            .all(|t| metric(m, &of("skill_tuner_cycle_running", t, "")) == Some(1.0))
    })
    .await;
    let second = daemon_config(
        &ledger,
        "0 0 2 * * *",
        &[
            ("a", &a, ""),
            ("b", &b, "daemon.schedule = \"0 15 4 * * *\""),
            ("c", &c, ""),
        ],
    );
    d.write_config(&second);
    d.signal("HUP");
    let m = d
        .wait_metrics("the reload", 60, |m| {
            metric(m, r#"skill_tuner_config_reloads_total{result="ok"}"#) == Some(1.0)
        })
        .await;
    // By then brand-b's cycle ended: its new schedule waited for it.
    assert!(config_info(&m, "b").contains("0 15 4 * * *"), "{m}");
    assert_eq!(runs_of(&ledger, "brand-b").len(), 1);
    assert!(runs_of(&ledger, "brand-b")[0].finished_at.is_some());
    let m = d
        .wait_metrics("brand-a's cycle, brand-x gone, brand-c ready", 60, |m| {
            metric(m, &of("skill_tuner_cycle_running", "a", "")) == Some(0.0)
                && !m.contains("skill_tuner_ready{org=\"brand-x\"}")
                && metric(m, &of("skill_tuner_ready", "c", "")) == Some(1.0)
        })
        .await;
    // brand-a: the same config, the same next run, one cycle that ran to its end.
    assert_eq!(config_info(&m, "a"), a_info);
    assert_eq!(
        metric(&m, &of("skill_tuner_next_run_timestamp_seconds", "a", "")),
        a_next
    );
    assert_eq!(
        metric(&m, &of("skill_tuner_cycles_total", "a", "outcome=\"ok\"")),
        Some(1.0),
        "{m}"
    );
    for org in ["brand-a", "brand-b", "brand-x"] {
        let runs = runs_of(&ledger, org);
        assert_eq!(runs.len(), 1, "{org}: {runs:?}");
        assert_eq!(
            runs[0].outcome,
            Some(skill_tuner::history::RunOutcome::Ok),
            "{org} (a removed org finishes its cycle): {runs:?}"
        );
    }
    assert!(runs_of(&ledger, "brand-c").is_empty());
    // brand-x's daemon lock was released with its loop: another process may take that org.
    let x_lock =
        skill_tuner::history::writer_lock::LockKind::Daemon.path_for_org(&ledger, "brand-x");
    drop(
        skill_tuner::history::writer_lock::acquire_for_org(
            &ledger,
            "brand-x",
            skill_tuner::history::writer_lock::LockKind::Daemon,
            &skill_tuner::clock::Clock::system(),
            "test",
        )
        .unwrap_or_else(|e| panic!("{}: {e}", x_lock.display())),
    );

    // A bad org rejects the whole reload: nothing is added, removed or changed.
    let bad = daemon_config(
        &ledger,
        "0 0 2 * * *",
        &[
            ("a", &a, "daemon.schedule = \"0 0 5 * * *\""),
            ("c", &c, "policy.default.max_step = 0.0"),
        ],
    );
    let m = d.reload_failing(&bad, 1.0).await;
    assert_eq!(config_info(&m, "a"), a_info);
    assert_eq!(
        metric(&m, &of("skill_tuner_ready", "b", "")),
        Some(1.0),
        "{m}"
    );
    let logs = d.logs();
    assert!(
        logs.contains("orgs[1] (name \\\"brand-c\\\"): `policy.default.max_step`")
            || logs.contains("orgs[1] (name \"brand-c\"): `policy.default.max_step`"),
        "{logs}"
    );
}

/// The Kubernetes sharding example: each shard file is a valid config of listed orgs, no
/// org is in two shards, and every org's credential is in the Secret.
#[test]
fn the_sharded_kubernetes_example_gives_each_org_one_shard() {
    let yaml = std::fs::read_to_string("deploy/kubernetes/sharded-statefulset.yaml").unwrap();
    let mut seen = Vec::new();
    for shard in 0..2 {
        let key = format!("  shard-{shard}.toml: |");
        let text: String = yaml
            .lines()
            .skip_while(|l| *l != key)
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with("    "))
            .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
            .collect();
        let orgs = Orgs::from_toml_str(&text).unwrap_or_else(|e| panic!("shard {shard}: {e}"));
        assert!(orgs.listed(), "shard {shard}");
        for name in orgs.names() {
            assert!(!seen.contains(&name), "{name} in two shards");
            assert!(
                yaml.contains(&format!("  client_secret_{name}: ")),
                "no credential for {name}"
            );
            seen.push(name);
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

/// The bearer token of `POST /run` in the org daemon tests.
const RUN_TOKEN: &str = "orgs-run-token-5e0b7c2d9a41f3e8";

/// `POST path` with the run token (or `token`): status, `Retry-After` (if any) and body.
async fn post_run(d: &Daemon, path: &str, token: &str) -> (u16, Option<String>, String) {
    let resp = d
        .http
        .post(format!("http://{}{path}", d.admin))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, retry, resp.text().await.unwrap())
}

/// `POST /run?org=NAME` starts that org's cycle alone, under that org's own readiness and
/// `daemon.min_spacing_secs`; plain `POST /run` starts every org that can and answers one
/// line per org; an unknown org is 404 naming the daemon's orgs; the token comes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_run_names_one_org_or_asks_each_and_says_what_each_did() {
    let (a, b) = (sim_org("a").await, sim_org("b").await);
    b.faults().login_down(true);
    let dir = TempDir::new("orgs-post-run");
    let ledger = dir.path().join("ledger.db");
    let config = daemon_config(
        &ledger,
        "0 0 2 * * *",
        &[
            ("a", &a, "daemon.min_spacing_secs = 300"),
            ("b", &b, "daemon.min_spacing_secs = 300"),
        ],
    )
    .replace(
        "min_spacing_secs = 0\n",
        "min_spacing_secs = 0\nenable_run_endpoint = true\n",
    );
    let mut env: Vec<(String, String)> = ["a", "b"].iter().map(|t| secret_env(t)).collect();
    env.push(("SKILL_TUNER_RUN_TOKEN".into(), RUN_TOKEN.into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut d = Daemon::spawn(dir.path(), &config, &env);
    d.wait_metrics("brand-a ready", 30, |m| {
        metric(m, &of("skill_tuner_ready", "a", "")) == Some(1.0)
    })
    .await;

    // The token comes before anything about orgs: no org name leaks to a caller without it.
    let (status, _, body) = post_run(&d, "/run?org=brand-zz", "wrong-token-0000000000").await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("brand-a"), "{body}");
    let (status, _, body) = post_run(&d, "/run?org=brand-zz", RUN_TOKEN).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("no org named `brand-zz`") && body.contains("brand-a, brand-b"),
        "{body}"
    );
    for bad in [
        "/run?orgs=brand-a",
        "/run?org=",
        "/run?org=brand-a&org=brand-b",
    ] {
        let (status, _, body) = post_run(&d, bad, RUN_TOKEN).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // The org named alone answers for itself: brand-b cannot log in.
    let (status, _, body) = post_run(&d, "/run?org=brand-b", RUN_TOKEN).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        "org `brand-b`: not ready: no valid API token (login pending or failing)\n"
    );

    // Plain: brand-a starts, brand-b says why it does not.
    let (status, _, body) = post_run(&d, "/run", RUN_TOKEN).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body,
        "org `brand-a`: cycle requested\norg `brand-b`: not ready: no valid API token (login pending or failing)\n"
    );
    d.wait_metrics("brand-a's cycle", 30, |m| {
        metric_or_zero(m, &of("skill_tuner_cycles_total", "a", "outcome=\"ok\"")) >= 1.0
    })
    .await;

    // brand-a's own spacing refuses it, named or not, and says when it may run.
    let (status, retry, body) = post_run(&d, "/run?org=brand-a", RUN_TOKEN).await;
    assert_eq!(status, 503, "{body}");
    let retry: i64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=300).contains(&retry), "Retry-After {retry}");
    assert!(
        body.starts_with("org `brand-a`: no cycle before ") && body.contains("min_spacing"),
        "{body}"
    );
    let (status, retry, body) = post_run(&d, "/run", RUN_TOKEN).await;
    assert_eq!(status, 503, "{body}");
    assert!(retry.is_some(), "{body}");
    assert!(
        body.contains("org `brand-a`: no cycle before ")
            && body.contains("org `brand-b`: not ready"),
        "{body}"
    );

    let m = d.metrics().await;
    assert_eq!(cycles_total(&m), 1.0, "{m}");
    for (tag, reason, at_least) in [("a", "min_spacing", 2.0), ("b", "not_ready", 3.0)] {
        let skipped = metric_or_zero(
            &m,
            &of(
                "skill_tuner_ticks_skipped_total",
                tag,
                &format!("reason=\"{reason}\""),
            ),
        );
        assert!(skipped >= at_least, "brand-{tag} {reason}: {skipped}\n{m}");
    }
    assert!(runs_of(&ledger, "brand-b").is_empty());
    let logs = d.logs();
    let accepted = logs
        .lines()
        .find(|l| l.contains("POST /run accepted"))
        .unwrap_or_else(|| panic!("no accepted run logged:\n{logs}"));
    assert!(
        accepted.contains("brand-a") && accepted.contains("127.0.0.1"),
        "the org and the peer: {accepted}"
    );
    assert!(!logs.contains(RUN_TOKEN), "the token was logged");
    d.signal("TERM");
    assert_eq!(d.wait_exit(20).await.code(), Some(0), "{}", d.logs());
}
