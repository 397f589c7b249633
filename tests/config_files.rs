//! The shipped config files parse, and `config/skill-tuner.toml` documents exactly the
//! defaults (so the file cannot drift from the code).

use skill_tuner::config::Settings;
use std::path::Path;

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

#[cfg(unix)]
#[test]
fn a_config_readable_by_others_is_refused_when_strict() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("st-config-perm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("open.toml");
    std::fs::write(
        &file,
        "[genesys]\nclient_id = \"x\"\nstrict_file_permissions = true\n",
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = Settings::load_with_env(&file, false)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("readable by others") && text.contains("chmod o-rwx"),
        "{text}"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    Settings::load_with_env(&file, false).unwrap();
    std::fs::remove_dir_all(&dir).ok();
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
