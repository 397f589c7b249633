//! The live parts built from one config — settings, schedule, API client and its login,
//! ledger, run token — and how each is obtained.

use super::shared::{InUse, Shared};
use super::DaemonError;
use crate::clock::Clock;
use crate::config::schedule::Schedule;
use crate::config::{secret, ConfigError, Settings};
use crate::genesys::GenesysClient;
use crate::history::{Ledger, LedgerError};
use crate::runtime::{self, StartupError};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

/// First and longest pause between login attempts while the login endpoint is down.
const LOGIN_BACKOFF_START: Duration = Duration::from_secs(1);
const LOGIN_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The live parts built from one config.
pub(super) struct Current {
    pub clock: Clock,
    pub settings: Arc<Settings>,
    /// A keyed hash of the client secret in use, so a rotated secret rebuilds the client.
    pub secret_digest: u64,
    pub schedule: Schedule,
    pub client: GenesysClient,
    /// The background login of `client`; none before [`Current::log_in`].
    login: Option<tokio::task::JoinHandle<()>>,
    pub ledger: Option<Arc<Ledger>>,
}

impl Current {
    /// The parts to publish to [`Shared`]: after start-up and after every reload.
    pub(super) fn in_use(&self) -> InUse {
        InUse {
            client: self.client.clone(),
            ledger_open: self.ledger.is_some(),
            fingerprint: self.settings.fingerprint(),
            schedule: format!(
                "{} {}",
                self.schedule.expression(),
                self.settings.daemon.time_zone
            ),
            min_spacing: super::effective_min_spacing(
                &self.settings,
                &self.schedule,
                self.clock.now(),
            ),
        }
    }

    /// The org's name (its `[[orgs]]` name, or `default`).
    pub fn name(&self) -> &str {
        self.settings.org_name()
    }

    /// The parts for one org of the start-up config. Refused: an unusable schedule or secret,
    /// and a ledger another daemon holds for the org; a ledger that cannot open for any other reason leaves
    /// the daemon up but not ready. Nothing is sent to the org yet (see [`Current::log_in`]).
    pub fn open(settings: Settings, clock: Clock) -> Result<Self, DaemonError> {
        let settings = Arc::new(settings);
        let schedule = Schedule::parse(&settings.daemon.schedule, &settings.daemon.time_zone)?;
        let (secret, source) =
            secret::load_org_client_secret(&settings.genesys, settings.org.as_deref())
                .map_err(|e| DaemonError::Startup(e.into()))?;
        tracing::info!(%source, "client secret found");
        if let Some(warning) = secret::mismatched_pair(&settings.genesys.client_id, &source) {
            tracing::warn!("{warning}");
        }
        let secret_digest = digest(&secret, &settings);
        let client = runtime::client_with_secret(&settings, secret, &clock)?;
        // One daemon per ledger: a second one is refused (exit 5, naming the first) before it
        // binds the admin port or logs in. Any other ledger problem leaves it up but not ready.
        let ledger = match runtime::open_daemon_ledger(&settings, &clock) {
            Err(LedgerError::Lock(e)) if e.is_held() => {
                return Err(DaemonError::Startup(StartupError::Ledger(e.into())))
            }
            opened => ledger_logged(opened, &settings),
        };
        Ok(Self {
            clock,
            settings,
            secret_digest,
            schedule,
            client,
            login: None,
            ledger,
        })
    }

    /// Logs `client` in (again) in the background, ending any login still retrying for the
    /// client it replaces.
    pub fn log_in(&mut self) {
        self.stop_login();
        self.login = Some(spawn_login(self.client.clone(), self.settings.clone()));
    }

    pub fn stop_login(&self) {
        if let Some(login) = &self.login {
            login.abort();
        }
    }

    /// Ready to run a cycle: token present and ledger open (retrying the ledger if it is not).
    pub fn ready(&mut self, shared: &Shared) -> bool {
        if self.ledger.is_none() {
            if let Some(ledger) = try_open_ledger(&self.settings, &self.clock) {
                tracing::info!(path = %ledger.path().display(), "history ledger opened");
                self.ledger = Some(ledger);
                shared.set_ledger_open(self.settings.org_name());
            }
        }
        self.ledger.is_some() && self.client.has_token()
    }
}

/// Logs in (token refresher, org rate limit) in the background, retrying with backoff, so a
/// login endpoint that is down at start-up leaves the daemon up but not ready.
fn spawn_login(client: GenesysClient, settings: Arc<Settings>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut delay = LOGIN_BACKOFF_START;
        loop {
            match runtime::start_client(&client, &settings).await {
                Ok(()) => {
                    tracing::info!(client_id = %client.client_id(), "logged in; ready");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_secs = delay.as_secs(), "login failed; not ready, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(LOGIN_BACKOFF_MAX);
                }
            }
        }
    })
}

fn try_open_ledger(settings: &Settings, clock: &Clock) -> Option<Arc<Ledger>> {
    runtime::open_daemon_ledger(settings, clock)
        .ok()
        .map(Arc::new)
}

pub(super) fn open_ledger_logged(settings: &Settings, clock: &Clock) -> Option<Arc<Ledger>> {
    ledger_logged(runtime::open_daemon_ledger(settings, clock), settings)
}

fn ledger_logged(opened: Result<Ledger, LedgerError>, settings: &Settings) -> Option<Arc<Ledger>> {
    match opened {
        Ok(l) => Some(Arc::new(l)),
        Err(e) => {
            tracing::error!(error = %e, path = %settings.history.ledger_path().display(), "cannot open the history ledger: no cycles run until it opens (retried at each tick and on SIGHUP); not ready");
            None
        }
    }
}

/// The run token for `settings` (refusing `enable_run_endpoint` without one), logged by
/// where it was found, never by value.
pub(super) fn load_run_token(settings: &Settings) -> Result<Option<SecretString>, ConfigError> {
    let found =
        secret::run_token_if_enabled(&settings.daemon, settings.genesys.strict_file_permissions)?;
    Ok(found.map(|(token, source)| {
        tracing::info!(%source, "POST /run enabled; bearer token found");
        token
    }))
}

/// Compares secrets without keeping them twice: SipHash with a per-process random key, never
/// logged or exported. Besides the client secret it covers what the client is built from
/// outside the config text — the proxy's credentials and the CA bundle's contents — so
/// rotating either file rebuilds the client at the next reload (an unreadable one is
/// refused when the client is built).
pub(super) fn digest(secret: &SecretString, settings: &Settings) -> u64 {
    use secrecy::ExposeSecret;
    use std::hash::{BuildHasher, Hasher};
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut h = KEYS
        .get_or_init(std::collections::hash_map::RandomState::new)
        .build_hasher();
    h.write(secret.expose_secret().as_bytes());
    let g = &settings.genesys;
    if g.proxy.is_some() {
        if let Ok(Some((credentials, _))) = secret::load_proxy_credentials(g) {
            h.write_u8(1);
            h.write(credentials.expose_secret().as_bytes());
        }
    }
    if let Some(bytes) = g
        .ca_bundle_file
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
    {
        h.write_u8(2);
        h.write(&bytes);
    }
    h.finish()
}
