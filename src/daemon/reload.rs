//! SIGHUP, for one org: check its new settings in full against its running parts, and only
//! then swap them in (see the module comment of [`super`]). The supervisor reads the file and
//! hands each changed org its settings; an unchanged org never comes here.

use super::current::{digest, open_ledger_logged, Current};
use super::shared::Shared;
use crate::config::schedule::{Schedule, ScheduleError};
use crate::config::{secret, ConfigError, Settings};
use crate::genesys::{ApiError, GenesysClient};
use crate::history::Ledger;
use crate::runtime::{self, StartupError};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// One org's part of the new config (a listed org's problems name it).
    #[error("org `{org}`: {source}")]
    Org {
        org: String,
        #[source]
        source: Box<ReloadError>,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0} (key `{key}`)", key = .0.key())]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("key `history.path`: cannot open the new ledger: {0}")]
    Ledger(#[from] crate::history::LedgerError),
    #[error("the changed `[genesys]` settings or client secret cannot log in, so the running client is kept: {0}")]
    Login(ApiError),
    #[error("the changed `[genesys]` settings or client secret could not be checked: no answer from the login endpoint within {0:?}, so the running client is kept")]
    LoginTimeout(Duration),
}

/// What a reload would swap in, built completely before anything is swapped.
pub(super) struct Candidate {
    settings: Arc<Settings>,
    secret_digest: u64,
    schedule: Schedule,
    /// A new client, when `[genesys]` or the secret changed; swapped in only after it
    /// obtained a token.
    client: Option<GenesysClient>,
    ledger: Option<Option<Arc<Ledger>>>,
}

type LoginCheck = Pin<Box<dyn Future<Output = (Candidate, Result<(), ReloadError>)>>>;

/// A reload waiting for its new credentials to obtain a token.
pub(super) struct PendingReload {
    future: LoginCheck,
    /// The candidate's client, so its counters survive a superseded check.
    client: GenesysClient,
}

/// Starts a reload of the org to `settings` (read from `path`). `None` while changed
/// credentials are checked with one token request (the check's end, [`finish`], completes
/// the reload); otherwise whether the new settings were swapped in.
pub(super) fn begin(
    path: &Path,
    settings: Settings,
    cur: &mut Current,
    shared: &Shared,
    reloading: &mut Option<PendingReload>,
) -> Option<bool> {
    if let Some(superseded) = reloading.take() {
        // The file changed again: the newest one is what counts.
        shared
            .metrics
            .retire_client_stats(cur.settings.org.as_deref(), &superseded.client.stats());
        tracing::info!("a newer SIGHUP replaces the reload that was still checking its login");
    }
    match prepare(settings, cur) {
        Err(e) => {
            failed(path, shared, &e);
            Some(false)
        }
        Ok(candidate) => match candidate.client.clone() {
            Some(client) => {
                tracing::info!(client_id = %client.client_id(), "config reload: checking the changed credentials with one token request");
                *reloading = Some(PendingReload {
                    future: Box::pin(check_login(candidate)),
                    client,
                });
                None
            }
            None => {
                apply(path, cur, shared, candidate);
                Some(true)
            }
        },
    }
}

/// Completes a reload whose credentials were checked: swapped in when the login worked.
pub(super) fn finish(
    path: &Path,
    cur: &mut Current,
    shared: &Shared,
    candidate: Candidate,
    login: Result<(), ReloadError>,
) -> bool {
    match login {
        Ok(()) => {
            apply(path, cur, shared, candidate);
            true
        }
        Err(e) => {
            if let Some(client) = &candidate.client {
                shared
                    .metrics
                    .retire_client_stats(cur.settings.org.as_deref(), &client.stats());
            }
            failed(path, shared, &e);
            false
        }
    }
}

/// The pending reload's login check, or never.
pub(super) async fn poll(
    reloading: &mut Option<PendingReload>,
) -> (Candidate, Result<(), ReloadError>) {
    match reloading {
        Some(pending) => (&mut pending.future).await,
        None => std::future::pending().await,
    }
}

/// What the supervisor checks of an org's new settings before any org is touched: the
/// schedule and the secret (its keyed digest returned, to tell a rotated secret).
pub(super) fn precheck(settings: &Settings) -> Result<u64, ReloadError> {
    Schedule::parse(&settings.daemon.schedule, &settings.daemon.time_zone)?;
    // Credentials must be present even when the client is kept (a removed secret file would
    // otherwise surface only at the next restart); a rotated secret rebuilds the client.
    let (secret, _) = secret::load_org_client_secret(&settings.genesys, settings.org.as_deref())?;
    Ok(digest(&secret, settings))
}

/// Checks the org's new settings against its running parts.
fn prepare(settings: Settings, cur: &Current) -> Result<Candidate, ReloadError> {
    let schedule = Schedule::parse(&settings.daemon.schedule, &settings.daemon.time_zone)?;
    let (secret, _) = secret::load_org_client_secret(&settings.genesys, settings.org.as_deref())?;
    let secret_digest = digest(&secret, &settings);
    let client = if settings.genesys == cur.settings.genesys && secret_digest == cur.secret_digest {
        None
    } else {
        Some(runtime::client_with_secret(&settings, secret, &cur.clock)?)
    };
    // A new `history.path` must open (else the reload fails); the same path that could not
    // be opened before is retried without failing the reload over it (not a config problem).
    let ledger = if settings.history.ledger_path() != cur.settings.history.ledger_path() {
        Some(Some(Arc::new(runtime::open_daemon_ledger(
            &settings, &cur.clock,
        )?)))
    } else if cur.ledger.is_none() {
        Some(open_ledger_logged(&settings, &cur.clock))
    } else {
        None
    };
    Ok(Candidate {
        settings: Arc::new(settings),
        secret_digest,
        schedule,
        client,
        ledger,
    })
}

/// Asks for one token with the candidate's new client. Bounded by the new
/// `genesys.request_timeout_secs`: the token request itself has no timeout of its own, and a
/// login endpoint that never answers must fail the reload, not leave it pending.
async fn check_login(candidate: Candidate) -> (Candidate, Result<(), ReloadError>) {
    let Some(client) = candidate.client.clone() else {
        return (candidate, Ok(()));
    };
    let limit = Duration::from_secs(candidate.settings.genesys.request_timeout_secs.max(1));
    let result = match tokio::time::timeout(limit, client.login()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ReloadError::Login(e)),
        Err(_) => Err(ReloadError::LoginTimeout(limit)),
    };
    (candidate, result)
}

/// A refused reload: logged with its reason (the supervisor counts it); the org's running
/// config stays.
fn failed(path: &Path, _shared: &Shared, error: &ReloadError) {
    tracing::error!(config = %path.display(), error = %error, "config reload failed: keeping the running config (the next SIGHUP tries again)");
}

/// Swaps a checked candidate in: the next cycle uses it.
fn apply(path: &Path, cur: &mut Current, shared: &Shared, candidate: Candidate) {
    let old = cur.settings.clone();
    let new = &candidate.settings;
    let schedule_changed =
        new.daemon.schedule != old.daemon.schedule || new.daemon.time_zone != old.daemon.time_zone;
    let client_rebuilt = candidate.client.is_some();
    if let Some(ledger) = candidate.ledger {
        cur.ledger = ledger;
    }
    cur.settings = candidate.settings;
    cur.secret_digest = candidate.secret_digest;
    cur.schedule = candidate.schedule;
    if let Some(client) = candidate.client {
        shared
            .metrics
            .retire_client_stats(cur.settings.org.as_deref(), &cur.client.stats());
        cur.client = client;
        // With the new settings: the login, the token refresher and the org's rate limit.
        cur.log_in();
    }
    shared.publish(cur.name(), cur.in_use());
    tracing::info!(
        config = %path.display(),
        fingerprint = %cur.settings.fingerprint(),
        schedule_changed,
        client_rebuilt,
        "config reloaded: the next cycle uses it"
    );
}
