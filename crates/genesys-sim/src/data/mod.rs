//! Synthetic data: the seeded random streams, each agent's and skill's traits, per-day
//! performance derived on demand, and the analytics query engine that aggregates it.

pub(crate) mod aggregate;
pub(crate) mod aquery;
pub(crate) mod rng;
pub(crate) mod synth;
