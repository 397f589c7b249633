//! Helpers shared by the integration tests: temp dirs, the in-process simulator with
//! relaxed settings and a client for it ([`sim`]), the real binary as a one-shot command
//! ([`binary`]), log capture ([`capture`]), the API contract and its checker ([`contract`]),
//! and, for the daemon, fault and one-writer tests, a free admin port, the `skill-tuner run`
//! daemon with its admin endpoints and signals, and `/metrics` parsing.
//!
//! Built for a loaded 2-core machine: every wait polls with a generous deadline.

pub mod binary;
pub mod capture;
pub mod contract;
pub mod sim;

use genesys_sim::SimConfig;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_skill-tuner");

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "skill-tuner-test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The real `skill-tuner run` binary, killed on drop if it is still running.
pub struct Daemon {
    pub child: Child,
    /// The admin listener, `127.0.0.1:port`.
    pub admin: String,
    /// Its stderr (the logs).
    pub log: PathBuf,
    pub config: PathBuf,
    pub http: reqwest::Client,
}

impl Daemon {
    /// Spawns the binary; the admin address comes from an env override, which also proves
    /// `SKILL_TUNER__SECTION__KEY` reaches the config.
    pub fn spawn(dir: &Path, config: &str, env: &[(&str, &str)]) -> Daemon {
        let path = dir.join("skill-tuner.toml");
        std::fs::write(&path, config).unwrap();
        let admin = format!("127.0.0.1:{}", free_port());
        let log = dir.join("daemon.log");
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--config"])
            .arg(&path)
            .env(
                "SKILL_TUNER_CLIENT_SECRET",
                SimConfig::default().client_secret,
            )
            .env("SKILL_TUNER__DAEMON__ADMIN_LISTEN", &admin)
            .env(skill_tuner::clock::NOW_ENV, sim::TEST_NOW)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("STATE_DIRECTORY")
            .env_remove("SKILL_TUNER_CONFIG")
            .env_remove("GENESYSCLOUD_OAUTHCLIENT_ID")
            .env_remove("GENESYSCLOUD_OAUTHCLIENT_SECRET")
            .env_remove("GENESYSCLOUD_REGION")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        Daemon {
            child,
            admin,
            log,
            config: path,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -s {name} failed");
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn write_config(&self, text: &str) {
        let tmp = self.config.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }

    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let resp = self
            .http
            .get(format!("http://{}{path}", self.admin))
            .send()
            .await
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.ok()?))
    }

    pub async fn post(&self, path: &str) -> Option<u16> {
        let resp = self
            .http
            .post(format!("http://{}{path}", self.admin))
            .send()
            .await
            .ok()?;
        Some(resp.status().as_u16())
    }

    /// `POST path`, with `Authorization: Bearer <token>` when given; the status and body.
    pub async fn post_with(&self, path: &str, token: Option<&str>) -> Option<(u16, String)> {
        let mut request = self.http.post(format!("http://{}{path}", self.admin));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let resp = request.send().await.ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.ok()?))
    }

    /// Waits for the process to end and returns its status, or `None` after `secs` (the
    /// process is left running, for a test to report what it was doing).
    pub async fn exited_within(&mut self, secs: u64) -> Option<ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        match self.get("/metrics").await {
            Some((200, text)) => text,
            other => panic!("GET /metrics: {other:?}\nlogs:\n{}", self.logs()),
        }
    }

    /// Polls `/metrics` until `pred` holds.
    pub async fn wait_metrics(&self, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some((200, text)) = self.get("/metrics").await {
                if pred(&text) {
                    return text;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}\nmetrics:\n{}\nlogs:\n{}",
                    self.get("/metrics").await.map(|m| m.1).unwrap_or_default(),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Writes `text` as the config, sends SIGHUP, and waits for `/metrics` to count `failed`
    /// failed reloads in all; returns those metrics.
    pub async fn reload_failing(&self, text: &str, failed: f64) -> String {
        self.write_config(text);
        self.signal("HUP");
        self.wait_metrics("a failed reload", 20, |m| {
            metric(m, r#"skill_tuner_config_reloads_total{result="failed"}"#) == Some(failed)
        })
        .await
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some((200, _)) = self.get("/readyz").await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never ready; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_exit(&mut self, secs: u64) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("daemon did not exit; logs:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The value of one sample, `name` including its labels exactly as rendered.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

pub fn metric_or_zero(text: &str, name: &str) -> f64 {
    metric(text, name).unwrap_or(0.0)
}

/// Sum of `skill_tuner_api_calls_total` samples with this status, over every method and route.
pub fn api_calls_with_status(text: &str, status: u16) -> f64 {
    let label = format!("status=\"{status}\"}}");
    text.lines()
        .filter(|l| l.starts_with("skill_tuner_api_calls_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn cycles_total(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("skill_tuner_cycles_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
