//! Embedded Genesys Cloud simulator.
//!
//! An in-process axum server on loopback that serves every path skill-tuner's client uses,
//! with the JSON shapes of Genesys' SDK models (.NET SDK 270.0.0, `build/docs/`; see the
//! repository's `docs/genesys-api.md`), error bodies and headers, so the real client runs
//! unchanged against it; the repository's `tests/it/sim_contract.rs` checks every answer of a
//! recorded cycle against `tests/contract/genesys-contract.toml`. The login host and the API host are the
//! same base URL: `POST {base}/oauth/token` and `{base}/api/v2/...`.
//!
//! The org is synthetic and deterministic from [`SimConfig::seed`]. By default it is
//! *open-loop*: per-day performance is derived on demand from a hash, never stored, so
//! 100 000 agents fit comfortably, and the proficiencies written never change history. With
//! [`SimConfig::twin`] it is a *closed-loop twin* (below). "Today" is [`SimConfig::clock`]'s:
//! start the simulator at any instant and the same seed gives the same history for the same
//! days. Tests steer failures through [`Faults`], read request counts through
//! [`RequestCounters`] and inspect or edit the org through [`OrgHandle`].
//!
//! The simulator never depends on the product: the only thing they share is the injected
//! clock (`skill-tuner-clock`). Inside, `http` is the edge (router, middleware, errors,
//! paging, query strings, renderings), `routes` the handlers per API area, `state` what the
//! handlers share (org, workitems, tokens, counters, faults, recorder), `data` the
//! synthetic numbers and the analytics engine, and `twin` the closed-loop world model. Only
//! what the product and its tests use is public; everything else is `pub(crate)`.
//!
//! # The closed-loop twin
//! Set [`SimConfig::twin`] to a [`TwinConfig`] (`TwinConfig::default()` is the reference
//! twin; `agents`, `skills` and `seed` come from [`SimConfig`]). Interactions arrive on
//! queues (Poisson, following the staffing through the day), each requesting one skill;
//! they are routed by the queue's [`EvalMethod`] and the proficiencies in force at that
//! instant, handled according to a hidden truth (each agent's ability per skill, drifting
//! for some over the weeks) and the queue's case mix, and recorded per day as aggregates
//! per agent × requested skill × queue. The analytics endpoints answer from those records,
//! with the same metrics and JSON as the open-loop org, grouped by `userId`,
//! `requestedRoutingSkillId` and `queueId`; `GET /api/v2/routing/queues` shows each queue's
//! `skillEvaluationMethod`. `docs/twin.md` describes the model and its parameters.
//!
//! A day is simulated once, in order, when the clock has passed its end: on the first
//! analytics query (or [`TwinHandle`] call) that needs it. Proficiency writes — through
//! `PATCH`/`PUT …/routingskills/bulk`, [`OrgHandle::set_proficiency`] or
//! [`TwinHandle::set_proficiencies`] — are stamped with the clock and take effect at that
//! instant, even if the day is simulated later; a write made before the day's first shift
//! (07:00 UTC) governs the whole day. The same seed gives the same interactions (arrival
//! times, queues, skills, case draws, patience) whatever proficiencies are set, so
//! policies can be compared on common random numbers.
//!
//! A driver comparing policies runs one simulator per policy, all with the same seed and a
//! [`Clock::manual`] clock, and moves the clocks a day at a time:
//!
//! ```text
//! let sim = Simulator::start(SimConfig { agents, seed, rate_limit_per_minute: 0,
//!     clock: clock.clone(), twin: Some(TwinConfig { retain_days: Some(35), ..Default::default() }),
//!     ..SimConfig::default() }).await?;
//! let twin = sim.twin().expect("configured");          // TwinHandle
//! for d in 0..days {
//!     clock.set(start + d days at 06:00);               // yesterday has ended
//!     twin.simulate_ended_days();                       // so no API request waits for it
//!     // static: nothing; oracle: twin.set_proficiencies(&twin.oracle_proficiencies(today))
//!     // tuned: run the product's cycle against sim.base_url() (reads ended days, writes)
//! }
//! clock.set(start + days days); twin.simulate_ended_days();
//! for o in twin.outcomes() { o.total.aht_secs(); …; gini(&o.work); }   // DayOutcome
//! ```
//!
//! [`TwinHandle`] also gives the hidden truth ([`TwinHandle::truth`], for an oracle and for
//! judging a scorer), the queues with their case mix ([`TwinHandle::queues`]) and the
//! placement confound ([`TwinHandle::placement_correlation`]). Its methods block (a day of
//! 10 000 agents takes a few tenths of a second): call them from a blocking context. An
//! analytics request that finds days to simulate simulates them first, which at that size
//! can outlast a client's request timeout for the history days: hence the explicit
//! `simulate_ended_days` above. Set `retain_days` for long runs of large twins (a day's
//! records take about 108 bytes per agent × queue × requested skill).
//!
//! # Sim choices (where Genesys documents nothing; `docs/genesys-api.md` §9)
//! - Org: one supervisor per 12 agents (no skills, `manager` of their team); `agents/50`
//!   (at least 2) inactive agents who still hold skills; 2 divisions ("Home", "Europe");
//!   groups "Team North"/"Team South" split teams alternately; 3 queues named after the first
//!   3 skills whose members are the active agents who held that skill at generation, all on
//!   BEST. A twin has its own queues (`docs/twin.md`), in divisions "Home" and "Europe"
//!   alternately.
//! - Paging: `/users`, `/routing/skills` and `/routing/queues` allow `pageSize` 1..=500
//!   (default 25);
//!   `/routingskills` and queue members allow 1..=100. A page past the end is an empty 200.
//!   Every listing carries exactly the fields of its SDK model: queue members
//!   (`QueueMemberEntityListing`) have no `total`, `pageCount` or `lastUri`, org limits
//!   (`LimitsEntityListing`) only `entities`; group individuals take no paging parameters
//!   and come in one answer. Bulk-write responses list all the user's skills in one page.
//! - Queue listing: sorted by name (`sortOrder` asc/desc); `name` matches case-insensitively,
//!   with a leading and/or trailing `*`; no queue has a peer or canned-response library, so
//!   `peerId`, `cannedResponseLibraryId` and `hasPeer=true` select none. A `Queue` carries
//!   `id`, `name`, `division`, dates, member counts (all members are users, all joined),
//!   `scoringMethod` and `skillEvaluationMethod`.
//! - Skill groups (open-loop org, [`SimConfig::skill_groups`]): "Spanish 3+" feeds "Sales",
//!   "Billing and Claims" (an And) "Billing", "Support, not Sales" (a Not) "Technical
//!   Support", "Retention seniors" (an Or with a nested condition) no queue — each only when
//!   the catalogue has its skills; [`OrgHandle::create_skill_group`] adds others. Membership
//!   is computed at each request from the proficiencies in force, read as
//!   `state::skillgroups` describes, fractional values by [`SimConfig::proficiency_match`];
//!   users hold no languages. The listing and members page by cursor (`after`/`before` are
//!   item offsets; `pageSize` 1..=100, default 25). A queue's `memberGroups` names the skill
//!   groups feeding it, but its members listing shows only its direct members.
//! - Bulk writes: entries are validated in order and the first bad one is reported; duplicate
//!   ids in one body: the last wins; the 409 fault is checked after validation.
//!   [`OrgHandle::write_count`] counts successful bulk requests (PATCH or PUT), not skills.
//! - Analytics (see `data::aggregate`): a UTC day's numbers count at its noon; granularity buckets
//!   follow `timeZone` (any IANA zone). Modelled: `groupBy` queries, dimension predicates,
//!   the dimensions `userId`, `queueId`, `mediaType` (always `voice`) and
//!   `requestedRoutingSkillId` (not for evaluations, as in the SDK), the metrics the
//!   simulator has data for, and `flattenMultivaluedDimensions` (a no-op: every modelled
//!   dimension is single-valued). Anything else the SDK allows (other dimensions and
//!   metrics, topN/bottomN, views, metric predicates, ranges, months in `granularity`,
//!   `alternateTimeDimension`) is a 400 naming the field. Days not yet ended by the
//!   simulator's clock have no data. In the open-loop org, metrics are generated for the
//!   skills an agent held at generation (later PATCHes do not change history) and inactive
//!   agents keep their history; in a twin, the records are what happened (inactive agents
//!   take no interactions, `nOutbound` has no data, and days before the twin's history have
//!   none).
//!   Analytics limit keys on `/organizations/limits/namespaces/analytics` are invented.
//! - Rate limit: a fixed window per token (60 s; `rate_window_secs`) opening at its first API
//!   call and allowing its share of `rate_limit_per_minute` (`inin-ratelimit-allowed`);
//!   `inin-ratelimit-count` counts every authenticated API call of the token in the window
//!   (injected failures, refused calls and the calls of the optional other user of the token
//!   included); `inin-ratelimit-reset` is the whole seconds left, rounded up. While another user
//!   shares the token, windows follow each other back to back. Unlimited (0) is advertised as
//!   `inin-ratelimit-allowed: 2147483647`. 401s carry count 0 and a whole window as reset.
//! - Faults: `fail_next`, `storm_429` and `malformed_next` act on `/api/v2` only (use
//!   `login_down` for the token endpoint); latency applies to every path except `/_sim/`.
//! - Workitems: `count` is the number of matches overall; `after` is an opaque cursor; at
//!   most three filters, one of them `EQ` on `assigneeId`, `queueId` or `typeId` (workbins
//!   are not modelled); filters on `externalTag`, `typeId`, `statusId`, `statusCategory`,
//!   `assigneeId`, `queueId`, `id`, `name` with `EQ`/`NEQ`/`IN`. A body field the simulator
//!   does not model is a 400 naming it. `customFields` are stored unchecked.

#![warn(unreachable_pub)]

mod config;
mod data;
mod http;
mod routes;
mod state;
mod twin;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use skill_tuner_clock::Clock;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{MethodMix, ProficiencyMatch, SimConfig, TwinConfig, TwinConfigError};
pub use http::server::route_templates;
pub use state::counters::{OtherUserStats, RequestCounters};
pub use state::faults::Faults;
pub use state::org::EvalMethod;
pub use state::record::Exchange;
pub use state::world::{MetricStats, OrgHandle, TruthStats};
pub use twin::{gini, DayOutcome, QueueInfo, Totals, TruthEntry, TwinError, TwinHandle};

use state::Shared;

/// A running simulator. Dropping it stops the server too; [`Simulator::shutdown`] waits.
#[derive(Debug)]
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Starts on an ephemeral loopback port (`127.0.0.1:0`).
    pub async fn start(config: SimConfig) -> std::io::Result<Simulator> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr`.
    pub async fn start_on(config: SimConfig, addr: SocketAddr) -> std::io::Result<Simulator> {
        let (seed, agents, skills) = (config.seed, config.agents, config.skills);
        let (clock, worktype_id) = (config.clock.clone(), config.worktype_id);
        let twin = config.twin.clone();
        let skill_groups = config.skill_groups;
        if let Some(t) = &twin {
            t.validate()
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        }
        // Generating a large org is CPU work; keep it off the async worker.
        let world = tokio::task::spawn_blocking(move || {
            let mut world = state::world::World::new(seed, agents, skills, clock, twin.as_ref());
            if let Some(id) = worktype_id {
                world.tasks.worktype_id = id;
            }
            if !skill_groups {
                world.org.set_skill_groups(Vec::new());
            }
            world
        })
        .await
        .map_err(std::io::Error::other)?;
        let rate_limit = state::tokens::RateLimit::of(&config);
        let shared = Arc::new(Shared {
            config,
            world: Arc::new(world),
            faults: Arc::new(Faults::default()),
            tokens: state::tokens::Tokens::new(rate_limit),
            counters: state::counters::Counters::default(),
            recorder: state::record::Recorder::default(),
        });
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let router = http::server::router(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "simulator server stopped with an error");
            }
        });
        tracing::debug!(%addr, agents, skills, seed, "simulator started");
        Ok(Simulator {
            addr,
            shared,
            stop: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`: both the login and the API base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The simulator's clock (share it with the product under test).
    pub fn clock(&self) -> Clock {
        self.shared.config.clock.clone()
    }

    /// The fault switchboard.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// A snapshot of the request counters.
    pub fn counters(&self) -> RequestCounters {
        self.shared.counters.snapshot()
    }

    /// The other user of the tokens ([`SimConfig::other_user_share`]): its requests and how
    /// many were refused, counting the rest of every current window as if the client sent
    /// nothing more.
    pub fn other_user(&self) -> OtherUserStats {
        self.shared.tokens.other_user()
    }

    /// The access tokens issued so far (unexpired), so a test can grep outputs for them.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.tokens.issued()
    }

    /// Every exchange recorded so far (empty unless [`SimConfig::record`] is set).
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared.recorder.snapshot()
    }

    pub fn clear_exchanges(&self) {
        self.shared.recorder.clear();
    }

    pub fn reset_counters(&self) {
        self.shared.counters.reset();
    }

    /// Read and modify the synthetic org.
    pub fn org(&self) -> OrgHandle {
        OrgHandle::new(self.shared.world.clone())
    }

    /// The closed-loop twin, when [`SimConfig::twin`] is set.
    pub fn twin(&self) -> Option<TwinHandle> {
        TwinHandle::new(self.shared.world.clone())
    }

    /// Stops the server: waits up to 2 s for open connections to finish, then aborts them.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
