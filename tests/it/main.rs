//! The product's integration tests, one module per subject, built as one test binary: one
//! link instead of one per file, and one process in which the slow tests (daemons, the fault
//! scenarios) overlap with the rest.
//!
//! ```sh
//! cargo test --test it                          # all of them
//! cargo test --test it faults::                 # one module
//! cargo test --test it faults::retry_after_429  # one test
//! cargo test --test it sim_contract:: -- --ignored   # the slow 100 000-agent check
//! ```
//!
//! Tests share this process, so none sets environment variables or the current directory
//! (a child process gets its environment through `Command::env`), every port is chosen by the
//! kernel and every test writes in a directory of its own (a [`common::TempDir`]). The one process-global tracing
//! subscriber belongs to [`faults`], which routes each event to the scenario it belongs to.
//! `tests/log_secrets.rs` stays a binary of its own: it must capture what every thread of its
//! process logs.

mod common;

mod bad_config;
mod bench;
mod calendar;
mod casemix;
mod client;
mod config_files;
mod cycle;
mod daemon;
mod demo_alerts;
mod ecosystem;
mod exit_codes;
mod experiment;
mod faults;
mod history;
mod one_writer;
mod orgs;
mod pacing;
mod policy_props;
mod report_html;
mod routing_effect;
mod secrets;
mod sim_contract;
mod simulate;
mod skill_groups;
