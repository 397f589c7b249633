//! The shipped config files parse, and `config/skill-tuner.toml` documents exactly the
//! defaults (so the file cannot drift from the code).

use crate::common;

use common::TempDir;
use skill_tuner::config::Settings;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[test]
fn the_reference_config_states_the_defaults() {
    let parsed = Settings::load_with_env(Path::new("config/skill-tuner.toml"), false).unwrap();
    let mut expected = Settings::default();
    expected.genesys.client_id = "REPLACE-WITH-YOUR-OAUTH-CLIENT-ID".into();
    assert_eq!(parsed, expected);
}

#[test]
fn the_demo_config_is_valid() {
    Settings::load_with_env(Path::new("config/demo.toml"), false).unwrap();
}

#[test]
fn errors_name_the_file_the_key_and_the_expectation() {
    let dir = std::env::temp_dir().join(format!("st-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        r#"
[genesys]
region = "eu-moon-1"
client_id = ""
[policy.default]
floor = 4.0
ceiling = 3.0
[policy.default.components]
handle_time = { weight = 0.7, target = 300.0, limit = 900.0 }
[daemon]
schedule = "every day"
"#,
    )
    .unwrap();
    let err = Settings::load_with_env(&file, false).unwrap_err();
    let text = err.to_string();
    for needle in [
        "bad.toml",
        "`genesys.region`",
        "eu-moon-1",
        "`genesys.client_id`",
        "`policy.default.floor`",
        "`policy.default.components`: weights that sum to 1.0, got 0.7",
        "`daemon.schedule`",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    std::fs::write(&file, "[genesys]\nregoin = \"eu-west-1\"\n").unwrap();
    let text = Settings::load_with_env(&file, false)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("regoin") && text.contains("bad.toml"),
        "{text}"
    );
    std::fs::write(&file, "[genesys]\nrate_limit_per_minute = \"fast\"\n").unwrap();
    let text = Settings::load_with_env(&file, false)
        .unwrap_err()
        .to_string();
    assert!(text.contains("rate_limit_per_minute"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A config file at `mode` in a fresh directory.
#[cfg(unix)]
fn config_at_mode(dir: &TempDir, text: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let file = dir.path().join("skill-tuner.toml");
    std::fs::write(&file, text).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    file
}

#[cfg(unix)]
#[test]
fn strict_mode_accepts_the_systemd_layout_and_refuses_what_others_could_change_or_read() {
    let dir = TempDir::new("config-perm");
    let strict = "[genesys]\nclient_id = \"x\"\nstrict_file_permissions = true\n";
    // The unit's layout: root-owned (or ours), 0644, no credential in it. The dynamic user
    // reads it as "others"; it holds nothing secret.
    for mode in [0o644, 0o640, 0o600, 0o444] {
        let file = config_at_mode(&dir, strict, mode);
        Settings::load_with_env(&file, false)
            .unwrap_or_else(|e| panic!("mode {mode:o} refused: {e}"));
    }
    // Writable by group or others: whoever can write it controls the tuner.
    for mode in [0o664, 0o646, 0o666] {
        let file = config_at_mode(&dir, strict, mode);
        let text = Settings::load_with_env(&file, false)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("writable by group or others") && text.contains("chmod go-w"),
            "{text}"
        );
    }
    // Readable by others while holding a credential (a webhook URL is its own token).
    let with_hook = format!(
        "{strict}[alerts.webhook]\nenabled = true\nurl = \"https://hooks.example.com/services/T0/B0/XYZ\"\n"
    );
    let file = config_at_mode(&dir, &with_hook, 0o644);
    let text = Settings::load_with_env(&file, false)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("readable by others")
            && text.contains("`alerts.webhook.url` holds a credential")
            && text.contains("chmod o-rwx")
            && text.contains("SKILL_TUNER__ALERTS__WEBHOOK__URL"),
        "{text}"
    );
    let file = config_at_mode(&dir, &with_hook, 0o640);
    Settings::load_with_env(&file, false).unwrap();
    // A loopback webhook (the simulator's) is no credential.
    let loopback = format!(
        "{strict}[alerts.webhook]\nenabled = true\nurl = \"http://127.0.0.1:8089/_sim/webhook\"\n"
    );
    let file = config_at_mode(&dir, &loopback, 0o644);
    Settings::load_with_env(&file, false).unwrap();
}

/// `skill-tuner check-config --config <config>` with `env` set, no other
/// `SKILL_TUNER__…` variables, and a client secret in the environment.
fn check_config(config: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(common::BIN);
    cmd.args(["check-config", "--config"]).arg(config);
    for (key, _) in std::env::vars() {
        if key.starts_with("SKILL_TUNER") {
            cmd.env_remove(key);
        }
    }
    cmd.env("SKILL_TUNER_CLIENT_SECRET", "not-a-real-secret")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[cfg(unix)]
#[test]
fn the_config_file_permission_warning_reaches_stderr() {
    let dir = TempDir::new("config-warn");
    let file = config_at_mode(&dir, "[genesys]\nclient_id = \"x\"\n", 0o666);
    let out = check_config(&file, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("WARN")
            && stderr.contains(&file.display().to_string())
            && stderr.contains("writable by group or others (mode 666)")
            && stderr.contains("chmod go-w"),
        "no permission warning in stderr:\n{stderr}"
    );
}

#[test]
fn environment_strings_stay_strings_and_typed_keys_still_parse() {
    let dir = TempDir::new("config-env");
    let file = dir.path().join("skill-tuner.toml");
    std::fs::write(&file, "[genesys]\nclient_id = \"from-file\"\n").unwrap();
    let out = check_config(
        &file,
        &[
            ("SKILL_TUNER__GENESYS__CLIENT_ID", "00123"),
            ("SKILL_TUNER__ALERTS__WORKITEM__QUEUE_ID", "0042"),
            ("SKILL_TUNER__ALERTS__WORKITEM__WORKTYPE_ID", "1e5"),
            ("SKILL_TUNER__GENESYS__RATE_LIMIT_PER_MINUTE", "120"),
            ("SKILL_TUNER__POLICY__DEFAULT__MAX_STEP", "0.75"),
            ("SKILL_TUNER__POLICY__DEFAULT__MIN_INTERACTIONS", "007"),
            ("SKILL_TUNER__DAEMON__RUN_ON_START", "true"),
            ("SKILL_TUNER__DAEMON__ADMIN_LISTEN", "127.0.0.1:9999"),
            ("SKILL_TUNER__SCOPE__SKILLS", "Billing, Sales"),
            ("SKILL_TUNER__SCOPE__QUEUES", "0042"),
            (
                "SKILL_TUNER__ALERTS__WORKITEM__APPROVED_STATUSES",
                "Approved,Done",
            ),
            ("SKILL_TUNER__APPLY__ON_CONFLICT", "replan"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: Settings = toml::from_str(&stdout).unwrap();
    assert_eq!(s.genesys.client_id, "00123");
    assert_eq!(s.alerts.workitem.queue_id.as_deref(), Some("0042"));
    assert_eq!(s.alerts.workitem.worktype_id, "1e5");
    assert_eq!(s.genesys.rate_limit_per_minute, 120);
    assert_eq!(s.policy.default.max_step, 0.75);
    assert_eq!(s.policy.default.min_interactions, 7);
    assert!(s.daemon.run_on_start);
    assert_eq!(s.daemon.admin_listen, "127.0.0.1:9999");
    assert_eq!(s.scope.skills, ["Billing", "Sales"]);
    assert_eq!(s.scope.queues, ["0042"]);
    assert_eq!(s.alerts.workitem.approved_statuses, ["Approved", "Done"]);
    assert_eq!(s.apply.on_conflict, skill_tuner::config::OnConflict::Replan);
}

#[test]
fn environment_values_that_do_not_fit_their_key_are_refused_naming_it() {
    let dir = TempDir::new("config-env-bad");
    let file = dir.path().join("skill-tuner.toml");
    std::fs::write(&file, "[genesys]\nclient_id = \"x\"\n").unwrap();
    for (var, value, key, needle) in [
        (
            "SKILL_TUNER__POLICY__DEFAULT__MIN_INTERACTIONS",
            "99999999999999999999",
            "policy.default.min_interactions",
            "an integer from 0 to 18446744073709551615, got `99999999999999999999`",
        ),
        (
            "SKILL_TUNER__GENESYS__RATE_LIMIT_PER_MINUTE",
            "5000000000",
            "genesys.rate_limit_per_minute",
            "an integer from 0 to 4294967295",
        ),
        (
            "SKILL_TUNER__POLICY__DEFAULT__MIN_INTERACTIONS",
            "20.5",
            "policy.default.min_interactions",
            "got `20.5`",
        ),
        (
            "SKILL_TUNER__POLICY__DEFAULT__MAX_STEP",
            "a lot",
            "policy.default.max_step",
            "a number, got `a lot`",
        ),
        (
            "SKILL_TUNER__DAEMON__RUN_ON_START",
            "yes",
            "daemon.run_on_start",
            "true or false, got `yes`",
        ),
    ] {
        let out = check_config(&file, &[(var, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{var}={value} accepted: {stderr}"
        );
        assert!(
            stderr.contains(&format!("`{key}`")) && stderr.contains(needle) && stderr.contains(var),
            "{var}={value}: {stderr}"
        );
    }
}

/// `systemd-analyze verify` on the shipped unit, its ExecStart pointed at this build (verify
/// needs the binary to exist; no systemd has to run). Skipped where systemd is not installed.
#[test]
fn the_systemd_unit_verifies() {
    let dir = TempDir::new("unit");
    let unit = std::fs::read_to_string("systemd/skill-tuner.service").unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/skill-tuner run"));
    let copy = dir.path().join("skill-tuner.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/skill-tuner", common::BIN),
    )
    .unwrap();
    let out = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: systemd-analyze not available ({e})");
            return;
        }
    };
    // verify exits 0 on unknown keys and unparsable values too: it must say nothing at all.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

/// The container image binds the admin listener to 0.0.0.0 so that probes reach it: the
/// image and the Kubernetes manifest must say `admin_public` too, or the daemon refuses to
/// start. Checked with the real binary against the ConfigMap's config.
#[test]
fn the_container_settings_declare_the_public_admin_listener_and_validate() {
    let dockerfile = std::fs::read_to_string("deploy/Dockerfile").unwrap();
    let env: Vec<(String, String)> = dockerfile
        .split([' ', '\n', '\\'])
        .filter_map(|w| w.trim().split_once('='))
        .filter(|(k, _)| k.starts_with("SKILL_TUNER__DAEMON__"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert!(
        env.contains(&(
            "SKILL_TUNER__DAEMON__ADMIN_LISTEN".into(),
            "0.0.0.0:9464".into()
        )),
        "{env:?}"
    );
    assert!(
        env.contains(&("SKILL_TUNER__DAEMON__ADMIN_PUBLIC".into(), "true".into())),
        "the Dockerfile does not set admin_public: {env:?}"
    );
    let deployment = std::fs::read_to_string("deploy/kubernetes/deployment.yaml").unwrap();
    let line = deployment
        .lines()
        .position(|l| l.contains("name: SKILL_TUNER__DAEMON__ADMIN_PUBLIC"))
        .expect("the Deployment sets SKILL_TUNER__DAEMON__ADMIN_PUBLIC");
    assert!(
        deployment
            .lines()
            .nth(line + 1)
            .unwrap_or_default()
            .contains("\"true\""),
        "{deployment}"
    );

    // The ConfigMap's config, with the image's environment: valid; without admin_public: not.
    let configmap = std::fs::read_to_string("deploy/kubernetes/configmap.yaml").unwrap();
    let toml: String = configmap
        .lines()
        .skip_while(|l| !l.contains("skill-tuner.toml: |"))
        .skip(1)
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let dir = std::env::temp_dir().join(format!("st-container-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("skill-tuner.toml");
    std::fs::write(&file, toml).unwrap();
    let check = |with_env: &[(String, String)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_skill-tuner"));
        cmd.args(["check-config", "--config"])
            .arg(&file)
            .env_remove("SKILL_TUNER_CONFIG")
            .env_remove("CREDENTIALS_DIRECTORY")
            // check-config, like run, refuses a config without its secret.
            .env("SKILL_TUNER_CLIENT_SECRET", "container-test-secret")
            .env("RUST_LOG", "error");
        for (k, v) in with_env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = check(&env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let without: Vec<_> = env
        .iter()
        .filter(|(k, _)| k != "SKILL_TUNER__DAEMON__ADMIN_PUBLIC")
        .cloned()
        .collect();
    let out = check(&without);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("daemon.admin_public"));
    let _ = std::fs::remove_dir_all(&dir);
}
