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
//! `E[handle ms of agent a on pool p] = n · θ_a · e_p` (the same for transfers). It is fitted
//! by alternating the two ratio estimates until they settle (the Poisson maximum-likelihood
//! fit of a two-way model; "zig-zag" or iterative proportional fitting):
//!
//! - `θ_a = Σ_p y_ap ÷ Σ_p n_ap · e_p` (the agent's pace over all their work),
//! - `e_p = Σ_a y_ap ÷ Σ_a n_ap · θ_a` (the pool's demand, given who did it).
//!
//! Agents who work on several queues tie the queues' levels together; within each connected
//! group of pools the scale is fixed so that the interaction-weighted mean `θ` is 1: `e_p` is
//! then what the group's average agent needs on `p`. A pool no agent shares with another
//! keeps its own mean (nothing else can be known about it). The scorer then compares each
//! agent's own numbers on a skill with `Σ_q n_q · e_q` over the queues they worked.

use crate::org::{Agent, PairMetrics, QueueIx, SkillIx, Snapshot, NO_QUEUE};
use serde::Serialize;
use std::collections::HashMap;

/// Most passes of the alternating fit (it stops earlier once no pool moves by 1e-7).
const MAX_PASSES: usize = 500;
/// Relative change of every pool's expectation below which the fit has settled.
const SETTLED: f64 = 1e-7;

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

/// Calls `f(skill, queue, interactions, handle ms, transfers)` for each of the agent's cells;
/// a skill with totals but no queue breakdown counts as one queue-less cell.
fn for_each_cell(agent: &Agent, mut f: impl FnMut(SkillIx, QueueIx, f64, f64, f64)) {
    for cell in &agent.cells {
        if cell.handled > 0 {
            f(
                cell.skill,
                cell.queue,
                f64::from(cell.handled),
                cell.handle_ms,
                f64::from(cell.transferred),
            );
        }
    }
    for (skill, m) in &agent.metrics {
        if m.handled > 0 && !agent.cells.iter().any(|c| c.skill == *skill) {
            let PairMetrics {
                handled,
                handle_ms,
                transferred,
            } = *m;
            f(
                *skill,
                NO_QUEUE,
                handled as f64,
                handle_ms,
                transferred.unwrap_or(0) as f64,
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

/// The alternating fit of `y ≈ n · θ_agent · e_pool`; returns `e` per pool.
fn fit(
    starts: &[usize],
    cells: &[Cell],
    pools: usize,
    groups: &[u32],
    y: impl Fn(&Cell) -> f64,
) -> Vec<f64> {
    let mut y_pool = vec![0f64; pools];
    let mut n_pool = vec![0f64; pools];
    for c in cells {
        y_pool[c.0 as usize] += y(c);
        n_pool[c.0 as usize] += c.1;
    }
    let mean: Vec<f64> = (0..pools)
        .map(|p| {
            if n_pool[p] > 0.0 {
                y_pool[p] / n_pool[p]
            } else {
                0.0
            }
        })
        .collect();
    let mut e = mean.clone();
    let agents = starts.len().saturating_sub(1);
    let mut theta = vec![1f64; agents];
    let mut den = vec![0f64; pools];
    for _ in 0..MAX_PASSES {
        for (a, w) in starts.windows(2).enumerate() {
            let mine = &cells[w[0]..w[1]];
            let expected: f64 = mine.iter().map(|c| c.1 * e[c.0 as usize]).sum();
            theta[a] = if expected > 0.0 {
                mine.iter().map(&y).sum::<f64>() / expected
            } else {
                1.0
            };
        }
        den.iter_mut().for_each(|d| *d = 0.0);
        for (a, w) in starts.windows(2).enumerate() {
            for c in &cells[w[0]..w[1]] {
                den[c.0 as usize] += c.1 * theta[a];
            }
        }
        // Fix each group's scale: its interaction-weighted mean θ is 1.
        let mut scale: HashMap<u32, (f64, f64)> = HashMap::new();
        for p in 0..pools {
            let s = scale.entry(groups[p]).or_insert((0.0, 0.0));
            s.0 += den[p];
            s.1 += n_pool[p];
        }
        let mut moved = 0f64;
        for p in 0..pools {
            let (weighted, n) = scale[&groups[p]];
            let c = if weighted > 0.0 && n > 0.0 {
                weighted / n
            } else {
                1.0
            };
            let next = if den[p] > 0.0 {
                y_pool[p] / den[p] * c
            } else {
                mean[p]
            };
            if e[p] > 0.0 {
                moved = moved.max(((next - e[p]) / e[p]).abs());
            } else if next > 0.0 {
                moved = f64::INFINITY;
            }
            e[p] = next;
        }
        if moved < SETTLED {
            break;
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::{QueueCell, Skill};

    fn cell(queue: QueueIx, handled: u32, aht_secs: f64, transferred: u32) -> QueueCell {
        QueueCell {
            skill: 0,
            queue,
            handled,
            transferred,
            handle_ms: f64::from(handled) * aht_secs * 1000.0,
        }
    }

    fn agent(i: usize, cells: Vec<QueueCell>) -> Agent {
        let handled: u64 = cells.iter().map(|c| u64::from(c.handled)).sum();
        Agent {
            id: format!("a{i}"),
            name: format!("Agent {i}"),
            manager_id: None,
            skills: vec![(0, 2.5)],
            metrics: vec![(
                0,
                PairMetrics {
                    handled,
                    handle_ms: cells.iter().map(|c| c.handle_ms).sum(),
                    transferred: Some(cells.iter().map(|c| u64::from(c.transferred)).sum()),
                },
            )],
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
        let mut a = agent(0, vec![]);
        a.metrics[0].1 = PairMetrics {
            handled: 10,
            handle_ms: 10.0 * 300_000.0,
            transferred: None,
        };
        let fit = CaseMix::estimate(&snapshot(vec![a.clone()]));
        let pool = fit.pool(0, NO_QUEUE).unwrap();
        assert_eq!(pool.handled, 10);
        let e = fit.expected(&a, 0).unwrap();
        assert!((e.handle_ms - 10.0 * 300_000.0).abs() < 1e-3);
        assert_eq!(e.transfers, 0.0);
        assert!(fit.expected(&a, 1).is_none());
    }
}
