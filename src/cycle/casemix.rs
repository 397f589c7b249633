//! Case mix: what each skill's work on each queue demands of the average agent, so an agent
//! is scored against the work they were given rather than against one absolute ramp.
//!
//! Why not simply each queue's mean handle time: queue membership is not random — stronger
//! agents are usually put on the harder queues — so a queue's mean mixes how hard its work is
//! with how good its people are, and comparing an agent with their queue's mean compares them
//! with their peers: a good agent among the best looks average, and the demotions land on the
//! hard queues again.
//!
//! The model is multiplicative, with an effect per agent and one per pool (skill × queue):
//! an agent's mean handle time on a pool is `ȳ_ap ≈ θ_a · e_p` (the same for transfers per
//! interaction), fitted by Poisson maximum likelihood over the agents' cells, each cell
//! counting once (see [`fit`] for why not by its interactions). At the fit each effect is the
//! ratio estimate given the others:
//!
//! - `θ_a = Σ_p ȳ_ap ÷ Σ_p e_p` (the agent's pace over their work),
//! - `e_p = Σ_a ȳ_ap ÷ Σ_a θ_a` (the pool's demand, given who did it).
//!
//! Agents who work on several queues tie the queues' levels together; within each connected
//! group of pools the scale is fixed so that the interaction-weighted mean pace is 1: `e_p` is
//! then what the group's average agent needs on `p`. A pool no agent shares with another
//! keeps its own mean (nothing else can be known about it). How precisely a queue's level is
//! known depends on how many agents link it to others: with one agent in five on a second
//! queue (the twin's default), a queue at the end of a chain of eight is off by a few percent,
//! which moves that queue's scores by a few hundredths; absolute ramps move them by far more,
//! and always the same way. The scorer then compares each agent's own numbers on a skill with
//! `Σ_q n_q · e_q` over the queues they worked.

use crate::org::{Agent, QueueIx, SkillIx, Snapshot};
use serde::Serialize;
use std::collections::HashMap;

/// Most Newton steps of the fit (it settles in a handful).
const NEWTON_STEPS: usize = 50;
/// The fit has settled when every pool's work is matched to this share of it.
const TOLERANCE: f64 = 1e-9;

/// What one skill on one queue demands of the average agent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PoolDemand {
    pub skill: SkillIx,
    /// [`NO_QUEUE`] for conversations analytics gave no queue.
    pub queue: QueueIx,
    /// Interactions behind it.
    pub handled: u64,
    /// Expected handle time of one interaction, ms.
    pub handle_ms: f64,
    /// Expected transfers per interaction.
    pub transfer_rate: f64,
    /// The pool's plain mean handle time, ms (for comparison with `handle_ms`).
    pub mean_handle_ms: f64,
}

/// What one agent's work on one skill was expected to take, over the queues they worked.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Expected {
    pub handled: u64,
    /// `Σ_q n_q · e_q`, ms.
    pub handle_ms: f64,
    /// `Σ_q n_q · t_q`.
    pub transfers: f64,
}

/// The fitted demands of every pool of a snapshot.
#[derive(Debug, Clone, Default)]
pub struct CaseMix {
    pub pools: Vec<PoolDemand>,
    index: HashMap<(SkillIx, QueueIx), u32>,
}

/// One agent's cells as the fit reads them: pool, interactions, handle ms, transfers.
type Cell = (u32, f64, f64, f64);
/// A cell as the likelihood weighs it: pool, weight, weight × the cell's mean.
type Weighted = (u32, f64, f64);

impl CaseMix {
    /// Fits the model to every in-scope agent's work in the snapshot.
    pub fn estimate(snapshot: &Snapshot) -> CaseMix {
        let mut index: HashMap<(SkillIx, QueueIx), u32> = HashMap::new();
        let mut keys: Vec<(SkillIx, QueueIx)> = Vec::new();
        let mut starts: Vec<usize> = Vec::with_capacity(snapshot.agents.len() + 1);
        let mut cells: Vec<Cell> = Vec::new();
        for agent in &snapshot.agents {
            starts.push(cells.len());
            for_each_cell(agent, |skill, queue, n, handle_ms, transfers| {
                let pool = *index.entry((skill, queue)).or_insert_with(|| {
                    keys.push((skill, queue));
                    (keys.len() - 1) as u32
                });
                cells.push((pool, n, handle_ms, transfers));
            });
        }
        starts.push(cells.len());
        let groups = connected_pools(&starts, &cells, keys.len());
        let handle = fit(&starts, &cells, keys.len(), &groups, |c| c.2);
        let transfer = fit(&starts, &cells, keys.len(), &groups, |c| c.3);
        let mut handled = vec![0f64; keys.len()];
        let mut handle_sum = vec![0f64; keys.len()];
        for &(pool, n, ms, _) in &cells {
            handled[pool as usize] += n;
            handle_sum[pool as usize] += ms;
        }
        let pools = keys
            .iter()
            .enumerate()
            .map(|(p, &(skill, queue))| PoolDemand {
                skill,
                queue,
                handled: handled[p] as u64,
                handle_ms: handle[p],
                transfer_rate: transfer[p],
                mean_handle_ms: if handled[p] > 0.0 {
                    handle_sum[p] / handled[p]
                } else {
                    0.0
                },
            })
            .collect();
        CaseMix { pools, index }
    }

    /// The demand of one skill on one queue, if anyone worked it.
    pub fn pool(&self, skill: SkillIx, queue: QueueIx) -> Option<&PoolDemand> {
        self.index
            .get(&(skill, queue))
            .and_then(|&p| self.pools.get(p as usize))
    }

    /// What `agent`'s work on `skill` was expected to take; `None` without work on it.
    pub fn expected(&self, agent: &Agent, skill: SkillIx) -> Option<Expected> {
        let mut out = Expected::default();
        for_each_cell(agent, |s, queue, n, _, _| {
            if s != skill {
                return;
            }
            if let Some(pool) = self.pool(s, queue) {
                out.handled += n as u64;
                out.handle_ms += n * pool.handle_ms;
                out.transfers += n * pool.transfer_rate;
            }
        });
        (out.handled > 0).then_some(out)
    }
}

/// Calls `f(skill, queue, interactions, handle ms, transfers)` for each of the agent's cells
/// (work that named no queue is its own queue-less cell).
fn for_each_cell(agent: &Agent, mut f: impl FnMut(SkillIx, QueueIx, f64, f64, f64)) {
    for cell in &agent.cells {
        if cell.handled > 0 {
            f(
                cell.skill,
                cell.queue,
                f64::from(cell.handled),
                cell.handle_ms,
                f64::from(cell.transferred.unwrap_or(0)),
            );
        }
    }
}

/// The connected group of each pool: pools an agent worked in together are one group.
fn connected_pools(starts: &[usize], cells: &[Cell], pools: usize) -> Vec<u32> {
    let mut parent: Vec<u32> = (0..pools as u32).collect();
    fn root(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            let up = parent[parent[x as usize] as usize];
            parent[x as usize] = up;
            x = up;
        }
        x
    }
    for w in starts.windows(2) {
        let mine = &cells[w[0]..w[1]];
        if let Some(&(first, ..)) = mine.first() {
            for &(other, ..) in &mine[1..] {
                let (a, b) = (root(&mut parent, first), root(&mut parent, other));
                if a != b {
                    parent[a as usize] = b;
                }
            }
        }
    }
    (0..pools as u32).map(|p| root(&mut parent, p)).collect()
}

/// The maximum-likelihood fit of `ȳ_ap ≈ θ_agent · e_pool` (Poisson on the cells' means,
/// agent effects profiled out); returns `e` per pool, scaled so that each connected group's
/// interaction-weighted mean `θ` is 1.
///
/// With `θ_a = Y_a ÷ D_a` (`Y_a = Σ_p ȳ_ap`, `D_a = Σ_p e_p` over the agent's cells) the
/// log-likelihood in `β = ln e` is `Σ_p y_p β_p − Σ_a Y_a ln D_a` (`y_p = Σ_a ȳ_ap`):
/// concave, its gradient `F_p = y_p − e_p Σ_a θ_a` and its negative Hessian a weighted graph
/// Laplacian over the pools (weight of `p–r`: `Σ_a Y_a e_p e_r ÷ D_a²` over the agents who
/// work both). Newton steps solve that Laplacian system by conjugate gradients. (Alternating
/// the two ratio estimates reaches the same point, but where few agents link two queues it
/// takes thousands of passes.)
fn fit(
    starts: &[usize],
    cells: &[Cell],
    pools: usize,
    groups: &[u32],
    y: impl Fn(&Cell) -> f64,
) -> Vec<f64> {
    // Each agent's cell counts once, with its mean, not by its interactions: routing by
    // proficiency gives an agent more of the work they are better at (on a second queue they
    // are picked mostly for the skills where they outrank its agents), so interaction counts
    // follow skill-by-skill strengths, and weighting by them credits each queue with the work
    // its agents were picked for. On the twin, interaction weights left the hardest queues'
    // agents 0.03 lower on average at equal ability; one weight per cell, 0.00.
    let weighted: Vec<Weighted> = cells.iter().map(|c| (c.0, 1.0, y(c) / c.1)).collect();
    let mut y_pool = vec![0f64; pools];
    let mut n_pool = vec![0f64; pools];
    for c in &weighted {
        y_pool[c.0 as usize] += c.2;
        n_pool[c.0 as usize] += c.1;
    }
    // A pool without any `y` (no transfers at all) expects none: it stays out of the fit.
    let active: Vec<bool> = (0..pools).map(|p| y_pool[p] > 0.0).collect();
    let mut beta: Vec<f64> = (0..pools)
        .map(|p| {
            if active[p] {
                (y_pool[p] / n_pool[p]).ln()
            } else {
                0.0
            }
        })
        .collect();
    let agents: Vec<&[Weighted]> = starts.windows(2).map(|w| &weighted[w[0]..w[1]]).collect();
    let totals: Vec<f64> = agents
        .iter()
        .map(|mine| mine.iter().map(|c| c.2).sum())
        .collect();
    let denominators = |beta: &[f64]| -> Vec<f64> {
        agents
            .iter()
            .map(|mine| {
                mine.iter()
                    .filter(|c| active[c.0 as usize])
                    .map(|c| c.1 * beta[c.0 as usize].exp())
                    .sum()
            })
            .collect()
    };
    let likelihood = |beta: &[f64], d: &[f64]| -> f64 {
        let pools: f64 = (0..beta.len())
            .filter(|&p| active[p])
            .map(|p| y_pool[p] * beta[p])
            .sum();
        let agents: f64 = totals
            .iter()
            .zip(d)
            .filter(|(t, d)| **t > 0.0 && **d > 0.0)
            .map(|(t, d)| t * d.ln())
            .sum();
        pools - agents
    };
    let mut d = denominators(&beta);
    let mut current = likelihood(&beta, &d);
    for _ in 0..NEWTON_STEPS {
        let e: Vec<f64> = beta.iter().map(|b| b.exp()).collect();
        let mut gradient: Vec<f64> = (0..pools)
            .map(|p| if active[p] { y_pool[p] } else { 0.0 })
            .collect();
        let mut diagonal = vec![0f64; pools];
        let mut weights: HashMap<(u32, u32), f64> = HashMap::new();
        let mut live: Vec<(u32, f64)> = Vec::new();
        for ((mine, &total), &da) in agents.iter().zip(&totals).zip(&d) {
            if total <= 0.0 || da <= 0.0 {
                continue;
            }
            live.clear();
            live.extend(
                mine.iter()
                    .filter(|c| active[c.0 as usize])
                    .map(|c| (c.0, c.1 * e[c.0 as usize])),
            );
            for (i, &(p, ne)) in live.iter().enumerate() {
                gradient[p as usize] -= ne * total / da;
                for &(r, nr) in &live[i + 1..] {
                    let w = total * ne * nr / (da * da);
                    diagonal[p as usize] += w;
                    diagonal[r as usize] += w;
                    *weights.entry((p.min(r), p.max(r))).or_insert(0.0) += w;
                }
            }
        }
        let settled = (0..pools)
            .filter(|&p| active[p])
            .all(|p| gradient[p].abs() <= TOLERANCE * y_pool[p]);
        if settled {
            break;
        }
        let edges: Vec<(u32, u32, f64)> =
            weights.into_iter().map(|((p, r), w)| (p, r, w)).collect();
        let step = solve_laplacian(&diagonal, &edges, &gradient);
        // Backtracking: the likelihood is concave, so a shorter step always helps.
        let mut t = 1.0;
        let mut improved = false;
        for _ in 0..30 {
            let trial: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b + t * s).collect();
            let trial_d = denominators(&trial);
            let value = likelihood(&trial, &trial_d);
            if value >= current {
                beta = trial;
                d = trial_d;
                current = value;
                improved = true;
                break;
            }
            t /= 2.0;
        }
        if !improved {
            break;
        }
    }
    // Each group's scale: the interaction-weighted mean θ is 1.
    let mut e: Vec<f64> = (0..pools)
        .map(|p| if active[p] { beta[p].exp() } else { 0.0 })
        .collect();
    let mut scale: HashMap<u32, (f64, f64)> = HashMap::new();
    for w in starts.windows(2) {
        let mine = &cells[w[0]..w[1]];
        let Some(first) = mine.first() else {
            continue;
        };
        let n: f64 = mine.iter().map(|c| c.1).sum();
        let expected: f64 = mine.iter().map(|c| c.1 * e[c.0 as usize]).sum();
        let theta = if expected > 0.0 {
            mine.iter().map(&y).sum::<f64>() / expected
        } else {
            0.0
        };
        let s = scale.entry(groups[first.0 as usize]).or_insert((0.0, 0.0));
        s.0 += n * theta;
        s.1 += n;
    }
    for (p, value) in e.iter_mut().enumerate() {
        if let Some(&(weighted, n)) = scale.get(&groups[p]) {
            if weighted > 0.0 && n > 0.0 {
                *value *= weighted / n;
            }
        }
    }
    e
}

/// Solves `L x = b` for the graph Laplacian `L` (its diagonal and its edges' weights) by
/// Jacobi-preconditioned conjugate gradients; `b` sums to zero over each connected group,
/// so a solution exists. Pools with no edge get 0.
fn solve_laplacian(diagonal: &[f64], edges: &[(u32, u32, f64)], b: &[f64]) -> Vec<f64> {
    let n = b.len();
    let apply = |x: &[f64]| -> Vec<f64> {
        let mut out: Vec<f64> = x.iter().zip(diagonal).map(|(x, d)| x * d).collect();
        for &(p, r, w) in edges {
            out[p as usize] -= w * x[r as usize];
            out[r as usize] -= w * x[p as usize];
        }
        out
    };
    let precondition = |r: &[f64]| -> Vec<f64> {
        r.iter()
            .zip(diagonal)
            .map(|(r, d)| if *d > 0.0 { r / d } else { 0.0 })
            .collect()
    };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
    let mut x = vec![0f64; n];
    let mut r: Vec<f64> = b
        .iter()
        .zip(diagonal)
        .map(|(b, d)| if *d > 0.0 { *b } else { 0.0 })
        .collect();
    let mut z = precondition(&r);
    let mut p = z.clone();
    let mut rz = dot(&r, &z);
    let goal = dot(&r, &r) * 1e-24;
    for _ in 0..(10 * n).max(50) {
        if dot(&r, &r) <= goal || rz <= 0.0 {
            break;
        }
        let lp = apply(&p);
        let curvature = dot(&p, &lp);
        if curvature <= 0.0 {
            break;
        }
        let alpha = rz / curvature;
        for i in 0..n {
            x[i] += alpha * p[i];
            r[i] -= alpha * lp[i];
        }
        z = precondition(&r);
        let next = dot(&r, &z);
        let beta = next / rz;
        rz = next;
        for i in 0..n {
            p[i] = z[i] + beta * p[i];
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::{PairMetrics, QueueCell, Skill, NO_QUEUE};

    fn cell(queue: QueueIx, handled: u32, aht_secs: f64, transferred: u32) -> QueueCell {
        QueueCell {
            skill: 0,
            queue,
            handled,
            transferred: Some(transferred),
            handle_ms: f64::from(handled) * aht_secs * 1000.0,
        }
    }

    fn agent(i: usize, cells: Vec<QueueCell>) -> Agent {
        Agent {
            id: format!("a{i}"),
            name: format!("Agent {i}"),
            manager_id: None,
            skills: vec![(0, 2.5)],
            cells,
            quality: None,
            csat: None,
        }
    }

    fn snapshot(agents: Vec<Agent>) -> Snapshot {
        Snapshot {
            skills: vec![Skill {
                id: "s".into(),
                name: "S".into(),
            }],
            tunable: vec![true],
            agents,
            ..Snapshot::default()
        }
    }

    /// Queue 1's work takes 1.5 × queue 0's, and its agents are faster (pace 0.8 against
    /// 1.2). Some agents work both. Without noise the fit recovers the truth exactly, where
    /// the queues' plain means (1.2 × 400 s and 0.8 × 600 s, both 480 s) hide it.
    #[test]
    fn the_fit_separates_the_work_from_the_people_who_do_it() {
        let mut agents = Vec::new();
        for i in 0..10 {
            agents.push(agent(i, vec![cell(0, 100, 1.2 * 400.0, 0)]));
            agents.push(agent(100 + i, vec![cell(1, 100, 0.8 * 600.0, 0)]));
        }
        agents.push(agent(
            200,
            vec![cell(0, 50, 400.0, 0), cell(1, 50, 600.0, 0)],
        ));
        agents.push(agent(
            201,
            vec![cell(0, 50, 0.9 * 400.0, 0), cell(1, 50, 0.9 * 600.0, 0)],
        ));
        let fit = CaseMix::estimate(&snapshot(agents));
        let (easy, hard) = (fit.pool(0, 0).unwrap(), fit.pool(0, 1).unwrap());
        let plain = hard.mean_handle_ms / easy.mean_handle_ms;
        assert!(plain < 1.1, "{plain}");
        let ratio = hard.handle_ms / easy.handle_ms;
        assert!((ratio - 1.5).abs() < 1e-4, "{ratio}");
        // The scale is the average agent's: paces 1.2, 0.8, 1.0 and 0.9 over 1 000, 1 000,
        // 100 and 100 interactions average 2 190 / 2 200.
        let expected = 400_000.0 * 2190.0 / 2200.0;
        assert!(
            (easy.handle_ms - expected).abs() < 1e-3 * expected,
            "{easy:?}"
        );
    }

    #[test]
    fn a_pool_nobody_shares_keeps_its_own_mean() {
        let agents = vec![
            agent(0, vec![cell(0, 40, 300.0, 2)]),
            agent(1, vec![cell(0, 60, 500.0, 4)]),
            agent(2, vec![cell(1, 10, 900.0, 1)]),
        ];
        let fit = CaseMix::estimate(&snapshot(agents));
        let q0 = fit.pool(0, 0).unwrap();
        assert!((q0.handle_ms - q0.mean_handle_ms).abs() < 1e-6 * q0.mean_handle_ms);
        assert!((q0.transfer_rate - 0.06).abs() < 1e-9);
        assert!((fit.pool(0, 1).unwrap().handle_ms - 900_000.0).abs() < 1e-3);
    }

    #[test]
    fn totals_without_a_queue_breakdown_are_one_queueless_pool() {
        let a = agent(
            0,
            vec![QueueCell::new(
                0,
                NO_QUEUE,
                &PairMetrics {
                    handled: 10,
                    handle_ms: 10.0 * 300_000.0,
                    transferred: None,
                },
            )],
        );
        let fit = CaseMix::estimate(&snapshot(vec![a.clone()]));
        let pool = fit.pool(0, NO_QUEUE).unwrap();
        assert_eq!(pool.handled, 10);
        let e = fit.expected(&a, 0).unwrap();
        assert!((e.handle_ms - 10.0 * 300_000.0).abs() < 1e-3);
        assert_eq!(e.transfers, 0.0);
        assert!(fit.expected(&a, 1).is_none());
    }
}
