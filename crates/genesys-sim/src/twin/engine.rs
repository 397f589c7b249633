//! One simulated day: interactions arrive, are routed by the proficiencies in force, handled
//! and recorded.
//!
//! Event-driven: arrivals (generated up front for the day, in time order), shift starts
//! and ends, completions (a heap of busy agents) and proficiency changes (from the org's
//! journal, at the instants they were made) are merged by time. Idle agents wait in one
//! FIFO per pool (queue × requested skill), oldest idle first; an agent who becomes busy
//! is not searched for in the other pools but invalidated by a stamp (one per agent, so
//! the stamps stay in the fastest cache), and skipped when met.
//! Waiting interactions queue per pool, oldest first; a caller whose patience ran out is
//! counted as abandoned when the queue is next looked at. Buffers are reused from day to
//! day, so a day allocates only its records.
//!
//! Common random numbers: everything about an interaction that is not the agent's doing —
//! when it arrives, on which queue, for which skill, its case draw for handle time, the
//! caller's patience, whether it is evaluated or surveyed — comes from streams keyed by
//! (seed, day, arrival number), so two twins with the same seed see the same interactions
//! whatever proficiencies they route by.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::data::rng::{domain, Rng};
use crate::state::org::EvalMethod;
use crate::twin::layout::{
    is_weekend, Layout, PoolSpec, ABILITY_ON_HANDLE, ABILITY_ON_TRANSFER, ALERT_SECS, DAY_MS,
    SLOTS, SLOT_MS,
};
use crate::twin::records::{DayData, Handled, PairDay, PoolDay};

/// BEST looks at this many longest-idle eligible agents.
pub(crate) const BEST_WINDOW: usize = 100;
/// Answered within this many ms counts toward the service level.
pub(crate) const SERVICE_LEVEL_MS: u32 = 20_000;
/// A BEST scan that steps over more stale entries than this compacts the pool.
const COMPACT_AFTER: usize = 32;
/// Handle times are kept between 10 s and 4 h.
const HANDLE_MS: (f64, f64) = (10_000.0, 14_400_000.0);

/// An agent's place in a pool: valid while the agent's stamp has not moved on. The
/// proficiency rides along (and is updated in place when it changes mid-spell), so a BEST
/// scan reads one dense stamp per entry and nothing else.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Entry {
    pub(crate) m: u32,
    pub(crate) agent: u32,
    pub(crate) stamp: u32,
    /// `NaN`: the skill is not held.
    pub(crate) prof: f32,
}

#[derive(Debug, Clone, Copy)]
struct Wait {
    arrival: u32,
    deadline: u32,
    idx: u32,
}

/// Idle agents and waiting interactions of one pool.
#[derive(Debug, Default)]
pub(crate) struct PoolState {
    pub(crate) idle: VecDeque<Entry>,
    waiting: VecDeque<Wait>,
}

impl PoolState {
    /// The membership the next interaction is routed to, taken out of the idle FIFO (or
    /// left in place to go stale when its stamp moves on). `stamps` holds each agent's
    /// current idle-spell stamp. `None`: nobody eligible is idle.
    pub(crate) fn pick(&mut self, method: EvalMethod, stamps: &[u32]) -> Option<u32> {
        if method == EvalMethod::Best {
            return self.pick_best(stamps);
        }
        while let Some(e) = self.idle.pop_front() {
            if stamps[e.agent as usize] != e.stamp || (method == EvalMethod::All && e.prof.is_nan())
            {
                continue;
            }
            return Some(e.m);
        }
        None
    }

    /// Among the first [`BEST_WINDOW`] valid entries holding the skill, the highest
    /// proficiency; the first such (the longest idle) on ties.
    fn pick_best(&mut self, stamps: &[u32]) -> Option<u32> {
        while let Some(e) = self.idle.front() {
            if stamps[e.agent as usize] == e.stamp {
                break;
            }
            self.idle.pop_front();
        }
        let (mut best, mut best_prof) = (usize::MAX, f32::NEG_INFINITY);
        let (mut seen, mut stale) = (0, 0);
        for (i, e) in self.idle.iter().enumerate() {
            let valid = stamps[e.agent as usize] == e.stamp;
            stale += usize::from(!valid);
            // NaN (not held) is never greater, and does not count toward the window.
            let eligible = valid && !e.prof.is_nan();
            if eligible && e.prof > best_prof {
                best = i;
                best_prof = e.prof;
            }
            seen += usize::from(eligible);
            if seen == BEST_WINDOW {
                break;
            }
        }
        let m = self.idle.get(best)?.m;
        if best == 0 {
            self.idle.pop_front();
        } else if stale > COMPACT_AFTER {
            self.idle
                .retain(|e| stamps[e.agent as usize] == e.stamp && e.m != m);
        }
        Some(m)
    }

    /// Membership `m`'s proficiency changed: its current entry (if idle here) follows.
    fn update(&mut self, m: u32, stamp: u32, prof: f32) {
        for e in self
            .idle
            .iter_mut()
            .filter(|e| e.m == m && e.stamp == stamp)
        {
            e.prof = prof;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    Idle,
    Busy,
}

#[derive(Debug, Clone, Copy)]
struct AgentState {
    mode: Mode,
    /// The shift ended while busy: log off after this interaction.
    leaving: bool,
}

#[derive(Debug, Clone, Copy)]
struct Arrival {
    t: u32,
    pool: u32,
}

/// A proficiency change inside the day: at `t` ms, membership `m` gets `prof`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TimedChange {
    pub(crate) t: u32,
    pub(crate) m: u32,
    pub(crate) prof: f32,
}

/// One handled interaction with where and when, kept only by tests.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogEntry {
    pub(crate) day: i64,
    pub(crate) m: u32,
    pub(crate) answered_at: u32,
    pub(crate) idx: u32,
    pub(crate) handled: Handled,
}

/// The day's simulation state; buffers survive from day to day.
#[derive(Debug)]
pub(crate) struct Engine {
    /// Per membership, persistent: proficiencies as of the simulated instant (`NaN`: the
    /// skill is not held).
    pub(crate) profs: Vec<f32>,
    /// Per agent: the current idle spell.
    stamps: Vec<u32>,
    pools: Vec<PoolState>,
    agents: Vec<AgentState>,
    arrivals: Vec<Arrival>,
    heap: BinaryHeap<Reverse<u64>>,
    /// Per pair: today's true ability and what follows from it.
    ability: Vec<Ability>,
    cumulative: Vec<f64>,
    /// Tests only: every handled interaction, and every arrival as (day, pool, time).
    #[cfg(test)]
    pub(crate) log: Option<Vec<LogEntry>>,
    #[cfg(test)]
    pub(crate) arrival_log: Option<Vec<(i64, u32, u32)>>,
}

/// An agent's ability on a skill today, with the factors handling needs (computed once a
/// day, not per interaction).
#[derive(Debug, Clone, Copy, Default)]
struct Ability {
    value: f64,
    /// Handle-time factor, e^(−0.25 a).
    speed: f64,
    /// Transfer-probability factor, e^(−0.45 a).
    transfer: f64,
}

impl Ability {
    fn new(value: f64) -> Ability {
        Ability {
            value,
            speed: (-ABILITY_ON_HANDLE * value).exp(),
            transfer: (-ABILITY_ON_TRANSFER * value).exp(),
        }
    }
}

/// The day being simulated and its records.
struct Day<'a> {
    layout: &'a Layout,
    day: i64,
    pairs: Vec<PairDay>,
    pools: Vec<PoolDay>,
}

impl Engine {
    /// An engine whose memberships start with proficiency `prof(m)`.
    pub(crate) fn new(layout: &Layout, prof: impl Fn(usize) -> f32) -> Engine {
        Engine {
            profs: (0..layout.memb.len()).map(prof).collect(),
            stamps: vec![0; layout.agents.len()],
            pools: (0..layout.pools.len())
                .map(|_| PoolState::default())
                .collect(),
            agents: vec![
                AgentState {
                    mode: Mode::Off,
                    leaving: false,
                };
                layout.agents.len()
            ],
            arrivals: Vec::new(),
            heap: BinaryHeap::new(),
            ability: vec![Ability::default(); layout.pairs.len()],
            cumulative: vec![0.0; layout.pools.len()],
            #[cfg(test)]
            log: None,
            #[cfg(test)]
            arrival_log: None,
        }
    }

    /// Simulates `day`, applying `changes` (sorted by time) as they come.
    pub(crate) fn run_day(
        &mut self,
        layout: &Layout,
        day: i64,
        changes: &[TimedChange],
    ) -> DayData {
        for (p, a) in self.ability.iter_mut().enumerate() {
            *a = Ability::new(layout.ability(p, day));
        }
        self.generate_arrivals(layout, day);
        for pool in &mut self.pools {
            pool.idle.clear();
            pool.waiting.clear();
        }
        self.heap.clear();
        for a in &mut self.agents {
            *a = AgentState {
                mode: Mode::Off,
                leaving: false,
            };
        }
        let mut d = Day {
            layout,
            day,
            pairs: vec![PairDay::EMPTY; layout.memb.len()],
            pools: vec![PoolDay::default(); layout.pools.len()],
        };
        let shifts = &layout.shift_events[usize::from(is_weekend(day))];
        let (mut ai, mut si, mut ci) = (0, 0, 0);
        let arrivals = std::mem::take(&mut self.arrivals);
        loop {
            let t_arrival = arrivals.get(ai).map_or(u32::MAX, |a| a.t);
            let t_shift = shifts.get(si).map_or(u32::MAX, |e| e.t);
            let t_done = self
                .heap
                .peek()
                .map_or(u32::MAX, |Reverse(k)| (k >> 32) as u32);
            let t_change = changes.get(ci).map_or(u32::MAX, |c| c.t);
            let t = t_arrival.min(t_shift).min(t_done).min(t_change);
            if t == u32::MAX {
                break;
            }
            if t_change == t {
                let c = changes[ci];
                ci += 1;
                self.change(layout, c);
            } else if t_done == t {
                let Some(Reverse(key)) = self.heap.pop() else {
                    break;
                };
                let a = (key & u64::from(u32::MAX)) as u32;
                let state = &mut self.agents[a as usize];
                if state.leaving {
                    *state = AgentState {
                        mode: Mode::Off,
                        leaving: false,
                    };
                } else {
                    self.available(&mut d, a, t);
                }
            } else if t_shift == t {
                let e = shifts[si];
                si += 1;
                if e.end {
                    match self.agents[e.agent as usize].mode {
                        Mode::Idle => {
                            self.invalidate(e.agent);
                            self.agents[e.agent as usize].mode = Mode::Off;
                        }
                        Mode::Busy => self.agents[e.agent as usize].leaving = true,
                        Mode::Off => {}
                    }
                } else {
                    self.available(&mut d, e.agent, t);
                }
            } else {
                let arrival = arrivals[ai];
                let idx = ai as u32;
                ai += 1;
                self.arrive(&mut d, arrival, idx);
            }
        }
        self.arrivals = arrivals;
        // Nobody is left on shift: whoever still waits hangs up.
        for (p, pool) in self.pools.iter_mut().enumerate() {
            d.pools[p].abandoned += pool.waiting.len() as u32;
            pool.waiting.clear();
            pool.idle.clear();
        }
        DayData {
            pairs: d.pairs.into_boxed_slice(),
            pools: d.pools.into_boxed_slice(),
        }
    }

    /// Poisson arrivals per pool at the slot's rate, merged into one stream in time order.
    fn generate_arrivals(&mut self, layout: &Layout, day: i64) {
        self.arrivals.clear();
        let np = layout.pools.len();
        if np == 0 {
            return;
        }
        let rates = &layout.rates[usize::from(is_weekend(day))];
        let mut volume = Rng::keyed(&[layout.seed, domain::TWIN_VOLUME, day as u64]);
        // Day-to-day volume varies by about 5 % around the forecast.
        let factor = (0.05 * volume.gaussian() - 0.00125).exp();
        let mut r = Rng::keyed(&[layout.seed, domain::TWIN_ARRIVALS, day as u64]);
        for slot in 0..SLOTS {
            let row = &rates[slot * np..(slot + 1) * np];
            let mut total = 0.0;
            for (c, rate) in self.cumulative.iter_mut().zip(row) {
                total += rate * factor;
                *c = total;
            }
            if total <= 0.0 {
                continue;
            }
            let end = f64::from((slot as u32 + 1) * SLOT_MS);
            let mut t = f64::from(slot as u32 * SLOT_MS);
            loop {
                t += r.exponential(1.0 / total);
                if t >= end {
                    break;
                }
                let pick = r.unit() * total;
                let pool = self
                    .cumulative
                    .iter()
                    .position(|&c| pick < c)
                    .unwrap_or(np - 1);
                self.arrivals.push(Arrival {
                    t: t as u32,
                    pool: pool as u32,
                });
            }
        }
        #[cfg(test)]
        if let Some(log) = &mut self.arrival_log {
            log.extend(self.arrivals.iter().map(|a| (day, a.pool, a.t)));
        }
    }

    /// A proficiency changes mid-day. An idle agent keeps their place in the queue; one who
    /// gains a skill while idle joins that pool at their next idle spell.
    fn change(&mut self, layout: &Layout, c: TimedChange) {
        let Some(prof) = self.profs.get_mut(c.m as usize) else {
            return;
        };
        *prof = c.prof;
        let p = layout.memb[c.m as usize].pool as usize;
        let agent = layout.memb[c.m as usize].agent;
        self.pools[p].update(c.m, self.stamps[agent as usize], c.prof);
    }

    /// Every place of agent `a` in the pools goes stale.
    fn invalidate(&mut self, a: u32) {
        let stamp = &mut self.stamps[a as usize];
        *stamp = stamp.wrapping_add(1);
    }

    fn eligible(&self, layout: &Layout, m: u32) -> bool {
        let method = layout.pools[layout.memb[m as usize].pool as usize].method;
        method == EvalMethod::None || !self.profs[m as usize].is_nan()
    }

    /// Agent `a` is free at `t`: takes the longest-waiting interaction of its pools, or
    /// joins their idle queues.
    fn available(&mut self, d: &mut Day<'_>, a: u32, t: u32) {
        let layout = d.layout;
        let (s, e) = layout.agents[a as usize].memb;
        let mut best: Option<(u32, u32)> = None;
        for m in s..e {
            if !self.eligible(layout, m) {
                continue;
            }
            let p = layout.memb[m as usize].pool as usize;
            let pool = &mut self.pools[p];
            while let Some(w) = pool.waiting.front() {
                if w.deadline >= t {
                    break;
                }
                pool.waiting.pop_front();
                d.pools[p].abandoned += 1;
            }
            if let Some(w) = pool.waiting.front() {
                if best.is_none_or(|(_, arrival)| w.arrival < arrival) {
                    best = Some((m, w.arrival));
                }
            }
        }
        if let Some((m, _)) = best {
            let p = layout.memb[m as usize].pool as usize;
            if let Some(w) = self.pools[p].waiting.pop_front() {
                self.agents[a as usize].mode = Mode::Busy;
                self.invalidate(a);
                self.serve(d, m, w.arrival, w.idx, t);
                return;
            }
        }
        self.agents[a as usize].mode = Mode::Idle;
        for m in s..e {
            if self.eligible(layout, m) {
                let p = layout.memb[m as usize].pool as usize;
                self.pools[p].idle.push_back(Entry {
                    m,
                    agent: a,
                    stamp: self.stamps[a as usize],
                    prof: self.profs[m as usize],
                });
            }
        }
    }

    fn arrive(&mut self, d: &mut Day<'_>, arrival: Arrival, idx: u32) {
        let layout = d.layout;
        let p = arrival.pool as usize;
        d.pools[p].offered += 1;
        match self.pools[p].pick(layout.pools[p].method, &self.stamps) {
            Some(m) => {
                let a = layout.memb[m as usize].agent;
                self.agents[a as usize].mode = Mode::Busy;
                self.invalidate(a);
                self.serve(d, m, arrival.t, idx, arrival.t);
            }
            None => {
                let mut r = Rng::keyed(&[
                    layout.seed,
                    domain::TWIN_PATIENCE,
                    d.day as u64,
                    u64::from(idx),
                ]);
                let patience = r.exponential(layout.config.patience_mean_secs * 1000.0);
                self.pools[p].waiting.push_back(Wait {
                    arrival: arrival.t,
                    deadline: arrival.t.saturating_add(patience as u32),
                    idx,
                });
            }
        }
    }

    /// Membership `m` answers interaction `idx` (arrived at `arrival`) at `now`.
    fn serve(&mut self, d: &mut Day<'_>, m: u32, arrival: u32, idx: u32, now: u32) {
        let layout = d.layout;
        let mb = layout.memb[m as usize];
        let pool = &layout.pools[mb.pool as usize];
        let queue = &layout.queues[pool.queue as usize];
        let ability = self.ability[mb.pair as usize];
        let h = handle(
            layout,
            d.day,
            idx,
            pool,
            queue.handle_mult,
            ability,
            now - arrival,
        );
        let pd = &mut d.pools[mb.pool as usize];
        pd.answered += 1;
        let wait = now - arrival;
        pd.wait_ms += u64::from(wait);
        if wait <= SERVICE_LEVEL_MS {
            pd.answered_in_sl += 1;
        }
        d.pairs[m as usize].add(&h);
        #[cfg(test)]
        if let Some(log) = &mut self.log {
            log.push(LogEntry {
                day: d.day,
                m,
                answered_at: now,
                idx,
                handled: h,
            });
        }
        let done = u64::from(now.saturating_add(h.alert).saturating_add(h.handle));
        self.heap.push(Reverse((done << 32) | u64::from(mb.agent)));
    }
}

/// The work of one interaction: the case draws are the interaction's own (keyed by its
/// arrival number), the agent's ability scales them.
fn handle(
    layout: &Layout,
    day: i64,
    idx: u32,
    pool: &PoolSpec,
    difficulty: f64,
    ability: Ability,
    wait_ms: u32,
) -> Handled {
    let config = &layout.config;
    let mut r = Rng::keyed(&[layout.seed, domain::TWIN_CASE, day as u64, u64::from(idx)]);
    let z = r.gaussian();
    let (u_acw, u_hold, u_hold_len, u_alert) = (r.unit(), r.unit(), r.unit(), r.unit());
    let (u_transfer, u_blind, u_eval, u_survey) = (r.unit(), r.unit(), r.unit(), r.unit());
    let sigma = layout.sigma;
    let mean = pool.handle_ms * ability.speed;
    let a = ability.value;
    let total = (mean * (sigma * z - sigma * sigma / 2.0).exp()).clamp(HANDLE_MS.0, HANDLE_MS.1);
    let acw = total * (0.08 + 0.12 * u_acw);
    let p_hold = (0.25 - 0.05 * a).clamp(0.05, 0.5);
    let held = if u_hold < p_hold {
        total * (0.04 + 0.14 * u_hold_len)
    } else {
        0.0
    };
    let (total, acw, held) = (
        total.round() as u32,
        acw.round() as u32,
        held.round() as u32,
    );
    let alert = ((ALERT_SECS.0 + (ALERT_SECS.1 - ALERT_SECS.0) * u_alert) * 1000.0).round() as u32;
    let p_transfer = (pool.transfer * ability.transfer).clamp(0.002, 0.6);
    let transferred = u_transfer < p_transfer;
    let score = |x: f64| x.round().clamp(0.0, 100.0) as u8;
    let evaluation = (u_eval < config.evaluation_share).then(|| {
        (
            score(78.0 + 7.0 * a + 6.0 * r.gaussian()),
            score(88.0 + 5.0 * a + 5.0 * r.gaussian()),
        )
    });
    let survey = (u_survey < config.survey_share).then(|| {
        // Long waits, transfers and hard cases leave customers less satisfied.
        let waited = (f64::from(wait_ms) / 60_000.0 * 1.5).min(10.0);
        let s = score(
            72.0 + 9.0 * a
                - 6.0 * (difficulty - 1.0)
                - waited
                - if transferred { 8.0 } else { 0.0 }
                + 15.0 * r.gaussian(),
        );
        let nps = (r.unit() < 0.8).then(|| {
            (f64::from(s) / 10.0 + r.gaussian())
                .round()
                .clamp(0.0, 10.0) as u8
        });
        (s, nps)
    });
    Handled {
        handle: total,
        talk: total - acw - held,
        held,
        acw,
        alert,
        answered: wait_ms + alert,
        transferred,
        blind: transferred && u_blind < 0.5,
        evaluation,
        survey,
    }
}

/// Milliseconds into `day` of an instant given in ms since the epoch (clamped to the day).
pub(crate) fn ms_into(day: i64, at_ms: i64) -> u32 {
    (at_ms - day * DAY_MS).clamp(0, DAY_MS - 1) as u32
}
