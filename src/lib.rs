//! skill-tuner: tunes Genesys Cloud routing-skill proficiencies from agent performance.
//!
//! # Layout
//!
//! Read from the top down; no module imports one above it.
//!
//! - [`daemon`]: the long-running service — the loop that sleeps to each scheduled tick, SIGHUP reload,
//!   SIGTERM shutdown, the admin listener, Prometheus metrics, sd_notify.
//! - [`cycle`]: one pass of the pipeline, top to bottom in `cycle/mod.rs`: collect → score →
//!   plan (guardrails, breaker) → apply (through the one write path) → alert → report.
//! - [`audit`]: what people do with past runs — history, show, diff, rollback (through the
//!   cycle's write path), export, and the HTML report page (`audit/html`).
//! - [`experiment`]: the holdout — which skills are held out, the effect of tuning with its
//!   interval, the always-valid harm test that pauses tuning.
//! - [`history`]: the ledger itself — run and change records, reconcile after a crash, the
//!   single-writer lock.
//! - [`genesys`]: the API client — regions, OAuth, the pacer and retry layer, typed endpoints.
//! - [`config`]: settings, their validation (errors name the file and field), secrets and
//!   the cron schedule type (with its daylight-saving rule).
//! - [`org`], [`runtime`], [`exit`], [`text`], [`hash`]: the shared snapshot of the org, live
//!   parts built from settings, exit codes, safe text, stable hashes.
//! - [`demo`](mod@demo), [`bench`](mod@bench), [`simulate`](mod@simulate) (feature `simulator`): the same
//!   cycle against the embedded Genesys Cloud simulator, the `genesys-sim` crate; `simulate`
//!   runs it daily on the simulator's closed-loop twin to measure whether tuning helps.
//!
//! The command-line edge (`main.rs` and `src/cli/`) is binary-only: it parses, dispatches and
//! turns library errors into messages and exit codes in one place.

pub mod audit;
#[cfg(feature = "simulator")]
pub mod bench;
pub mod config;
pub mod cycle;
pub mod daemon;
#[cfg(feature = "simulator")]
pub mod demo;
pub mod exit;
pub mod experiment;
pub mod genesys;
pub mod hash;
pub mod history;
pub mod org;
pub mod runtime;
#[cfg(feature = "simulator")]
pub mod simulate;
pub mod text;

/// The injected clock (its own crate, shared with the simulator): `skill_tuner::clock::Clock`.
pub use skill_tuner_clock as clock;
