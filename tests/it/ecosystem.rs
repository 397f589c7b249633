//! skill-tuner among the tools around it: Genesys' own conventions (the `GENESYSCLOUD_*`
//! variables, every region spelling), corporate networks (an explicit proxy with
//! credentials from a file, the proxy environment with loopback exempt, an extra CA bundle)
//! and the command line people expect (completions, a man page, help on every argument).
//!
//! Loopback only: the simulator, a minimal forward proxy and a TLS endpoint, all started here.

use crate::common;

use common::binary::{config_file, output};
use common::sim::{relaxed, start_sim, TEST_NOW};
use common::{TempDir, BIN};
use skill_tuner::config::Settings;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PROXY_VARS: [&str; 9] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "REQUEST_METHOD",
];

/// The binary with `args` in an environment holding nothing that could steer it (no
/// `SKILL_TUNER*`, `GENESYSCLOUD_*` or proxy variables, no credentials directory) but
/// `env`, at the tests' instant.
fn skill_tuner(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("SKILL_TUNER") || key.starts_with("GENESYSCLOUD_") {
            cmd.env_remove(key);
        }
    }
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    cmd.env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("STATE_DIRECTORY")
        .env("RUST_LOG", "warn")
        .env(skill_tuner::clock::NOW_ENV, TEST_NOW)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `text` as a config file in `dir`.
fn write_config(dir: &TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("skill-tuner.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A private (0600) file holding `text`.
fn private_file(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path.to_path_buf()
}

fn check_config(config: &Path, env: &[(&str, &str)]) -> Output {
    let path = config.to_str().unwrap();
    run(&mut skill_tuner(&["check-config", "--config", path], env))
}

/// The `# key = "value" from ORIGIN` line `check-config` prints for `key`.
fn source_line(out: &str, key: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(&format!("# {key} = ")))
        .unwrap_or_else(|| panic!("no source line for {key} in:\n{out}"))
        .to_string()
}

fn sim_secret() -> String {
    genesys_sim::SimConfig::default().client_secret
}

fn sim_client_id() -> String {
    genesys_sim::SimConfig::default().client_id
}

// ---------------------------------------------------------------------------------------
// 1. Genesys conventions
// ---------------------------------------------------------------------------------------

#[test]
fn the_genesyscloud_variables_supply_client_id_secret_and_region() {
    let dir = TempDir::new("gc-vars");
    let config = write_config(&dir, "[metrics]\nlookback_days = 7\n");
    let secret = "gc-secret-value-never-shown";
    let out = check_config(
        &config,
        &[
            ("GENESYSCLOUD_OAUTHCLIENT_ID", "terraform-client"),
            ("GENESYSCLOUD_OAUTHCLIENT_SECRET", secret),
            ("GENESYSCLOUD_REGION", "eu-west-1"),
        ],
    );
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{err}");
    let s: Settings = toml::from_str(&text).unwrap();
    assert_eq!(s.genesys.client_id, "terraform-client");
    assert_eq!(s.genesys.region, "eu-west-1");
    assert!(
        source_line(&text, "genesys.client_id")
            .ends_with("from the environment variable GENESYSCLOUD_OAUTHCLIENT_ID (the convention of Genesys' CLI and Terraform provider)"),
        "{text}"
    );
    assert!(
        source_line(&text, "genesys.region").contains("GENESYSCLOUD_REGION"),
        "{text}"
    );
    assert!(
        text.contains(
            "# login at https://login.mypurecloud.ie/, API at https://api.mypurecloud.ie/"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "# client secret: found in environment variable GENESYSCLOUD_OAUTHCLIENT_SECRET (value not shown)"
        ),
        "{text}"
    );
    assert!(!text.contains(secret) && !err.contains(secret));
}

#[test]
fn only_the_genesyscloud_client_id_no_longer_asks_for_genesys_client_id() {
    let dir = TempDir::new("gc-id-only");
    let config = write_config(&dir, "");
    let out = check_config(
        &config,
        &[
            ("GENESYSCLOUD_OAUTHCLIENT_ID", "terraform-client"),
            ("SKILL_TUNER_CLIENT_SECRET", "s"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("genesys.client_id"));
    // Nothing at all: the problem names the key and the variable.
    let out = check_config(&config, &[("SKILL_TUNER_CLIENT_SECRET", "s")]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("`genesys.client_id`") && err.contains("GENESYSCLOUD_OAUTHCLIENT_ID"),
        "{err}"
    );
    // No secret anywhere: the message names every place, the Genesys variable among them.
    let out = check_config(&config, &[("GENESYSCLOUD_OAUTHCLIENT_ID", "c")]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("SKILL_TUNER_CLIENT_SECRET")
            && err.contains("GENESYSCLOUD_OAUTHCLIENT_SECRET"),
        "{err}"
    );
}

#[test]
fn precedence_is_override_then_file_then_genesyscloud_then_default() {
    let dir = TempDir::new("gc-precedence");
    let with_keys = write_config(
        &dir,
        "[genesys]\nclient_id = \"from-file\"\nregion = \"eu-central-1\"\n",
    );
    let gc = [
        ("GENESYSCLOUD_OAUTHCLIENT_ID", "from-gc"),
        ("GENESYSCLOUD_REGION", "eu-west-1"),
        ("SKILL_TUNER_CLIENT_SECRET", "s"),
    ];

    // The file beats GENESYSCLOUD_*.
    let out = check_config(&with_keys, &gc);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s: Settings = toml::from_str(&text).unwrap();
    assert_eq!(
        (s.genesys.client_id.as_str(), s.genesys.region.as_str()),
        ("from-file", "eu-central-1")
    );
    assert!(
        source_line(&text, "genesys.region")
            .ends_with(&format!("from the config file {}", with_keys.display())),
        "{text}"
    );

    // SKILL_TUNER__GENESYS__* beats the file.
    let mut env = gc.to_vec();
    env.push(("SKILL_TUNER__GENESYS__REGION", "ap-southeast-2"));
    env.push(("SKILL_TUNER__GENESYS__CLIENT_ID", "from-override"));
    let out = check_config(&with_keys, &env);
    let text = stdout(&out);
    let s: Settings = toml::from_str(&text).unwrap();
    assert_eq!(
        (s.genesys.client_id.as_str(), s.genesys.region.as_str()),
        ("from-override", "ap-southeast-2")
    );
    assert!(
        source_line(&text, "genesys.region")
            .ends_with("from the environment variable SKILL_TUNER__GENESYS__REGION"),
        "{text}"
    );

    // Nothing sets the region: the default.
    let bare = dir.path().join("bare.toml");
    std::fs::write(&bare, "[genesys]\nclient_id = \"x\"\n").unwrap();
    let out = check_config(&bare, &[("SKILL_TUNER_CLIENT_SECRET", "s")]);
    let text = stdout(&out);
    let s: Settings = toml::from_str(&text).unwrap();
    assert_eq!(s.genesys.region, "us-east-1");
    assert!(
        source_line(&text, "genesys.region").ends_with("from the default"),
        "{text}"
    );
}

#[test]
fn skill_tuner_secret_places_come_before_genesyscloud_oauthclient_secret() {
    let dir = TempDir::new("gc-secret-order");
    let config = write_config(&dir, "[genesys]\nclient_id = \"c\"\n");
    let both = [
        ("SKILL_TUNER_CLIENT_SECRET", "ours"),
        ("GENESYSCLOUD_OAUTHCLIENT_SECRET", "theirs"),
    ];
    let out = check_config(&config, &both);
    assert!(
        stdout(&out)
            .contains("# client secret: found in environment variable SKILL_TUNER_CLIENT_SECRET"),
        "{}",
        stdout(&out)
    );
    let file = private_file(&dir.path().join("secret"), "from-file\n");
    let with_file = dir.path().join("with-file.toml");
    std::fs::write(
        &with_file,
        format!(
            "[genesys]\nclient_id = \"c\"\nclient_secret_file = {:?}\n",
            file.display().to_string()
        ),
    )
    .unwrap();
    let out = check_config(&with_file, &both);
    assert!(
        stdout(&out).contains(&format!(
            "# client secret: found in file {}",
            file.display()
        )),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_genesyscloud_secret_meant_for_another_client_is_warned_about() {
    let dir = TempDir::new("gc-pair");
    let config = write_config(&dir, "[genesys]\nclient_id = \"tuner-client\"\n");
    let out = check_config(
        &config,
        &[
            ("GENESYSCLOUD_OAUTHCLIENT_ID", "terraform-client"),
            ("GENESYSCLOUD_OAUTHCLIENT_SECRET", "terraform-secret"),
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning:")
            && err.contains("terraform-client")
            && err.contains("tuner-client"),
        "{err}"
    );
    assert!(!err.contains("terraform-secret"), "{err}");
}

#[test]
fn every_region_spelling_of_genesys_tools_is_accepted() {
    for (spelling, domain) in [
        ("eu-west-1", "mypurecloud.ie"), // AWS name (Terraform, GENESYSCLOUD_REGION)
        ("EU-WEST-1", "mypurecloud.ie"), // any case
        ("eu_central_2", "euc2.pure.cloud"), // SDK constant
        ("US_EAST_1", "mypurecloud.com"), // SDK constant, upper case
        ("mypurecloud.com.au", "mypurecloud.com.au"), // domain (gc CLI environment)
        ("MyPureCloud.JP", "mypurecloud.jp"), // domain, any case
    ] {
        let s = Settings::from_toml_str(&format!(
            "[genesys]\nclient_id = \"c\"\nregion = \"{spelling}\"\n"
        ))
        .unwrap_or_else(|e| panic!("{spelling}: {e}"));
        let e =
            skill_tuner::genesys::Endpoints::resolve(&s.genesys.region, None, None, false).unwrap();
        assert_eq!(
            e.api_base.host_str(),
            Some(format!("api.{domain}").as_str()),
            "{spelling}"
        );
    }
    let err = Settings::from_toml_str("[genesys]\nclient_id = \"c\"\nregion = \"eu_moon_1\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`genesys.region`") && err.contains("eu_west_1"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_with_only_the_genesyscloud_variables_logs_in() {
    let sim = start_sim(30, |_| {}).await;
    let dir = TempDir::new("gc-cycle");
    let mut s = relaxed(&sim);
    s.genesys.client_id = String::new();
    let config = config_file(dir.path(), &s, &dir.path().join("ledger.db"));
    // `to_toml` wrote `client_id = ""`, which would win over the variable: drop the key.
    let text = std::fs::read_to_string(&config).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("client_id"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&config, text).unwrap();
    let out = output(skill_tuner(
        &["plan", "--json", "--config", config.to_str().unwrap()],
        &[
            ("GENESYSCLOUD_OAUTHCLIENT_ID", &sim_client_id()),
            ("GENESYSCLOUD_OAUTHCLIENT_SECRET", &sim_secret()),
        ],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["api_calls_total"].as_u64().unwrap() > 0, "{report}");
}

// ---------------------------------------------------------------------------------------
// 2. Corporate networks
// ---------------------------------------------------------------------------------------

/// One request the test proxy forwarded.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// The absolute-form target, `http://host:port/path?query`.
    target: String,
    proxy_authorization: Option<String>,
}

impl Seen {
    fn host(&self) -> &str {
        let rest = self.target.trim_start_matches("http://");
        rest.split(['/', ':']).next().unwrap_or_default()
    }

    fn path(&self) -> &str {
        let rest = self.target.trim_start_matches("http://");
        rest.find('/').map_or("/", |i| &rest[i..])
    }
}

/// A minimal HTTP forward proxy on loopback: absolute-form requests for plain-http targets,
/// each sent to 127.0.0.1 at the target's port (whatever its host name), one request per
/// connection. It records every request; `CONNECT` is refused.
struct TestProxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestProxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = forward(conn, log).await;
                });
            }
        });
        Self { addr, seen, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn forward(mut client: TcpStream, log: Arc<Mutex<Vec<Seen>>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let target = request_line.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    let mut length = 0usize;
    let mut proxy_authorization = None;
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        match name.to_ascii_lowercase().as_str() {
            "content-length" => {
                length = value.parse().unwrap_or(0);
                headers.push(format!("{name}: {value}\r\n"));
            }
            "proxy-authorization" => proxy_authorization = Some(value.to_string()),
            "connection" | "proxy-connection" | "keep-alive" => {}
            _ => headers.push(format!("{name}: {value}\r\n")),
        }
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    log.lock().unwrap().push(Seen {
        method: method.clone(),
        target: target.clone(),
        proxy_authorization,
    });
    let Some(rest) = target.strip_prefix("http://") else {
        client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return Ok(());
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let port: u16 = authority
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(80);
    let mut upstream = TcpStream::connect(("127.0.0.1", port)).await?;
    let path = if path.is_empty() { "/" } else { path };
    let mut request = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    for h in &headers {
        request.extend_from_slice(h.as_bytes());
    }
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    request.extend_from_slice(&body);
    upstream.write_all(&request).await?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer).await?;
    client.write_all(&answer).await?;
    client.shutdown().await
}

/// `Basic base64(user:password)`.
fn basic(credentials: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_cycle_goes_through_genesys_proxy_with_its_credentials() {
    let sim = start_sim(40, |_| {}).await;
    let proxy = TestProxy::start().await;
    let dir = TempDir::new("proxy-explicit");
    let credentials = "tuner:pr0xy-pa55:word";
    let file = private_file(
        &dir.path().join("proxy-credentials"),
        &format!("{credentials}\n"),
    );
    let mut s = relaxed(&sim);
    s.alerts.webhook.enabled = true;
    s.alerts.webhook.url = format!("{}/_sim/webhook", sim.base_url());
    s.genesys.proxy = Some(proxy.url());
    s.genesys.proxy_credentials_file = Some(file.clone());
    let config = config_file(dir.path(), &s, &dir.path().join("ledger.db"));

    let shown = check_config(&config, &[("SKILL_TUNER_CLIENT_SECRET", &sim_secret())]);
    let text = stdout(&shown);
    assert_eq!(shown.status.code(), Some(0), "{}", stderr(&shown));
    assert!(
        text.contains(&format!(
            "# proxy: {}/ (genesys.proxy) for every request, as user `tuner` (password from file {}, not shown)",
            proxy.url(),
            file.display()
        )),
        "{text}"
    );
    assert!(!text.contains("pa55"), "{text}");

    // At `trace`, where every HTTP library logs what it does.
    let out = output(skill_tuner(
        &["once", "--json", "--config", config.to_str().unwrap()],
        &[
            ("SKILL_TUNER_CLIENT_SECRET", &sim_secret()),
            ("RUST_LOG", "trace"),
        ],
    ))
    .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let encoded = basic(credentials);
    let encoded = encoded.trim_start_matches("Basic ");
    for shown in [stdout(&out), err.clone()] {
        assert!(
            !shown.contains("pa55") && !shown.contains(encoded),
            "the proxy password was printed"
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let seen = proxy.seen();
    let count = |pred: &dyn Fn(&Seen) -> bool| seen.iter().filter(|r| pred(r)).count() as u64;
    // The cycle's calls (the report counts them from the cycle's start), the org-limits read
    // before it, at least one token request, and the webhook digest: all through the proxy.
    let cycle_calls = report["api_calls_total"].as_u64().unwrap();
    assert!(cycle_calls > 0, "{report}");
    let limits = count(&|r| r.path().starts_with("/api/v2/organizations/limits/"));
    assert_eq!(limits, 1, "{seen:#?}");
    assert_eq!(
        count(&|r| r.path().starts_with("/api/")),
        cycle_calls + limits,
        "the proxy missed API calls"
    );
    assert!(count(&|r| r.method == "POST" && r.path() == "/oauth/token") >= 1);
    assert_eq!(count(&|r| r.path() == "/_sim/webhook"), 1);
    assert_eq!(sim.org().webhook_posts().len(), 1);
    assert_eq!(report["alerts"]["webhook"], "ok", "{report}");
    // Every request carried the credentials from the file.
    let expected = basic(credentials);
    for r in &seen {
        assert_eq!(
            r.proxy_authorization.as_deref(),
            Some(expected.as_str()),
            "{r:?}"
        );
    }

    // `genesys.no_proxy` sends the listed hosts around the proxy.
    let before = proxy.seen().len();
    let mut direct = s.clone();
    direct.genesys.no_proxy = vec!["127.0.0.1".into()];
    let sub = dir.path().join("direct");
    std::fs::create_dir_all(&sub).unwrap();
    let config = config_file(&sub, &direct, &dir.path().join("ledger.db"));
    let out = output(skill_tuner(
        &["plan", "--config", config.to_str().unwrap()],
        &[("SKILL_TUNER_CLIENT_SECRET", &sim_secret())],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        proxy.seen().len(),
        before,
        "no_proxy hosts went through the proxy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_bypasses_the_proxy_environment() {
    let sim = start_sim(30, |_| {}).await;
    let proxy = TestProxy::start().await;
    let dir = TempDir::new("proxy-env-loopback");
    let mut s = relaxed(&sim);
    s.alerts.webhook.enabled = true;
    s.alerts.webhook.url = format!("{}/_sim/webhook", sim.base_url());
    let config = config_file(dir.path(), &s, &dir.path().join("ledger.db"));
    let url = proxy.url();
    let env = [
        ("SKILL_TUNER_CLIENT_SECRET", sim_secret()),
        ("HTTP_PROXY", url.clone()),
        ("HTTPS_PROXY", url.clone()),
        ("ALL_PROXY", url.clone()),
        ("http_proxy", url.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = output(skill_tuner(
        &["once", "--json", "--config", config.to_str().unwrap()],
        &env,
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        proxy.seen().is_empty(),
        "loopback went through the proxy: {:#?}",
        proxy.seen()
    );
    assert_eq!(sim.org().webhook_posts().len(), 1);

    let shown = check_config(&config, &env);
    let text = stdout(&shown);
    assert!(
        text.contains(&format!(
            "# proxy for http destinations: {url} (from HTTP_PROXY)"
        )) && text.contains("# direct: loopback (127.0.0.0/8, ::1, localhost)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_environment_still_carries_every_other_host() {
    let sim = start_sim(30, |_| {}).await;
    let proxy = TestProxy::start().await;
    let dir = TempDir::new("proxy-env-remote");
    let mut s = relaxed(&sim);
    // A host that resolves nowhere: only the proxy (which sends it to loopback) reaches it.
    let port = sim.base_url().rsplit(':').next().unwrap().to_string();
    let remote = format!("http://genesys.invalid:{port}");
    s.genesys.api_base_url = Some(remote.clone());
    s.genesys.login_base_url = Some(remote);
    s.genesys.allow_insecure_http = true;
    let config = config_file(dir.path(), &s, &dir.path().join("ledger.db"));
    let out = output(skill_tuner(
        &["plan", "--json", "--config", config.to_str().unwrap()],
        &[
            ("SKILL_TUNER_CLIENT_SECRET", &sim_secret()),
            ("HTTP_PROXY", &proxy.url()),
        ],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let seen = proxy.seen();
    assert!(
        seen.iter().all(|r| r.host() == "genesys.invalid"),
        "{seen:#?}"
    );
    assert!(seen.iter().all(|r| r.proxy_authorization.is_none()));
    let api = seen
        .iter()
        .filter(|r| r.path().starts_with("/api/"))
        .count() as u64;
    assert_eq!(api, report["api_calls_total"].as_u64().unwrap() + 1);
}

#[test]
fn proxy_settings_that_would_leak_or_mislead_are_refused_naming_their_key() {
    let refused = |text: &str| -> String {
        Settings::from_toml_str(&format!("[genesys]\nclient_id = \"c\"\n{text}"))
            .unwrap_err()
            .to_string()
    };
    let err = refused("proxy = \"http://tuner:S3CRETPW@proxy.corp:3128\"\n");
    assert!(
        err.contains("`genesys.proxy`")
            && err.contains("genesys.proxy_credentials_file")
            && !err.contains("S3CRETPW"),
        "{err}"
    );
    let err = refused("proxy = \"socks5://proxy.corp:1080\"\n");
    assert!(
        err.contains("`genesys.proxy`") && err.contains("socks5"),
        "{err}"
    );
    let err = refused("proxy_credentials_file = \"/etc/skill-tuner/proxy\"\n");
    assert!(err.contains("`genesys.proxy_credentials_file`"), "{err}");
    let err = refused("proxy = \"http://p:1\"\nno_proxy = [\"a.corp, b.corp\"]\n");
    assert!(err.contains("`genesys.no_proxy`"), "{err}");
    // A good one passes.
    Settings::from_toml_str(
        "[genesys]\nclient_id = \"c\"\nproxy = \"http://proxy.corp:3128\"\nno_proxy = [\"intranet.corp\", \"10.0.0.0/8\"]\n",
    )
    .unwrap();
}

#[test]
fn unusable_proxy_credentials_are_refused_without_showing_them() {
    let dir = TempDir::new("proxy-creds-bad");
    let file = private_file(&dir.path().join("creds"), "no-colon-XYZZY\n");
    let config = write_config(
        &dir,
        &format!(
            "[genesys]\nclient_id = \"c\"\nproxy = \"http://proxy.corp:3128\"\nproxy_credentials_file = {:?}\n",
            file.display().to_string()
        ),
    );
    let out = check_config(&config, &[("SKILL_TUNER_CLIENT_SECRET", "s")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("genesys.proxy_credentials_file") && err.contains("user:password"),
        "{err}"
    );
    assert!(!err.contains("XYZZY") && !stdout(&out).contains("XYZZY"));
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn a_ca_bundle_is_loaded_and_a_bad_one_is_refused_naming_the_key() {
    let dir = TempDir::new("ca-bundle");
    let with = |path: &Path| {
        write_config(
            &dir,
            &format!(
                "[genesys]\nclient_id = \"c\"\nca_bundle_file = {:?}\n",
                path.display().to_string()
            ),
        )
    };
    let env = [("SKILL_TUNER_CLIENT_SECRET", "s")];
    let ca = fixture("test-ca.pem");
    let out = check_config(&with(&ca), &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "# trusted: the OS trust store and 1 CA certificate(s) from {} (genesys.ca_bundle_file)",
            ca.display()
        )),
        "{}",
        stdout(&out)
    );

    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for bad in [not_pem, broken, dir.path().join("missing.pem")] {
        let out = check_config(&with(&bad), &env);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", bad.display());
        assert!(
            err.contains("`genesys.ca_bundle_file`") && err.contains(&bad.display().to_string()),
            "{err}"
        );
    }
}

/// A TLS endpoint on loopback with the fixture's certificate (signed by the fixture CA),
/// answering every request with a token.
async fn tls_token_endpoint() -> (u16, tokio::task::JoinHandle<()>) {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(fixture("localhost.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(fixture("localhost-key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(conn).await else {
                    return;
                };
                // The whole request, body included: closing with unread bytes would reset
                // the connection under the answer.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    if let Some(end) = find(&buf, b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            break;
                        }
                    }
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body =
                    r#"{"access_token":"tls-token","token_type":"bearer","expires_in":86400}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_bundle_is_trusted_beside_the_os_store() {
    let (port, task) = tls_token_endpoint().await;
    let base = format!("https://localhost:{port}");
    let mut s = Settings::from_toml_str(&format!(
        "[genesys]\nclient_id = \"c\"\napi_base_url = \"{base}\"\nlogin_base_url = \"{base}\"\n"
    ))
    .unwrap();
    let clock = skill_tuner::clock::Clock::system();
    let secret = || secrecy::SecretString::from("s".to_string());

    // Without the bundle the test CA is unknown: the login fails on the certificate.
    let client = skill_tuner::runtime::client_with_secret(&s, secret(), &clock).unwrap();
    let err = client.login().await.unwrap_err().to_string();
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("tls"),
        "{err}"
    );

    // With it, the same endpoint is trusted.
    s.genesys.ca_bundle_file = Some(fixture("test-ca.pem"));
    let client = skill_tuner::runtime::client_with_secret(&s, secret(), &clock).unwrap();
    client.login().await.unwrap();
    assert!(client.has_token());
    task.abort();
}

// ---------------------------------------------------------------------------------------
// 3. The command line people expect
// ---------------------------------------------------------------------------------------

#[test]
fn completions_for_every_shell_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = run(&mut skill_tuner(&["completions", shell], &[]));
        let script = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        assert!(!script.trim().is_empty(), "{shell}: empty");
        for sub in ["check-config", "rollback", "export"] {
            assert!(script.contains(sub), "{shell}: no {sub}");
        }
    }
    let out = run(&mut skill_tuner(&["completions", "tcsh"], &[]));
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn the_man_page_is_roff_with_the_exit_codes() {
    let out = run(&mut skill_tuner(&["man"], &[]));
    let page = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let first = page.lines().next().unwrap_or_default();
    assert!(first.starts_with('.'), "not roff: {first}");
    assert!(page.contains(".TH skill-tuner 1"), "no title header");
    assert!(
        page.contains("Exit codes:") && page.contains("64"),
        "no exit codes"
    );

    let dir = TempDir::new("man-pages");
    let out = run(&mut skill_tuner(
        &["man", "--out-dir", dir.path().to_str().unwrap()],
        &[],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for page in [
        "skill-tuner.1",
        "skill-tuner-check-config.1",
        "skill-tuner-export.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.starts_with('.'), "{page}");
    }
}

/// The subcommands `skill-tuner -h` lists (without `help`).
fn subcommands() -> Vec<String> {
    let help = stdout(&run(&mut skill_tuner(&["-h"], &[])));
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

/// The argument lines of a `-h` text that have no description (only a spec, perhaps with
/// `[default: …]` or `[possible values: …]`).
fn undescribed(help: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let mut in_items = false;
    let lines: Vec<&str> = help.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if matches!(*line, "Arguments:" | "Options:") {
            in_items = true;
            continue;
        }
        if line.is_empty() || !line.starts_with(' ') {
            in_items = false;
            continue;
        }
        let item = line.trim_start();
        if !in_items || !(item.starts_with('-') || item.starts_with('<') || item.starts_with('[')) {
            continue;
        }
        let described_here = item.split_once("  ").is_some_and(|(_, rest)| {
            let mut text = rest.trim().to_string();
            while let Some(start) = text.rfind(" [").or(text.starts_with('[').then_some(0)) {
                if !text.ends_with(']') {
                    break;
                }
                text.truncate(start);
                text = text.trim().to_string();
            }
            !text.is_empty()
        });
        let described_next = lines.get(i + 1).is_some_and(|next| {
            next.starts_with("          ")
                && !next.trim().is_empty()
                && !next.trim().starts_with('[')
        });
        if !described_here && !described_next {
            bad.push(line.to_string());
        }
    }
    bad
}

#[test]
fn every_argument_of_every_command_has_help_text() {
    let commands = subcommands();
    for expected in [
        "plan",
        "history",
        "rollback",
        "export",
        "completions",
        "man",
    ] {
        assert!(commands.iter().any(|c| c == expected), "{commands:?}");
    }
    let mut missing = Vec::new();
    for command in std::iter::once(None).chain(commands.iter().map(Some)) {
        let args: Vec<&str> = command.iter().map(|c| c.as_str()).chain(["-h"]).collect();
        let out = run(&mut skill_tuner(&args, &[]));
        let help = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        for line in undescribed(&help) {
            missing.push(format!("{}: {line}", command.map_or("skill-tuner", |c| c)));
        }
    }
    assert!(
        missing.is_empty(),
        "arguments without help:\n{}",
        missing.join("\n")
    );
    // The check itself sees a bare argument.
    assert_eq!(
        undescribed("Options:\n      --seed <SEED>  [default: 42]\n  -h, --help  Print help\n")
            .len(),
        1
    );
    // The top-level help still ends with the exit codes.
    let top = stdout(&run(&mut skill_tuner(&["--help"], &[])));
    assert!(
        top.trim_end()
            .ends_with("64  usage error (unknown command, flag or value)"),
        "{top}"
    );
}

#[test]
fn export_format_is_a_value_enum_listing_its_values() {
    let help = stdout(&run(&mut skill_tuner(&["export", "--help"], &[])));
    assert!(
        help.contains("Possible values:") && help.contains("- csv:") && help.contains("- json:"),
        "{help}"
    );
    // Any case is still accepted (it gets as far as the missing config), an unknown value
    // is a usage error naming the possible ones.
    let dir = TempDir::new("export-format");
    let missing = dir.path().join("missing.toml");
    let out = run(&mut skill_tuner(
        &[
            "export",
            "--format",
            "JSON",
            "--config",
            missing.to_str().unwrap(),
        ],
        &[],
    ));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = run(&mut skill_tuner(
        &[
            "export",
            "--format",
            "xml",
            "--config",
            missing.to_str().unwrap(),
        ],
        &[],
    ));
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).contains("[possible values: csv, json]"),
        "{}",
        stderr(&out)
    );
}

/// JSON logs are one flat object per event (fields beside `level` and `message`, values not
/// wrapped in `Some(…)`), and an invalid `RUST_LOG` is reported instead of ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_flat_and_a_bad_rust_log_is_reported() {
    let sim = start_sim(10, |_| {}).await;
    let dir = TempDir::new("json-logs");
    let mut settings = relaxed(&sim);
    settings.log.format = skill_tuner::config::LogFormat::Json;
    let config = config_file(dir.path(), &settings, &dir.path().join("ledger.db"));
    let run = |rust_log: &str| {
        common::binary::binary_with_secret(
            &["plan"],
            &config,
            &genesys_sim::SimConfig::default().client_secret,
            rust_log,
        )
    };
    let out = output(run("info")).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let shifted = events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("clock is shifted"))
        })
        .expect("the shifted-clock warning");
    assert!(shifted.get("fields").is_none(), "{shifted}");
    assert_eq!(shifted["variable"], "SKILL_TUNER_NOW");
    assert!(events.iter().all(|e| e.get("spans").is_none()), "{stderr}");
    assert!(!stderr.contains("Some("), "{stderr}");

    let out = output(run("info,,=[")).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RUST_LOG=`info,,=[` is not a log filter"),
        "{stderr}"
    );
    sim.shutdown().await;
}
