//! Many orgs in one config (`[[orgs]]`): inheritance from the top level, errors that name
//! the org, process-wide keys kept top-level, each org its own OAuth client, `--org`.

use crate::common;

use common::TempDir;
use skill_tuner::config::{secret, ConfigError, OrgChoiceError, Orgs, Settings, DEFAULT_ORG};
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
