//! What the simulator holds: the synthetic org and its workitems, issued tokens, request
//! counters, injected faults and the exchange recorder. Handlers reach it through
//! [`AppState`]; nothing here knows about HTTP routing.

pub(crate) mod counters;
pub(crate) mod faults;
pub(crate) mod org;
pub(crate) mod record;
pub(crate) mod skillgroups;
pub(crate) mod tokens;
pub(crate) mod workitems;
pub(crate) mod world;

use std::sync::Arc;

use crate::SimConfig;

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) world: Arc<world::World>,
    pub(crate) faults: Arc<faults::Faults>,
    pub(crate) tokens: tokens::Tokens,
    pub(crate) counters: counters::Counters,
    pub(crate) recorder: record::Recorder,
}

/// The state every handler and middleware is given.
pub(crate) type AppState = Arc<Shared>;
