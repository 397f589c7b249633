//! The twin's fixed structure, drawn once from the seed: queues (difficulty, method, the
//! skills their interactions request), who is a member where, each agent's shift, the hidden
//! truth (ability per agent and skill, and how it drifts), the supervisors' starting ratings,
//! and the arrival rates that follow the staffing.
//!
//! The truth model knows nothing about how skill-tuner scores agents: ability is a latent
//! number per agent and skill, and queues differ by case mix. See `docs/twin.md`.

use crate::config::{MethodMix, TwinConfig};
use crate::data::rng::{domain, Rng};
use crate::state::org::{as_set_by_hand, EvalMethod};

/// One arrival-rate slot: 15 minutes.
pub(crate) const SLOT_MS: u32 = 15 * 60 * 1000;
pub(crate) const SLOTS: usize = 96;
pub(crate) const DAY_MS: i64 = 86_400_000;
/// No agent in this position (a supervisor, or an inactive agent).
pub(crate) const NO_AGENT: u32 = u32::MAX;

/// How much one standard deviation of ability shortens handle time: ×e^(−0.25).
pub(crate) const ABILITY_ON_HANDLE: f64 = 0.25;
/// Transfer probability of an average agent on a queue of multiplier 1.
pub(crate) const TRANSFER_BASE: f64 = 0.06;
/// How much one standard deviation of ability lowers the odds of a transfer: ×e^(−0.45).
pub(crate) const ABILITY_ON_TRANSFER: f64 = 0.45;
/// Handle-time multipliers of the easiest and the hardest queue.
const DIFFICULTY_RANGE: (f64, f64) = (0.75, 1.45);
/// A queue's transfer multiplier is its handle-time multiplier to this power.
const TRANSFER_ELASTICITY: f64 = 1.5;
/// Mean handle time of a skill's interactions for an average agent, seconds.
const BASE_HANDLE_SECS: (f64, f64) = (360.0, 600.0);
/// Ring time before the agent answers, seconds (uniform).
pub(crate) const ALERT_SECS: (f64, f64) = (2.0, 10.0);
/// Correlation of an agent's ability on one skill with their general ability.
const SKILL_ON_GENERAL: f64 = 0.7;
/// Shifts: 8.5 hours, starting on the half hour from 07:00 to 14:00 UTC.
const SHIFT_SLOTS: usize = 34;
const SHIFT_STARTS: [(usize, f64); 15] = [
    (28, 2.0),
    (30, 3.0),
    (32, 4.0),
    (34, 5.0),
    (36, 5.0),
    (38, 4.0),
    (40, 3.0),
    (42, 3.0),
    (44, 2.0),
    (46, 2.0),
    (48, 2.0),
    (50, 2.0),
    (52, 1.0),
    (54, 1.0),
    (56, 1.0),
];
/// Intraday wiggle of arrivals around the staffing curve: peaks at 10:30 and 16:30.
const PROFILE_AMPLITUDE: f64 = 0.06;
/// The primary skill of a queue gets this share of its arrivals, the secondary the rest.
const PRIMARY_SHARE: f64 = 0.65;

const QUEUE_NAMES: [&str; 12] = [
    "Consumer",
    "Small Business",
    "Premium",
    "Collections",
    "Escalations",
    "Partners",
    "Public Sector",
    "Enterprise",
    "Online",
    "Loyalty",
    "Onboarding",
    "Disputes",
];

/// How an agent's ability on their skills changes over the days.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Drift {
    Steady,
    /// A new hire: `depth` below their eventual ability, closing with time constant `tau`
    /// days; `lag` days of the curve had passed when history starts.
    Learning {
        depth: f64,
        tau: f64,
        lag: f64,
    },
    /// A slow decline or improvement, in standard deviations per day.
    Trend {
        per_day: f64,
    },
}

impl Drift {
    /// The offset on day `rel` (days since the twin's first day).
    pub(crate) fn offset(self, rel: i64) -> f64 {
        let d = rel.max(0) as f64;
        match self {
            Drift::Steady => 0.0,
            Drift::Learning { depth, tau, lag } => -depth * (-(d + lag) / tau).exp(),
            Drift::Trend { per_day } => per_day * d,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct QueueSpec {
    pub(crate) name: String,
    pub(crate) method: EvalMethod,
    pub(crate) handle_mult: f64,
    pub(crate) transfer_mult: f64,
    /// Requested skills and their shares of arrivals.
    pub(crate) skills: Vec<(u16, f64)>,
    /// Member agents (indices into [`Layout::agents`]), in roster order.
    pub(crate) members: Vec<u32>,
}

/// Interactions of one queue requesting one skill: the unit of routing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolSpec {
    pub(crate) queue: u16,
    pub(crate) skill: u16,
    pub(crate) method: EvalMethod,
    /// Mean handle time of an agent of ability 0 here, ms.
    pub(crate) handle_ms: f64,
    /// Transfer probability of an agent of ability 0 here.
    pub(crate) transfer: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct AgentSpec {
    /// The user's index in the org.
    pub(crate) user: u32,
    /// Shift start and end, ms into the day.
    pub(crate) shift: (u32, u32),
    pub(crate) weekends: bool,
    /// This agent's memberships: `memb[start..end]`, grouped.
    pub(crate) memb: (u32, u32),
    /// This agent's (agent, skill) pairs: `pairs[start..end]`.
    pub(crate) pairs: (u32, u32),
}

/// An agent in a pool.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memb {
    pub(crate) agent: u32,
    pub(crate) pool: u32,
    pub(crate) pair: u32,
}

/// The hidden truth of one agent on one skill.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PairSpec {
    pub(crate) agent: u32,
    pub(crate) skill: u16,
    pub(crate) base: f64,
    pub(crate) drift: Drift,
}

/// An agent starting or ending a shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ShiftEvent {
    pub(crate) t: u32,
    /// Ends sort after starts at the same instant.
    pub(crate) end: bool,
    pub(crate) agent: u32,
}

#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) seed: u64,
    /// The first simulated day (days since 1970-01-01).
    pub(crate) first_day: i64,
    pub(crate) config: TwinConfig,
    pub(crate) queues: Vec<QueueSpec>,
    pub(crate) pools: Vec<PoolSpec>,
    pub(crate) agents: Vec<AgentSpec>,
    /// Org user index → agent index, or [`NO_AGENT`].
    pub(crate) agent_of_user: Vec<u32>,
    pub(crate) memb: Vec<Memb>,
    pub(crate) pairs: Vec<PairSpec>,
    /// Shift events of a weekday (0) and a weekend day (1), in time order.
    pub(crate) shift_events: [Vec<ShiftEvent>; 2],
    /// Arrivals per ms of each pool in each slot (`slot * pools + pool`), by day type,
    /// before the day's volume factor.
    pub(crate) rates: [Vec<f64>; 2],
    /// Starting skills and proficiencies of every agent, active then inactive.
    pub(crate) holdings: Vec<Vec<(u16, f64)>>,
    /// σ of the log-normal handle time.
    pub(crate) sigma: f64,
}

/// Monday = 0 … Sunday = 6, for a day number counted from 1970-01-01 (a Thursday).
pub(crate) fn is_weekend(day: i64) -> bool {
    (day + 3).rem_euclid(7) >= 5
}

/// A supervisor's rating of an agent of ability `ability`: in stars, mostly whole or half
/// numbers; a share of them stale (set long ago, or by guesswork).
fn rating(r: &mut Rng, ability: f64, config: &TwinConfig) -> f64 {
    let spread = if r.unit() < config.stale_share {
        1.5
    } else {
        config.rating_noise
    };
    let raw = (2.5 + ability + spread * r.gaussian()).clamp(0.0, 5.0);
    as_set_by_hand(r, raw)
}

/// Shares rounded to whole queues (largest remainder), as a method per queue position.
fn methods(mix: MethodMix, queues: usize, r: &mut Rng) -> Vec<EvalMethod> {
    let kinds = [
        (EvalMethod::Best, mix.best),
        (EvalMethod::None, mix.none),
        (EvalMethod::All, mix.all),
    ];
    let total: f64 = kinds.iter().map(|k| k.1).sum();
    let exact: Vec<f64> = kinds.iter().map(|k| k.1 / total * queues as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..kinds.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    let mut i = 0;
    while counts.iter().sum::<usize>() < queues {
        counts[order[i % order.len()]] += 1;
        i += 1;
    }
    let mut out: Vec<EvalMethod> = kinds
        .iter()
        .zip(&counts)
        .flat_map(|(k, &n)| std::iter::repeat_n(k.0, n))
        .collect();
    shuffle(&mut out, r);
    out
}

fn shuffle<T>(v: &mut [T], r: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = r.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// The skills queue `q` requests: a primary and (with two skills or more) a secondary, so
/// that every skill is requested on queues of different difficulty.
fn queue_skills(q: usize, skills: usize) -> Vec<(u16, f64)> {
    let primary = q % skills;
    if skills < 2 {
        return vec![(primary as u16, 1.0)];
    }
    let mut secondary = (q + skills / 2 + q / skills) % skills;
    if secondary == primary {
        secondary = (primary + 1) % skills;
    }
    vec![
        (primary as u16, PRIMARY_SHARE),
        (secondary as u16, 1.0 - PRIMARY_SHARE),
    ]
}

/// Arrival intensity relative to the staffing at minute-of-day `t_ms`.
fn profile(t_ms: f64) -> f64 {
    let hours = t_ms / 3_600_000.0;
    1.0 + PROFILE_AMPLITUDE * (std::f64::consts::TAU * (hours - 9.0) / 6.0).sin()
}

/// Ranks (0-based, ties broken by index) of `v`.
fn ranks(v: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]).then(a.cmp(&b)));
    let mut rank = vec![0; v.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    rank
}

impl Layout {
    /// Draws the twin for `agents` active agents (user `first_agent_user + a` is agent `a`)
    /// and `inactive` inactive ones, with `skills` skills, starting on `first_day`.
    pub(crate) fn generate(
        seed: u64,
        agents: usize,
        inactive: usize,
        first_agent_user: usize,
        skills: usize,
        first_day: i64,
        config: &TwinConfig,
    ) -> Layout {
        let skills = skills.max(1);
        let nq = config.queues.max(1);
        let mut r = Rng::keyed(&[seed, domain::TWIN_LAYOUT]);

        // Queues, from the easiest to the hardest.
        let mut names: Vec<String> = (0..nq)
            .map(|q| {
                QUEUE_NAMES
                    .get(q)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| format!("Queue {:02}", q + 1))
            })
            .collect();
        shuffle(&mut names, &mut r);
        let method_of = methods(config.method_mix, nq, &mut r);
        let (lo, hi) = (DIFFICULTY_RANGE.0.ln(), DIFFICULTY_RANGE.1.ln());
        let mut queues: Vec<QueueSpec> = (0..nq)
            .map(|q| {
                let x = if nq == 1 {
                    0.0
                } else {
                    lo + (hi - lo) * q as f64 / (nq - 1) as f64
                };
                let handle_mult = if nq == 1 { 1.0 } else { x.exp() };
                QueueSpec {
                    name: names[q].clone(),
                    method: method_of[q],
                    handle_mult,
                    transfer_mult: handle_mult.powf(TRANSFER_ELASTICITY),
                    skills: queue_skills(q, skills),
                    members: Vec::new(),
                }
            })
            .collect();
        let base_handle_ms: Vec<f64> = (0..skills)
            .map(|_| r.range(BASE_HANDLE_SECS.0, BASE_HANDLE_SECS.1) * 1000.0)
            .collect();

        // Agents: general ability, placement, shifts.
        let mut truth = Rng::keyed(&[seed, domain::TWIN_TRUTH]);
        let general: Vec<f64> = (0..agents).map(|_| truth.gaussian()).collect();
        let w = config.placement;
        let placement: Vec<f64> = general
            .iter()
            .map(|g| w * g + (1.0 - w * w).max(0.0).sqrt() * r.gaussian())
            .collect();
        let weights: Vec<f64> = (0..nq).map(|_| r.range(0.7, 1.3)).collect();
        let total_w: f64 = weights.iter().sum();
        // Cumulative cut points of the placement ranks: the lowest go to queue 0.
        let mut home = vec![0usize; agents];
        let rank = ranks(&placement);
        let mut cuts = Vec::with_capacity(nq);
        let mut acc = 0.0;
        for wq in &weights {
            acc += wq / total_w;
            cuts.push((acc * agents as f64).round() as usize);
        }
        for (a, &rk) in rank.iter().enumerate() {
            home[a] = cuts.iter().position(|&c| rk < c).unwrap_or(nq - 1);
        }
        let mut agent_queues: Vec<Vec<usize>> = home.iter().map(|&q| vec![q]).collect();
        if nq > 1 {
            for qs in agent_queues.iter_mut() {
                if r.unit() < config.multi_queue_share {
                    let q = qs[0];
                    let other = if q == 0 || (q + 1 < nq && r.unit() < 0.5) {
                        q + 1
                    } else {
                        q - 1
                    };
                    qs.push(other);
                }
            }
        }
        let start_total: f64 = SHIFT_STARTS.iter().map(|s| s.1).sum();

        // Pools: one per (queue, requested skill).
        let mut pools = Vec::new();
        let mut pool_of: Vec<Vec<u32>> = Vec::with_capacity(nq);
        for (q, spec) in queues.iter().enumerate() {
            let mut ids = Vec::new();
            for &(s, _) in &spec.skills {
                ids.push(pools.len() as u32);
                pools.push(PoolSpec {
                    queue: q as u16,
                    skill: s,
                    method: spec.method,
                    handle_ms: base_handle_ms[s as usize] * spec.handle_mult,
                    transfer: TRANSFER_BASE * spec.transfer_mult,
                });
            }
            pool_of.push(ids);
        }

        let mut agent_specs = Vec::with_capacity(agents);
        let mut memb = Vec::new();
        let mut pairs = Vec::new();
        let mut holdings = Vec::with_capacity(agents + inactive);
        let mut agent_of_user = vec![NO_AGENT; first_agent_user + agents + inactive];
        for a in 0..agents {
            let mut skills_held: Vec<u16> = agent_queues[a]
                .iter()
                .flat_map(|&q| queues[q].skills.iter().map(|s| s.0))
                .collect();
            skills_held.sort_unstable();
            skills_held.dedup();
            let mut rate = Rng::keyed(&[seed, domain::TWIN_RATING, a as u64]);
            let mut tr = Rng::keyed(&[seed, domain::TWIN_TRUTH, a as u64]);
            let drift = if tr.unit() < config.new_hire_share {
                Drift::Learning {
                    depth: tr.range(0.8, 1.6),
                    tau: tr.range(10.0, 30.0),
                    lag: tr.range(0.0, 10.0),
                }
            } else if tr.unit() < config.drift_share / (1.0 - config.new_hire_share).max(1e-9) {
                let size = tr.range(0.3, 0.8) / 56.0;
                Drift::Trend {
                    per_day: if tr.unit() < 0.5 { -size } else { size },
                }
            } else {
                Drift::Steady
            };
            let pair_start = pairs.len() as u32;
            let mut held = Vec::with_capacity(skills_held.len());
            for &s in &skills_held {
                let base = SKILL_ON_GENERAL * general[a]
                    + (1.0 - SKILL_ON_GENERAL * SKILL_ON_GENERAL).sqrt() * tr.gaussian();
                pairs.push(PairSpec {
                    agent: a as u32,
                    skill: s,
                    base,
                    drift,
                });
                held.push((s, rating(&mut rate, base + drift.offset(0), config)));
            }
            let memb_start = memb.len() as u32;
            for &q in &agent_queues[a] {
                queues[q].members.push(a as u32);
                for (k, &(s, _)) in queues[q].skills.iter().enumerate() {
                    let pair =
                        pair_start + skills_held.iter().position(|&x| x == s).unwrap_or(0) as u32;
                    memb.push(Memb {
                        agent: a as u32,
                        pool: pool_of[q][k],
                        pair,
                    });
                }
            }
            let mut pick = r.unit() * start_total;
            let start = SHIFT_STARTS
                .iter()
                .find(|s| {
                    pick -= s.1;
                    pick < 0.0
                })
                .map_or(SHIFT_STARTS[0].0, |s| s.0);
            let user = (first_agent_user + a) as u32;
            agent_of_user[user as usize] = a as u32;
            agent_specs.push(AgentSpec {
                user,
                shift: (
                    start as u32 * SLOT_MS,
                    (start + SHIFT_SLOTS) as u32 * SLOT_MS,
                ),
                weekends: r.unit() < config.weekend_staff_share,
                memb: (memb_start, memb.len() as u32),
                pairs: (pair_start, pairs.len() as u32),
            });
            holdings.push(held);
        }
        // Inactive agents still hold the skills of some queue (they never take calls).
        for i in 0..inactive {
            let mut rate = Rng::keyed(&[seed, domain::TWIN_RATING, (agents + i) as u64]);
            let q = rate.below(nq as u64) as usize;
            let ability = rate.gaussian();
            let mut held: Vec<(u16, f64)> = Vec::new();
            for &(s, _) in &queues[q].skills {
                held.push((s, rating(&mut rate, ability, config)));
            }
            holdings.push(held);
        }

        let mut layout = Layout {
            seed,
            first_day,
            config: config.clone(),
            queues,
            pools,
            agents: agent_specs,
            agent_of_user,
            memb,
            pairs,
            shift_events: [Vec::new(), Vec::new()],
            rates: [Vec::new(), Vec::new()],
            holdings,
            sigma: (1.0 + config.handle_cv * config.handle_cv).ln().sqrt(),
        };
        layout.plan_days();
        layout
    }

    /// Shift events and arrival rates per day type. Arrival rates are set so that the
    /// offered work is `load` times the staffed time of each queue, slot by slot, times the
    /// intraday wiggle: the staffing plan and the forecast agree, as a workforce planner
    /// would make them.
    fn plan_days(&mut self) {
        let np = self.pools.len();
        let alert_ms = (ALERT_SECS.0 + ALERT_SECS.1) / 2.0 * 1000.0;
        // Expected busy time per interaction on each queue, over its members' abilities.
        let busy_ms: Vec<f64> = self
            .queues
            .iter()
            .enumerate()
            .map(|(q, spec)| {
                let mut total = 0.0;
                for &(skill, share) in &spec.skills {
                    let pool = self
                        .pools
                        .iter()
                        .find(|p| p.queue as usize == q && p.skill == skill);
                    let Some(pool) = pool else { continue };
                    let speed: Vec<f64> = spec
                        .members
                        .iter()
                        .filter_map(|&a| self.pair_of(a, skill))
                        .map(|p| {
                            let pair = &self.pairs[p as usize];
                            (-ABILITY_ON_HANDLE * (pair.base + pair.drift.offset(0))).exp()
                        })
                        .collect();
                    let mean_speed = if speed.is_empty() {
                        1.0
                    } else {
                        speed.iter().sum::<f64>() / speed.len() as f64
                    };
                    total += share * pool.handle_ms * mean_speed;
                }
                total + alert_ms
            })
            .collect();
        for weekend in [false, true] {
            let k = usize::from(weekend);
            let mut coverage = vec![0.0f64; SLOTS * self.queues.len()];
            let mut events = Vec::new();
            for (a, spec) in self.agents.iter().enumerate() {
                if weekend && !spec.weekends {
                    continue;
                }
                events.push(ShiftEvent {
                    t: spec.shift.0,
                    end: false,
                    agent: a as u32,
                });
                events.push(ShiftEvent {
                    t: spec.shift.1,
                    end: true,
                    agent: a as u32,
                });
                let queues: Vec<u16> = {
                    let mut qs: Vec<u16> = (spec.memb.0..spec.memb.1)
                        .map(|m| self.pools[self.memb[m as usize].pool as usize].queue)
                        .collect();
                    qs.dedup();
                    qs
                };
                let weight = 1.0 / queues.len().max(1) as f64;
                let (s0, s1) = (
                    (spec.shift.0 / SLOT_MS) as usize,
                    (spec.shift.1 / SLOT_MS) as usize,
                );
                for slot in s0..s1.min(SLOTS) {
                    for &q in &queues {
                        coverage[q as usize * SLOTS + slot] += weight;
                    }
                }
            }
            events.sort_unstable();
            let mut rates = vec![0.0f64; SLOTS * np];
            for slot in 0..SLOTS {
                let mid = (slot as f64 + 0.5) * SLOT_MS as f64;
                for (p, pool) in self.pools.iter().enumerate() {
                    let q = pool.queue as usize;
                    let share = self.queues[q]
                        .skills
                        .iter()
                        .find(|s| s.0 == pool.skill)
                        .map_or(0.0, |s| s.1);
                    rates[slot * np + p] = self.config.load * coverage[q * SLOTS + slot] * share
                        / busy_ms[q]
                        * profile(mid);
                }
            }
            self.shift_events[k] = events;
            self.rates[k] = rates;
        }
    }

    /// The pair (truth entry) of agent `a` on `skill`.
    pub(crate) fn pair_of(&self, a: u32, skill: u16) -> Option<u32> {
        let spec = self.agents.get(a as usize)?;
        (spec.pairs.0..spec.pairs.1).find(|&p| self.pairs[p as usize].skill == skill)
    }

    /// The true ability of pair `p` on day `day`.
    pub(crate) fn ability(&self, p: usize, day: i64) -> f64 {
        let pair = &self.pairs[p];
        pair.base + pair.drift.offset(day - self.first_day)
    }

    /// Spearman's rank correlation, over memberships, between the agent's ability on the
    /// skill (on `day`) and the handle-time multiplier of the queue: the placement confound.
    pub(crate) fn placement_correlation(&self, day: i64) -> f64 {
        let (mut ability, mut difficulty) = (Vec::new(), Vec::new());
        for m in &self.memb {
            let q = self.pools[m.pool as usize].queue as usize;
            ability.push(self.ability(m.pair as usize, day));
            difficulty.push(self.queues[q].handle_mult);
        }
        spearman(&ability, &difficulty)
    }
}

/// Spearman's rank correlation (ties broken by position; fine for continuous data and
/// for the few ties of queue difficulties, which it slightly understates).
pub(crate) fn spearman(x: &[f64], y: &[f64]) -> f64 {
    let (rx, ry) = (ranks(x), ranks(y));
    let n = x.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean = (n - 1.0) / 2.0;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        let (da, db) = (*a as f64 - mean, *b as f64 - mean);
        sxy += da * db;
        sxx += da * da;
        syy += db * db;
    }
    sxy / (sxx * syy).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(agents: usize, config: &TwinConfig) -> Layout {
        Layout::generate(7, agents, 4, 10, 6, 20_000, config)
    }

    #[test]
    fn queues_span_the_difficulties_and_every_skill_meets_several() {
        let l = layout(400, &TwinConfig::default());
        assert_eq!(l.queues.len(), 8);
        let mults: Vec<f64> = l.queues.iter().map(|q| q.handle_mult).collect();
        assert!((mults[0] - 0.75).abs() < 1e-9 && (mults[7] - 1.45).abs() < 1e-9);
        assert!(mults.windows(2).all(|w| w[0] < w[1]));
        for s in 0..6u16 {
            let on: Vec<usize> = (0..8)
                .filter(|&q| l.queues[q].skills.iter().any(|k| k.0 == s))
                .collect();
            assert!(on.len() >= 2, "skill {s} on {on:?}");
            assert!(on[on.len() - 1] - on[0] >= 3, "skill {s} on {on:?}");
        }
        let best = l.queues.iter().filter(|q| q.method == EvalMethod::Best);
        assert_eq!(best.count(), 6);
        assert_eq!(l.holdings.len(), 404);
        assert_eq!(l.agent_of_user[10], 0);
        assert_eq!(l.agent_of_user[9], NO_AGENT);
    }

    /// Stronger agents are more often on harder queues: the rank correlation between an
    /// agent's ability on a skill and the difficulty of the queue where they use it is about
    /// 0.5 at the default placement weight.
    #[test]
    fn placement_is_confounded_with_ability() {
        let l = layout(3_000, &TwinConfig::default());
        let rho = l.placement_correlation(l.first_day);
        assert!((0.42..=0.58).contains(&rho), "{rho}");
        let random = layout(
            3_000,
            &TwinConfig {
                placement: 0.0,
                ..TwinConfig::default()
            },
        );
        let rho = random.placement_correlation(random.first_day);
        assert!(rho.abs() < 0.08, "{rho}");
    }

    #[test]
    fn drift_shapes() {
        let learning = Drift::Learning {
            depth: 1.0,
            tau: 10.0,
            lag: 0.0,
        };
        assert!((learning.offset(0) + 1.0).abs() < 1e-9);
        assert!(learning.offset(30) > -0.06 && learning.offset(30) > learning.offset(10));
        assert!((Drift::Trend { per_day: 0.01 }.offset(56) - 0.56).abs() < 1e-9);
        assert_eq!(Drift::Steady.offset(99), 0.0);
    }

    #[test]
    fn rates_follow_the_staffing() {
        let l = layout(500, &TwinConfig::default());
        let np = l.pools.len();
        let at =
            |k: usize, slot: usize| -> f64 { (0..np).map(|p| l.rates[k][slot * np + p]).sum() };
        // Nobody works at 03:00; at 11:00 most do; weekends are thinner.
        assert_eq!(at(0, 12), 0.0);
        assert!(at(0, 44) > 0.0);
        assert!(at(1, 44) < at(0, 44) * 0.6);
        // Offered work ≈ load × staffed time over a weekday.
        let arrivals: f64 = (0..SLOTS).map(|s| at(0, s) * SLOT_MS as f64).sum();
        assert!(
            arrivals > 500.0 * 30.0 && arrivals < 500.0 * 80.0,
            "{arrivals}"
        );
    }
}
