//! Security: the client secret and the bearer tokens never leave the process.
//!
//! A full `once` runs through the real binary with `RUST_LOG=trace` and JSON logs, against a
//! simulator that accepts only a recognisable canary secret; then `plan`, `check-config`,
//! `history`, `show`, `diff` and `export` run on the same ledger. Every byte they print, the
//! SQLite ledger (with its -wal and -shm files), and what the supervisors received
//! (workitems, webhook digests) are searched for the secret, its Basic-auth encoding and
//! every token the simulator issued. Secret files readable by others warn (or, strict,
//! refuse), and there is no way to pass the secret on the command line.

use crate::common;

use base64::Engine as _;
use common::binary::{binary_with_secret, output as run};
use common::capture::Capture;
use common::TempDir;
use skill_tuner::config::{secret, GenesysSettings, LogFormat, Settings};
use skill_tuner::demo::settings_for;
use skill_tuner::genesys::{ClientConfig, Credentials, Endpoints};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn canary() -> String {
    format!("S3CR3T-canary-{}-7f3a9c", std::process::id())
}

/// The real binary with `secret` in its environment, trace logging and no stdin.
fn binary(args: &[&str], config: &Path, secret: &str) -> Command {
    let mut cmd = binary_with_secret(args, config, secret, "trace");
    cmd.stdin(Stdio::null());
    cmd
}

/// Fails naming the place and the first needle found there.
fn assert_clean(place: &str, haystack: &[u8], needles: &[String]) {
    let text = String::from_utf8_lossy(haystack);
    for needle in needles {
        assert!(
            !text.contains(needle.as_str()),
            "{place} contains a secret or token ({} chars starting {:?})",
            needle.len(),
            &needle[..6.min(needle.len())]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_output_database_or_alert_ever_holds_the_secret_or_a_token() {
    let secret = canary();
    let sim = common::sim::start_sim(30, |c| {
        c.seed = 5;
        c.client_secret = secret.clone();
    })
    .await;
    let dir = TempDir::new("grep");
    let ledger = dir.path().join("ledger.db");
    let mut settings = settings_for(&sim, 60_000);
    settings.breaker.max_changed_share = 1.0;
    settings.breaker.min_data_share = 0.0;
    settings.breaker.max_demotion_share = 1.0;
    settings.log.format = LogFormat::Json;
    settings.log.level = "trace".into();
    settings.history.path = ledger.clone();
    let config = dir.path().join("skill-tuner.toml");
    std::fs::write(&config, settings.to_toml()).unwrap();

    let mut outputs: Vec<(String, Output)> = Vec::new();
    let once = run(binary(&["once", "--json"], &config, &secret)).await;
    assert!(
        once.status.success(),
        "{}",
        String::from_utf8_lossy(&once.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&once.stdout).unwrap();
    let run_id = report["run_id"].as_i64().unwrap().to_string();
    assert!(report["agents_changed"].as_u64().unwrap() > 0, "{report}");
    // Trace logging was really on (JSON lines from the HTTP stack and from us).
    let stderr = String::from_utf8_lossy(&once.stderr);
    assert!(stderr.contains("\"level\":\"TRACE\""), "no trace output");
    assert!(stderr.contains("\"level\":\"INFO\""), "no JSON logs");
    outputs.push(("once".into(), once));
    for args in [
        vec!["plan", "--json"],
        vec!["check-config"],
        vec!["history"],
        vec!["history", "--json"],
        vec!["show", run_id.as_str()],
        vec!["show", run_id.as_str(), "--json"],
        vec!["diff", run_id.as_str(), "--json"],
        vec!["export", "--format", "csv"],
        vec!["export", "--format", "json"],
    ] {
        let out = run(binary(&args, &config, &secret)).await;
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push((args.join(" "), out));
    }
    // A login refused (a wrong secret, also recognisable) must not echo what was sent.
    let wrong = format!("{secret}-WRONG");
    let refused = run(binary(&["once"], &config, &wrong)).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("login failed"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    outputs.push(("once with a wrong secret".into(), refused));

    let tokens = sim.issued_tokens();
    assert!(tokens.len() >= 3, "each command that logs in gets a token");
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{secret}", settings.genesys.client_id));
    let mut needles = vec![secret.clone(), wrong.clone(), basic];
    needles.extend(tokens);
    for (name, out) in &outputs {
        assert_clean(&format!("stdout of `{name}`"), &out.stdout, &needles);
        assert_clean(&format!("stderr of `{name}`"), &out.stderr, &needles);
    }
    // Headers are never logged even at trace: no Authorization value of any kind.
    for (name, out) in &outputs {
        let err = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
        assert!(!err.contains("bearer "), "`{name}` logged a bearer header");
        assert!(!err.contains("basic "), "`{name}` logged a basic header");
    }
    let mut db_files = 0;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let path = PathBuf::from(format!("{}{suffix}", ledger.display()));
        if let Ok(bytes) = std::fs::read(&path) {
            db_files += 1;
            assert_clean(&path.display().to_string(), &bytes, &needles);
        }
    }
    assert!(db_files >= 1, "no ledger file written");
    for dir_entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = dir_entry.unwrap().path();
        if path.is_file() {
            assert_clean(
                &path.display().to_string(),
                &std::fs::read(&path).unwrap(),
                &needles,
            );
        }
    }
    let org = sim.org();
    let alerts = serde_json::to_string(&(org.workitems(), org.webhook_posts())).unwrap();
    assert!(alerts.len() > 10);
    assert_clean("workitems and webhook digests", alerts.as_bytes(), &needles);
    sim.shutdown().await;
}

#[test]
fn debug_of_settings_and_client_config_never_shows_the_secret() {
    let secret = canary();
    let settings = Settings::default();
    let endpoints = Endpoints::resolve("eu-west-1", None, None, false).unwrap();
    let config = ClientConfig::new(
        endpoints,
        Credentials {
            client_id: "id".into(),
            client_secret: secret.clone().into(),
        },
    );
    for text in [
        format!("{settings:?}"),
        format!("{settings:#?}"),
        settings.to_toml(),
        format!("{config:?}"),
        format!("{config:#?}"),
    ] {
        assert!(!text.contains(&secret), "{text}");
    }
    assert!(format!("{config:?}").contains("[REDACTED]"));
    // Only https to the region's hosts: TLS with certificate checks is the default path.
    assert_eq!(config.endpoints.api_base.scheme(), "https");
    assert_eq!(config.endpoints.login_base.scheme(), "https");
}

#[test]
fn a_secret_file_readable_by_others_warns_or_with_strict_permissions_is_refused() {
    let dir = TempDir::new("perm");
    let path = dir.path().join("client_secret");
    std::fs::write(&path, format!("{}\n", canary())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();

    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    let loaded =
        tracing::subscriber::with_default(subscriber, || secret::read_secret_file(&path, false));
    assert!(loaded.is_ok());
    let logged = capture.text();
    assert!(logged.contains("WARN"), "{logged}");
    assert!(logged.contains("chmod 600"), "{logged}");
    assert!(logged.contains("644"), "{logged}");
    assert!(!logged.contains(&canary()), "{logged}");

    // Strict: refused, naming the file and the fix, never the content.
    let g = GenesysSettings {
        client_secret_file: Some(path.clone()),
        strict_file_permissions: true,
        ..GenesysSettings::default()
    };
    let err = secret::load_client_secret(&g).unwrap_err().to_string();
    assert!(
        err.contains("chmod 600") && err.contains("client_secret"),
        "{err}"
    );
    assert!(!err.contains(&canary()));

    // 0600 is quiet and accepted, strict or not.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .finish();
    let (loaded, source) =
        tracing::subscriber::with_default(subscriber, || secret::load_client_secret(&g).unwrap());
    use secrecy::ExposeSecret;
    assert_eq!(loaded.expose_secret(), canary());
    assert_eq!(source, secret::SecretSource::File(path.clone()));
    assert!(capture.bytes().is_empty());
}

#[test]
fn check_config_warns_about_a_world_readable_secret_file_and_strict_refuses_it() {
    let dir = TempDir::new("check");
    let secret_path = dir.path().join("client_secret");
    std::fs::write(&secret_path, canary()).unwrap();
    std::fs::set_permissions(&secret_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut settings = Settings::default();
    settings.genesys.client_id = "id".into();
    settings.genesys.client_secret_file = Some(secret_path.clone());
    let config = dir.path().join("skill-tuner.toml");
    std::fs::write(&config, settings.to_toml()).unwrap();
    let mut cmd = binary(&["check-config"], &config, "");
    cmd.env_remove("SKILL_TUNER_CLIENT_SECRET")
        .env("RUST_LOG", "warn");
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(stdout.contains("value not shown"), "{stdout}");
    assert!(!stdout.contains(&canary()) && !stderr.contains(&canary()));

    settings.genesys.strict_file_permissions = true;
    std::fs::write(&config, settings.to_toml()).unwrap();
    // Strict also refuses a config readable by others: keep this one private, so the
    // refusal below is about the secret file.
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = binary(&["check-config"], &config, "");
    cmd.env_remove("SKILL_TUNER_CLIENT_SECRET")
        .env("RUST_LOG", "warn");
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("{stdout}{stderr}");
    assert!(all.contains("chmod 600"), "{all}");
    assert!(!all.contains(&canary()));
}

#[test]
fn the_secret_cannot_be_given_on_the_command_line() {
    let secret = canary();
    for args in [
        vec!["once", "--client-secret", secret.as_str()],
        vec!["once", format!("--client-secret={secret}").leak()],
        vec!["check-config", "--secret", secret.as_str()],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_skill-tuner"))
            .args(&args)
            .env_remove("SKILL_TUNER_CLIENT_SECRET")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("unexpected argument"), "{stderr}");
        // The refusal does not echo the value either.
        assert!(!stderr.contains(&secret), "{stderr}");
    }
    // And nothing in the help offers it.
    let help = Command::new(env!("CARGO_BIN_EXE_skill-tuner"))
        .args(["once", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).to_ascii_lowercase();
    assert!(!help.contains("secret"), "{help}");
}

/// TLS is rustls with the platform's certificate checks: nothing in the code turns them off
/// (a guard against a "temporary" `danger_accept_invalid_certs` slipping in).
#[test]
fn certificate_checks_are_never_turned_off() {
    fn walk(dir: &Path, hits: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, hits);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for needle in [
                    "danger_accept_invalid",
                    "tls_danger",
                    "accept_invalid_hostnames",
                ] {
                    if text.contains(needle) {
                        hits.push(format!("{}: {needle}", path.display()));
                    }
                }
            }
        }
    }
    let mut hits = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut hits,
    );
    assert!(hits.is_empty(), "{hits:?}");
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    assert!(!manifest.contains("native-tls") && !manifest.contains("openssl"));
}

/// A Slack incoming-webhook URL is its own credential: `check-config` shows its scheme and
/// host, never the path.
#[test]
fn check_config_shows_the_webhook_by_host_only() {
    let dir = TempDir::new("webhook");
    let mut settings = Settings::default();
    settings.genesys.client_id = "id".into();
    settings.alerts.webhook.enabled = true;
    settings.alerts.webhook.url = "https://hooks.slack.com/services/T000/B000/XXXXSECRET".into();
    let config = dir.path().join("skill-tuner.toml");
    std::fs::write(&config, settings.to_toml()).unwrap();
    let out = binary(&["check-config"], &config, &canary())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stdout.contains("XXXXSECRET") && !stderr.contains("XXXXSECRET"),
        "{stdout}{stderr}"
    );
    assert!(stdout.contains("https://hooks.slack.com/…"), "{stdout}");
}

/// A `user:password@` in a configured login URL is a credential: it is in no error, log line,
/// `Debug` output or `check-config`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_a_base_url_never_reaches_an_error_or_log() {
    let dir = TempDir::new("userinfo");
    let mut settings = Settings::default();
    settings.genesys.client_id = "id".into();
    settings.genesys.login_base_url = Some("http://user:PASSWORD@127.0.0.1:1/".into());
    settings.genesys.api_base_url = Some("http://user:PASSWORD@127.0.0.1:1/".into());
    settings.genesys.retry.max_elapsed_secs = 1;
    settings.history.path = dir.path().join("ledger.db");
    let config = dir.path().join("skill-tuner.toml");
    std::fs::write(&config, settings.to_toml()).unwrap();

    let client = skill_tuner::runtime::client_with_secret(
        &settings,
        canary().into(),
        &skill_tuner::clock::Clock::system(),
    )
    .unwrap();
    let err = client.login().await.unwrap_err().to_string();
    assert!(
        err.contains("cannot reach http://***@127.0.0.1:1/"),
        "{err}"
    );
    assert!(!err.contains("PASSWORD"), "{err}");
    let debug = format!("{client:?}");
    assert!(!debug.contains("PASSWORD"), "{debug}");

    for args in [vec!["once"], vec!["check-config"]] {
        let out = run(binary(&args, &config, &canary())).await;
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("PASSWORD"), "{args:?}: {all}");
        if args[0] == "once" {
            assert!(!out.status.success());
            assert!(all.contains("127.0.0.1:1"), "{all}");
        }
    }
}
