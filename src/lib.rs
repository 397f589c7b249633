//! skill-tuner: tunes Genesys Cloud routing-skill proficiencies from agent performance.
//!
//! The library holds everything; `main.rs` is only the command-line edge.

pub mod genesys;
pub mod sim;
