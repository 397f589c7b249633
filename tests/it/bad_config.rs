//! Bad input: every invalid config value is refused with an error that names its
//! key and the form that was expected, so a person can fix the file without reading code.

use crate::common;

use skill_tuner::config::{secret, ConfigError, GenesysSettings, Settings};
use skill_tuner::cycle::{run_cycle, CycleError, Mode, StopSignal};
use skill_tuner::demo::{settings_for, sim_secret};
use skill_tuner::runtime;

/// The problems `text` is refused with (it must be refused as invalid, not unparsable).
fn refused(text: &str) -> (Vec<(String, String)>, String) {
    match Settings::from_toml_str(text) {
        Err(e @ ConfigError::Invalid { .. }) => (
            e.problems()
                .iter()
                .map(|p| (p.key.clone(), p.expected.clone()))
                .collect(),
            e.to_string(),
        ),
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

/// Asserts that `text` is refused for `key` with an expectation mentioning every `needle`,
/// and that the rendered error shows both.
fn assert_refused(text: &str, key: &str, needles: &[&str]) {
    let (problems, rendered) = refused(text);
    let Some((_, expected)) = problems.iter().find(|(k, _)| k == key) else {
        panic!("no problem for `{key}` in {problems:?}");
    };
    for needle in needles {
        assert!(
            expected.contains(needle),
            "`{key}`: {expected:?} lacks {needle:?}"
        );
    }
    assert!(rendered.contains(&format!("`{key}`")), "{rendered}");
    assert!(rendered.contains(expected.as_str()), "{rendered}");
}

const VALID: &str = "[genesys]\nclient_id = \"x\"\n";

#[test]
fn the_base_config_is_valid() {
    Settings::from_toml_str(VALID).unwrap();
}

#[test]
fn a_bad_cron_expression_names_daemon_schedule_and_the_form() {
    assert_refused(
        &format!("{VALID}[daemon]\nschedule = \"every day at two\"\n"),
        "daemon.schedule",
        &["every day at two", "5 or 6 fields", "0 0 2 * * *"],
    );
    assert_refused(
        &format!("{VALID}[daemon]\nschedule = \"0 61 * * * *\"\n"),
        "daemon.schedule",
        &["0 61 * * * *", "5 or 6 fields"],
    );
    assert_refused(
        &format!("{VALID}[daemon]\ntime_zone = \"Mars/Olympus\"\n"),
        "daemon.time_zone",
        &["Mars/Olympus", "IANA", "Europe/Dublin"],
    );
}

#[test]
fn an_unknown_region_names_genesys_region_and_the_known_ones() {
    assert_refused(
        "[genesys]\nclient_id = \"x\"\nregion = \"eu-moon-1\"\n",
        "genesys.region",
        &["eu-moon-1", "eu-west-1", "mypurecloud.ie", "ap-southeast-2"],
    );
}

#[test]
fn weights_that_do_not_sum_to_one_name_the_components_table() {
    assert_refused(
        &format!(
            "{VALID}[policy.default.components]\nhandle_time = {{ weight = 0.7, target = 300.0, limit = 900.0 }}\nquality = {{ weight = 0.2, target = 90.0, limit = 60.0 }}\n"
        ),
        "policy.default.components",
        &["sum to 1.0", "0.9"],
    );
    // Per-skill policies are checked too, under their own key.
    assert_refused(
        &format!(
            "{VALID}[policy.skills.\"Billing\".components]\nhandle_time = {{ weight = 1.5, target = 300.0, limit = 900.0 }}\n"
        ),
        "policy.skills.\"Billing\".components",
        &["sum to 1.0", "1.5"],
    );
    assert_refused(
        &format!(
            "{VALID}[policy.default.components]\nhandle_time = {{ weight = 1.0, target = 300.0, limit = 300.0 }}\n"
        ),
        "policy.default.components.handle_time.target",
        &["different from limit"],
    );
}

#[test]
fn floor_above_ceiling_names_both_keys() {
    assert_refused(
        &format!("{VALID}[policy.default]\nfloor = 4.0\nceiling = 3.0\n"),
        "policy.default.floor",
        &["at most policy.default.ceiling", "4 > 3"],
    );
    assert_refused(
        &format!("{VALID}[policy.default]\nceiling = 7.5\n"),
        "policy.default.ceiling",
        &["from 0 to 5", "7.5"],
    );
}

#[test]
fn other_out_of_range_values_name_their_keys() {
    for (toml, key, needle) in [
        (
            "[metrics]\nlookback_days = 90\n",
            "metrics.lookback_days",
            "1 to 31",
        ),
        (
            "[metrics]\ntime_zone = \"Nowhere\"\n",
            "metrics.time_zone",
            "IANA",
        ),
        (
            "[metrics]\nusers_per_query = 500\n",
            "metrics.users_per_query",
            "1 to 100",
        ),
        (
            "[breaker]\nmax_changed_share = 2.0\n",
            "breaker.max_changed_share",
            "from 0 to 1",
        ),
        (
            "[alerts.webhook]\nenabled = true\nurl = \"ftp://x\"\n",
            "alerts.webhook.url",
            "http(s) URL",
        ),
        (
            "[daemon]\nadmin_listen = \"everywhere\"\n",
            "daemon.admin_listen",
            "127.0.0.1:9464",
        ),
        ("[log]\nlevel = \"loud=[\"\n", "log.level", "tracing filter"),
    ] {
        assert_refused(&format!("{VALID}{toml}"), key, &[needle]);
    }
}

#[test]
fn a_ledger_that_would_not_persist_names_history_path() {
    for path in [
        "",
        ":memory:",
        "file::memory:",
        "file:ledger?mode=memory&cache=shared",
    ] {
        assert_refused(
            &format!("{VALID}[history]\npath = \"{path}\"\n"),
            "history.path",
            &["a SQLite file on disk that outlives the process"],
        );
    }
    Settings::from_toml_str(&format!(
        "{VALID}[history]\npath = \"/var/lib/st/ledger.db\"\n"
    ))
    .unwrap();
}

#[test]
fn plain_http_to_a_remote_host_is_refused_unless_allowed() {
    let remote = "[genesys]\nclient_id = \"x\"\napi_base_url = \"http://api.example.com\"\nlogin_base_url = \"https://login.example.com\"\n";
    assert_refused(
        remote,
        "genesys.api_base_url",
        &["plain http", "allow_insecure_http = true"],
    );
    let allowed = format!("{remote}allow_insecure_http = true\n");
    Settings::from_toml_str(&allowed).unwrap();
    // Loopback (the simulator) needs no opt-in.
    Settings::from_toml_str("[genesys]\nclient_id = \"x\"\napi_base_url = \"http://127.0.0.1:8089\"\nlogin_base_url = \"http://127.0.0.1:8089\"\n").unwrap();
}

#[test]
fn missing_credentials_name_every_place_a_secret_may_come_from() {
    if std::env::var_os("CREDENTIALS_DIRECTORY").is_some() {
        eprintln!("skipped: CREDENTIALS_DIRECTORY is set in this environment");
        return;
    }
    let g = GenesysSettings {
        client_id: "my-client".into(),
        client_secret_env: format!("SKILL_TUNER_TEST_UNSET_{}", std::process::id()),
        ..GenesysSettings::default()
    };
    let err = secret::load_client_secret(&g).unwrap_err().to_string();
    for needle in [
        "my-client",
        g.client_secret_env.as_str(),
        "`genesys.client_secret_file`",
        "client_secret",
    ] {
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    }
    // A configured file that is not there names the key and the expected form.
    let g = GenesysSettings {
        client_secret_file: Some(std::env::temp_dir().join("skill-tuner-no-such-secret")),
        ..g
    };
    let err = secret::load_client_secret(&g).unwrap_err().to_string();
    assert!(
        err.contains("genesys.client_secret_file")
            && err.contains("skill-tuner-no-such-secret")
            && err.contains("mode 600"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unknown_skill_name_fails_the_cycle_naming_the_key_and_the_known_skills() {
    let sim = common::sim::start_sim(10, |_| {}).await;
    let mut settings = settings_for(&sim, 60_000);
    settings.scope.skills = vec!["Nope".into()];
    settings
        .policy
        .skills
        .insert("Also Nope".into(), settings.policy.default.clone());
    let client = runtime::client_with_secret(&settings, sim_secret(), &sim.clock()).unwrap();
    let ledger = common::sim::memory_ledger(&sim);
    let err = run_cycle(
        &client,
        &settings,
        &ledger,
        Mode::Once,
        &StopSignal::default(),
        &sim.clock(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CycleError::UnknownSkills(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("scope.skills: \"Nope\""), "{text}");
    assert!(text.contains("policy.skills: \"Also Nope\""), "{text}");
    for (_, name) in sim.org().skills() {
        assert!(
            text.contains(&name),
            "known skill {name} not listed: {text}"
        );
    }
    assert_eq!(sim.org().write_count(), 0);
    sim.shutdown().await;
}

#[test]
fn a_max_step_that_can_never_move_is_refused_naming_its_key() {
    assert_refused(
        &format!("{VALID}[policy.default]\nmax_step = 0.0\n"),
        "policy.default.max_step",
        &["> 0", "scope.exclude_skills"],
    );
    assert_refused(
        &format!("{VALID}[policy.skills.\"Billing\"]\nmax_step = 0\n"),
        "policy.skills.\"Billing\".max_step",
        &["> 0"],
    );
    // Below the dead band or the rounding grid it can never move either.
    assert_refused(
        &format!("{VALID}[policy.default]\nmax_step = 0.2\ndead_band = 0.5\nround_to = 0.1\n"),
        "policy.default.max_step",
        &["at least policy.default.dead_band", "0.2 < 0.5"],
    );
    assert_refused(
        &format!("{VALID}[policy.default]\nmax_step = 0.2\ndead_band = 0.0\nround_to = 0.5\n"),
        "policy.default.max_step",
        &["at least policy.default.round_to", "0.2 < 0.5"],
    );
    Settings::from_toml_str(&format!(
        "{VALID}[policy.default]\nmax_step = 0.25\ndead_band = 0.25\nround_to = 0.25\n"
    ))
    .unwrap();
}

#[test]
fn case_mix_ramps_must_run_from_a_lower_ratio_to_a_higher_one() {
    assert_refused(
        &format!("{VALID}[policy.relative]\nhandle_time = {{ target = 1.2, limit = 0.8 }}\n"),
        "policy.relative.handle_time.limit",
        &["a ratio above target", "0.8 ≤ 1.2"],
    );
    assert_refused(
        &format!("{VALID}[policy.relative]\ntransfer_rate = {{ target = -0.5, limit = 2.0 }}\n"),
        "policy.relative.transfer_rate.target",
        &["a ratio ≥ 0"],
    );
    let s = Settings::from_toml_str(&format!(
        "{VALID}[policy]\ncase_mix = false\ntune_without_routing_effect = true\n[policy.relative]\nhandle_time = {{ target = 0.7, limit = 1.3 }}\n"
    ))
    .unwrap();
    assert!(!s.policy.case_mix && s.policy.tune_without_routing_effect);
    assert_eq!(s.policy.relative.handle_time.limit, 1.3);
    assert_eq!(
        s.policy.relative.transfer_rate.limit, 2.0,
        "the other ramp keeps its default"
    );
}

#[test]
fn numbers_are_never_rounded_saturated_or_wrapped_into_their_key() {
    for (toml, key, needle) in [
        // A float for an integer key used to be rounded, and 1e20 saturated to u64::MAX.
        (
            "[policy.default]\nmin_interactions = 1e20\n",
            "policy.default.min_interactions",
            "an integer from 0 to 18446744073709551615, got 1e20",
        ),
        (
            "[policy.default]\nmin_interactions = 20.5\n",
            "policy.default.min_interactions",
            "got 20.5",
        ),
        (
            "[genesys]\nclient_id = \"x\"\nrate_limit_per_minute = 4294967297\n",
            "genesys.rate_limit_per_minute",
            "an integer from 0 to 4294967295, got 4294967297",
        ),
        (
            "[alerts.workitem]\ndue_in_days = -1\n",
            "alerts.workitem.due_in_days",
            "got -1",
        ),
        // A boolean is not a number, and a number is not a string or a boolean.
        (
            "[metrics]\nlookback_days = true\n",
            "metrics.lookback_days",
            "an integer",
        ),
        (
            "[daemon]\nrun_on_start = 1\n",
            "daemon.run_on_start",
            "true or false, got 1",
        ),
        (
            "[alerts.workitem]\nqueue_id = 42\n",
            "alerts.workitem.queue_id",
            "a string (in quotes), got 42",
        ),
    ] {
        let text = if toml.starts_with("[genesys]") {
            toml.to_string()
        } else {
            format!("{VALID}{toml}")
        };
        assert_refused(&text, key, &[needle]);
    }
    // A TOML integer beyond i64 is not even TOML: refused before typing, naming the line.
    let err = Settings::from_toml_str(&format!(
        "{VALID}[policy.default]\nmin_interactions = 99999999999999999999\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("line 4") && err.contains("min_interactions = 99999999999999999999"),
        "{err}"
    );
}

#[test]
fn a_skill_group_guard_is_named_with_its_choices_and_hold_needs_workitems() {
    assert_refused(
        &format!("{VALID}[guard]\nskill_group_crossings = \"maybe\"\n"),
        "guard.skill_group_crossings",
        &["maybe", "warn", "hold", "block"],
    );
    assert_refused(
        &format!("{VALID}[guard]\nskill_group_match = \"ceil\"\n"),
        "guard.skill_group_match",
        &["ceil", "exact", "floor", "round"],
    );
    assert_refused(
        &format!("{VALID}[guard]\nskill_group_crossings = \"hold\"\n[alerts.workitem]\nenabled = false\n"),
        "guard.skill_group_crossings",
        &["alerts.workitem.enabled"],
    );
}
