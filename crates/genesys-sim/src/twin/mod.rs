//! The closed-loop contact-center twin.
//!
//! A world model behind the simulator's API: interactions arrive on queues requesting a
//! skill, are routed by the proficiencies the org holds *now* (as written through
//! `PATCH`/`PUT …/routingskills/bulk` or [`TwinHandle::set_proficiencies`]), are handled
//! according to a hidden truth (ability per agent and skill, drifting over the weeks, and
//! the queue's case mix) and recorded per day; the analytics API answers from those
//! records. So the proficiencies skill-tuner writes change the next days' numbers.
//!
//! - [`layout`]: the fixed structure drawn from the seed (queues, placement, truth, shifts,
//!   arrival rates);
//! - [`engine`]: one day's event-driven simulation;
//! - [`records`]: what is kept of a day (per membership and per pool).
//!
//! Days are simulated once, in order, when the simulator's clock has passed their end: on
//! the first analytics query (or [`TwinHandle`] call) that needs them. Proficiency changes
//! take effect at the instant they were made: each write is stamped with the simulator's
//! clock in the org's journal, and the day that contains the stamp applies it at that
//! moment (a write before the day's first shift governs the whole day).

pub(crate) mod engine;
pub(crate) mod layout;
pub(crate) mod records;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, NaiveDate, Utc};

use crate::state::org::{EvalMethod, Org, SkillChange};
use crate::state::world::World;
use engine::{ms_into, Engine, TimedChange};
use layout::{Layout, DAY_MS};
use records::DayData;

/// The twin: its fixed layout and its simulated history.
#[derive(Debug)]
pub(crate) struct Twin {
    pub(crate) layout: Layout,
    state: Mutex<TwinState>,
}

/// What has been simulated so far.
#[derive(Debug)]
pub(crate) struct TwinState {
    pub(crate) engine: Engine,
    /// The first day not simulated yet.
    next_day: i64,
    /// Records by day (index: day − first day); `None` once dropped by `retain_days`.
    days: Vec<Option<DayData>>,
    outcomes: Vec<DayOutcome>,
}

impl TwinState {
    /// The records of `day`, if simulated and kept.
    pub(crate) fn day(&self, first_day: i64, day: i64) -> Option<&DayData> {
        let i = usize::try_from(day - first_day).ok()?;
        self.days.get(i)?.as_ref()
    }
}

/// Milliseconds since the epoch of the start of `day`.
fn day_start_ms(day: i64) -> i64 {
    day * DAY_MS
}

/// The day number of an instant.
pub(crate) fn day_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(86_400)
}

fn date_of(day: i64) -> NaiveDate {
    DateTime::from_timestamp(day * 86_400, 0)
        .unwrap_or_default()
        .date_naive()
}

fn day_number(date: NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp().div_euclid(86_400))
}

impl Twin {
    pub(crate) fn new(layout: Layout, org: &Org) -> Twin {
        let state = org.read_state();
        let engine = Engine::new(&layout, |m| {
            let mb = layout.memb[m];
            let skill = layout.pools[mb.pool as usize].skill;
            let user = layout.agents[mb.agent as usize].user as usize;
            state
                .get(user)
                .and_then(|u| u.skills.iter().find(|(s, _)| *s == skill))
                .map_or(f32::NAN, |(_, p)| *p as f32)
        });
        drop(state);
        let next_day = layout.first_day;
        Twin {
            layout,
            state: Mutex::new(TwinState {
                engine,
                next_day,
                days: Vec::new(),
                outcomes: Vec::new(),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, TwinState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Simulates every day that has ended by `now` and not been simulated yet; returns the
    /// state, locked, for reading.
    pub(crate) fn catch_up(&self, org: &Org, now: DateTime<Utc>) -> MutexGuard<'_, TwinState> {
        let mut st = self.lock();
        self.simulate_until(&mut st, org, day_of(now));
        st
    }

    /// Simulates the days before `end_day`.
    fn simulate_until(&self, st: &mut TwinState, org: &Org, end_day: i64) {
        while st.next_day < end_day {
            let day = st.next_day;
            let changes = self.changes_for(st, org, day);
            let data = st.engine.run_day(&self.layout, day, &changes);
            let outcome = self.outcome(day, &data);
            st.days.push(Some(data));
            st.outcomes.push(outcome);
            st.next_day += 1;
            if let Some(keep) = self.layout.config.retain_days {
                let n = st.days.len();
                if let Some(old) = n.checked_sub(keep as usize + 1) {
                    st.days[old] = None;
                }
            }
        }
    }

    /// Applies the journal's changes made before `day` to the engine's proficiencies, and
    /// returns those made during `day`, as timed events.
    fn changes_for(&self, st: &mut TwinState, org: &Org, day: i64) -> Vec<TimedChange> {
        let Some(journal) = &org.journal else {
            return Vec::new();
        };
        let due = journal.take_before(day_start_ms(day + 1));
        let mut timed = Vec::new();
        for c in due {
            let before = c.at_ms < day_start_ms(day);
            for m in self.memberships(c) {
                let prof = c.value.map_or(f32::NAN, |v| v as f32);
                if before {
                    st.engine.profs[m as usize] = prof;
                } else {
                    timed.push(TimedChange {
                        t: ms_into(day, c.at_ms),
                        m,
                        prof,
                    });
                }
            }
        }
        timed
    }

    /// The memberships a skill change concerns.
    fn memberships(&self, c: SkillChange) -> impl Iterator<Item = u32> + '_ {
        let l = &self.layout;
        let range = l
            .agent_of_user
            .get(c.user as usize)
            .and_then(|&a| l.agents.get(a as usize))
            .map_or((0, 0), |a| a.memb);
        (range.0..range.1)
            .filter(move |&m| l.pools[l.memb[m as usize].pool as usize].skill == c.skill)
    }

    /// The conversation numbers of one (agent, skill) over `days`, summed over the queues
    /// where the agent uses the skill. `None` for a user who is not an active agent of the
    /// twin or a skill none of their queues requests.
    pub(crate) fn pair_totals(
        &self,
        org: &Org,
        now: DateTime<Utc>,
        user: u32,
        skill: u16,
        days: std::ops::Range<i64>,
    ) -> Option<crate::data::synth::ConvDay> {
        let l = &self.layout;
        let a = *l.agent_of_user.get(user as usize)?;
        l.pair_of(a, skill)?;
        let st = self.catch_up(org, now);
        let spec = l.agents.get(a as usize)?;
        let mut total =
            [crate::data::synth::Stat::default(); crate::data::synth::CONV_METRICS.len()];
        for m in spec.memb.0..spec.memb.1 {
            if l.pools[l.memb[m as usize].pool as usize].skill != skill {
                continue;
            }
            for day in days.clone() {
                if let Some(data) = st.day(l.first_day, day) {
                    for (t, s) in total.iter_mut().zip(data.pairs[m as usize].conv().iter()) {
                        t.merge(s);
                    }
                }
            }
        }
        Some(total)
    }

    fn outcome(&self, day: i64, data: &DayData) -> DayOutcome {
        let l = &self.layout;
        let mut per_queue = vec![Totals::default(); l.queues.len()];
        for (p, pd) in data.pools.iter().enumerate() {
            let t = &mut per_queue[l.pools[p].queue as usize];
            t.offered += u64::from(pd.offered);
            t.answered += u64::from(pd.answered);
            t.abandoned += u64::from(pd.abandoned);
            t.answered_within_sl += u64::from(pd.answered_in_sl);
            t.wait_ms += pd.wait_ms;
        }
        let mut work = vec![0u32; l.agents.len()];
        for (m, pd) in data.pairs.iter().enumerate() {
            let mb = l.memb[m];
            let t = &mut per_queue[l.pools[mb.pool as usize].queue as usize];
            t.handle_ms += pd.handle_sum();
            t.transferred += u64::from(pd.transferred);
            t.evaluations += u64::from(pd.evaluations);
            t.evaluation_score += pd.eval_sum();
            t.surveys += u64::from(pd.surveys);
            t.survey_score += pd.survey_sum();
            work[mb.agent as usize] += u32::from(pd.n);
        }
        let mut total = Totals::default();
        for t in &per_queue {
            total.add(t);
        }
        DayOutcome {
            date: date_of(day),
            total,
            per_queue,
            work,
        }
    }
}

/// Sums of one day (or more, after [`Totals::add`]) of interactions; the ratios are the
/// contact-center KPIs. Every field is a plain count or sum, so weeks add up exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Interactions that arrived.
    pub offered: u64,
    /// Interactions an agent answered (and handled).
    pub answered: u64,
    /// Callers who hung up while waiting.
    pub abandoned: u64,
    /// Answered within 20 s of arriving.
    pub answered_within_sl: u64,
    /// Total time answered interactions waited, ms.
    pub wait_ms: u64,
    /// Total handle time (talk, hold, after-call work), ms.
    pub handle_ms: u64,
    pub transferred: u64,
    pub evaluations: u64,
    /// Sum of evaluation scores (0–100 each).
    pub evaluation_score: u64,
    pub surveys: u64,
    /// Sum of survey scores (0–100 each).
    pub survey_score: u64,
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

impl Totals {
    pub fn add(&mut self, o: &Totals) {
        self.offered += o.offered;
        self.answered += o.answered;
        self.abandoned += o.abandoned;
        self.answered_within_sl += o.answered_within_sl;
        self.wait_ms += o.wait_ms;
        self.handle_ms += o.handle_ms;
        self.transferred += o.transferred;
        self.evaluations += o.evaluations;
        self.evaluation_score += o.evaluation_score;
        self.surveys += o.surveys;
        self.survey_score += o.survey_score;
    }

    /// Average handle time, seconds.
    pub fn aht_secs(&self) -> Option<f64> {
        ratio(self.handle_ms, self.answered).map(|v| v / 1000.0)
    }

    /// Transferred per answered interaction.
    pub fn transfer_rate(&self) -> Option<f64> {
        ratio(self.transferred, self.answered)
    }

    /// Mean evaluation score (0–100).
    pub fn quality(&self) -> Option<f64> {
        ratio(self.evaluation_score, self.evaluations)
    }

    /// Mean survey score (0–100).
    pub fn csat(&self) -> Option<f64> {
        ratio(self.survey_score, self.surveys)
    }

    /// Share of offered interactions answered within 20 s.
    pub fn service_level(&self) -> Option<f64> {
        ratio(self.answered_within_sl, self.offered)
    }

    /// Average speed of answer (wait of answered interactions), seconds.
    pub fn asa_secs(&self) -> Option<f64> {
        ratio(self.wait_ms, self.answered).map(|v| v / 1000.0)
    }

    /// Share of offered interactions abandoned.
    pub fn abandonment_rate(&self) -> Option<f64> {
        ratio(self.abandoned, self.offered)
    }
}

/// One simulated day's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct DayOutcome {
    pub date: NaiveDate,
    pub total: Totals,
    /// In the order of [`TwinHandle::queues`].
    pub per_queue: Vec<Totals>,
    /// Interactions handled by each active agent, in the order of
    /// [`crate::OrgHandle::agent_ids`] (for the Gini coefficient of work share).
    pub work: Vec<u32>,
}

/// The Gini coefficient of non-negative amounts (0: all equal; towards 1: one has all).
/// 0 for an empty or all-zero list.
pub fn gini(amounts: &[u32]) -> f64 {
    let mut v: Vec<f64> = amounts.iter().map(|&x| f64::from(x)).collect();
    let total: f64 = v.iter().sum();
    if v.is_empty() || total == 0.0 {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    let weighted: f64 = v
        .iter()
        .enumerate()
        .map(|(i, x)| (i as f64 + 1.0) * x)
        .sum();
    (2.0 * weighted) / (n * total) - (n + 1.0) / n
}

/// A queue of the twin, with its hidden case mix.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueInfo {
    pub id: String,
    pub name: String,
    pub method: EvalMethod,
    /// Handle-time multiplier of its case mix (1 = average).
    pub handle_multiplier: f64,
    /// Transfer-probability multiplier of its case mix.
    pub transfer_multiplier: f64,
    /// The skills its interactions request, with their shares of arrivals.
    pub skills: Vec<(String, f64)>,
    /// Member agents' user ids.
    pub members: Vec<String>,
}

/// The hidden truth of one agent on one skill on one day.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthEntry {
    pub user_id: String,
    pub skill_id: String,
    /// Latent ability in standard deviations (about N(0, 1) across agents); higher is
    /// faster, fewer transfers, better scores.
    pub ability: f64,
}

/// Why a twin request was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TwinError {
    #[error("day {0} has not ended by the simulator's clock")]
    NotEnded(NaiveDate),
    #[error("day {day} is before the twin's first day {first}")]
    BeforeHistory { day: NaiveDate, first: NaiveDate },
    #[error("unknown user {0}")]
    UnknownUser(String),
    #[error("unknown skill {0}")]
    UnknownSkill(String),
    #[error("proficiency {0} is not between 0 and 5")]
    BadProficiency(f64),
}

/// The driver's view of the twin: the hidden truth, direct proficiency writes, explicit day
/// advancement and per-day outcomes. Get it from [`crate::Simulator::twin`]. Cheap to clone.
///
/// Its methods are blocking (simulating a day of 10 000 agents takes a fraction of a
/// second): from async code, call them on a blocking thread.
#[derive(Debug, Clone)]
pub struct TwinHandle {
    world: Arc<World>,
}

impl TwinHandle {
    pub(crate) fn new(world: Arc<World>) -> Option<TwinHandle> {
        world.twin.is_some().then_some(TwinHandle { world })
    }

    fn twin(&self) -> &Twin {
        // `new` only builds a handle for a world with a twin.
        self.world
            .twin
            .as_ref()
            .unwrap_or_else(|| unreachable!("a TwinHandle always has a twin"))
    }

    /// The first simulated day (history starts here).
    pub fn first_day(&self) -> NaiveDate {
        date_of(self.twin().layout.first_day)
    }

    /// The last day simulated so far, if any.
    pub fn simulated_through(&self) -> Option<NaiveDate> {
        let st = self.twin().lock();
        (st.next_day > self.twin().layout.first_day).then(|| date_of(st.next_day - 1))
    }

    /// Simulates every day that has ended by the simulator's clock.
    pub fn simulate_ended_days(&self) {
        drop(
            self.twin()
                .catch_up(&self.world.org, self.world.clock.now()),
        );
    }

    /// Simulates every day up to and including `date`, which must have ended by the
    /// simulator's clock.
    pub fn simulate_through(&self, date: NaiveDate) -> Result<(), TwinError> {
        let day = day_number(date);
        if day >= day_of(self.world.clock.now()) {
            return Err(TwinError::NotEnded(date));
        }
        let twin = self.twin();
        if day < twin.layout.first_day {
            return Err(TwinError::BeforeHistory {
                day: date,
                first: self.first_day(),
            });
        }
        let mut st = twin.lock();
        twin.simulate_until(&mut st, &self.world.org, day + 1);
        Ok(())
    }

    /// The outcome of `date`, simulating up to it first if it has ended; `None` before
    /// history or for a day not ended yet.
    pub fn outcome(&self, date: NaiveDate) -> Option<DayOutcome> {
        self.simulate_through(date).ok()?;
        let twin = self.twin();
        let i = usize::try_from(day_number(date) - twin.layout.first_day).ok()?;
        twin.lock().outcomes.get(i).cloned()
    }

    /// Every day's outcome simulated so far, in order (does not simulate anything).
    pub fn outcomes(&self) -> Vec<DayOutcome> {
        self.twin().lock().outcomes.clone()
    }

    /// The queues, in the order of [`DayOutcome::per_queue`].
    pub fn queues(&self) -> Vec<QueueInfo> {
        let (l, org) = (&self.twin().layout, &self.world.org);
        l.queues
            .iter()
            .zip(&org.queues)
            .map(|(spec, q)| QueueInfo {
                id: q.id.to_string(),
                name: q.name.clone(),
                method: spec.method,
                handle_multiplier: spec.handle_mult,
                transfer_multiplier: spec.transfer_mult,
                skills: spec
                    .skills
                    .iter()
                    .map(|&(s, share)| (org.skills[s as usize].id.to_string(), share))
                    .collect(),
                members: spec
                    .members
                    .iter()
                    .map(|&a| org.users[l.agents[a as usize].user as usize].id.to_string())
                    .collect(),
            })
            .collect()
    }

    /// Spearman's rank correlation between agents' true ability on a skill (on `date`) and
    /// the handle-time multiplier of the queue where they use it, over every membership:
    /// the placement confound (about 0.5 with the default placement weight).
    pub fn placement_correlation(&self, date: NaiveDate) -> f64 {
        self.twin().layout.placement_correlation(day_number(date))
    }

    /// The hidden truth on `date`: every active agent's ability on each skill their queues
    /// request. For an `oracle` policy and for evaluating a scorer; skill-tuner never sees it.
    pub fn truth(&self, date: NaiveDate) -> Vec<TruthEntry> {
        let (l, org) = (&self.twin().layout, &self.world.org);
        let day = day_number(date);
        l.pairs
            .iter()
            .enumerate()
            .map(|(p, pair)| TruthEntry {
                user_id: org.users[l.agents[pair.agent as usize].user as usize]
                    .id
                    .to_string(),
                skill_id: org.skills[pair.skill as usize].id.to_string(),
                ability: l.ability(p, day),
            })
            .collect()
    }

    /// Proficiencies an oracle would set on `date`: `2.5 + ability`, clamped to 0–5 and
    /// rounded to two decimals, as `(user id, skill id, proficiency)`.
    pub fn oracle_proficiencies(&self, date: NaiveDate) -> Vec<(String, String, f64)> {
        self.truth(date)
            .into_iter()
            .map(|t| {
                let p = ((2.5 + t.ability).clamp(0.0, 5.0) * 100.0).round() / 100.0;
                (t.user_id, t.skill_id, p)
            })
            .collect()
    }

    /// Sets proficiencies as a bulk PATCH would (upserts; stamped with the simulator's
    /// clock, so they take effect from now on), without HTTP. All are checked before any is
    /// written. Returns how many users changed. Not counted in
    /// [`crate::OrgHandle::write_count`].
    pub fn set_proficiencies(&self, values: &[(String, String, f64)]) -> Result<usize, TwinError> {
        let org = &self.world.org;
        let mut by_user: Vec<(u32, Vec<(u16, f64)>)> = Vec::new();
        for (user_id, skill_id, value) in values {
            let u = org
                .user_by_id(user_id)
                .ok_or_else(|| TwinError::UnknownUser(user_id.clone()))?;
            let s = org
                .skill_by_id(skill_id)
                .ok_or_else(|| TwinError::UnknownSkill(skill_id.clone()))?;
            if !(0.0..=5.0).contains(value) {
                return Err(TwinError::BadProficiency(*value));
            }
            match by_user.last_mut() {
                Some((last, list)) if *last == u => list.push((s, *value)),
                _ => by_user.push((u, vec![(s, *value)])),
            }
        }
        for (u, changes) in &by_user {
            org.upsert_skills(*u, changes);
        }
        Ok(by_user.len())
    }
}
