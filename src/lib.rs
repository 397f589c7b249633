//! skill-tuner: tunes Genesys Cloud routing-skill proficiencies from agent performance.
//!
//! The library holds everything; `main.rs` is only the command-line edge.

pub mod genesys;
pub mod sim;
pub mod config;
pub mod schedule;
pub mod org;
pub mod plan;
pub mod score;
pub mod collect;
pub mod history;
pub mod apply;
pub mod alert;
pub mod report;
pub mod cycle;
