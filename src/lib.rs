//! skill-tuner: tunes Genesys Cloud routing-skill proficiencies from agent performance.
//!
//! The library holds everything; `main.rs` is only the command-line edge.

pub mod alert;
pub mod apply;
pub mod bench;
pub mod clock;
pub mod collect;
pub mod config;
pub mod cycle;
pub mod daemon;
pub mod demo;
pub mod exit;
pub mod genesys;
pub mod hash;
pub mod history;
pub mod org;
pub mod plan;
pub mod report;
pub mod runtime;
pub mod schedule;
pub mod score;
pub mod sim;
pub mod text;
