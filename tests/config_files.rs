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
