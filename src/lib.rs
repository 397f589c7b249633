//! skill-tuner: tunes Genesys Cloud routing-skill proficiencies from agent performance.
//!
//! The library holds everything; the command-line edge (`main.rs` and `src/cli/`) is
//! binary-only.

pub mod audit;
#[cfg(feature = "simulator")]
pub mod bench;
pub mod config;
pub mod cycle;
pub mod daemon;
#[cfg(feature = "simulator")]
pub mod demo;
pub mod exit;
pub mod genesys;
pub mod hash;
pub mod history;
pub mod org;
pub mod runtime;
pub mod text;

/// The injected clock (its own crate, shared with the simulator): `skill_tuner::clock::Clock`.
pub use skill_tuner_clock as clock;
