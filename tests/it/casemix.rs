//! Case-mix scoring: on a fixture with a known answer it removes the queue bias the absolute
//! ramps have, and on the closed-loop twin — where stronger agents sit on harder queues —
//! it ranks agents by their hidden ability better than the absolute ramps do.
//!
//! ```sh
//! # the evidence quoted in the README (2 000 agents, 4 weeks, seeds 1–10), with its figures:
//! cargo test --release --test it casemix::evidence -- --ignored --nocapture
//! ```

use crate::common;

use common::sim::{client_for, relaxed, test_now};
use genesys_sim::{SimConfig, Simulator, TwinConfig};
use skill_tuner::clock::Clock;
use skill_tuner::config::{BreakerSettings, PolicySettings, SkillPolicy};
use skill_tuner::cycle::collect::{collect, window};
use skill_tuner::cycle::plan::plan;
use skill_tuner::cycle::score::Scorer;
use skill_tuner::org::{Agent, Queue, QueueCell, Skill, Snapshot};
use std::collections::HashMap;

// ---------------------------------------------------------------- a fixture with an answer

/// One agent on one skill, with `handled` interactions on each listed queue at `aht_secs`.
fn agent(i: usize, current: f64, work: &[(u16, u32, f64)]) -> Agent {
    let cells: Vec<QueueCell> = work
        .iter()
        .map(|&(queue, handled, aht_secs)| QueueCell {
            skill: 0,
            queue,
            handled,
            transferred: Some(0),
            handle_ms: f64::from(handled) * aht_secs * 1000.0,
        })
        .collect();
    Agent {
        id: format!("agent-{i}"),
        name: format!("Agent {i}"),
        manager_id: None,
        skills: vec![(0, current)],
        cells,
        quality: None,
        csat: None,
    }
}

/// Handle time only, every change the full way, so a target is the score itself.
fn handle_time_only(case_mix: bool) -> PolicySettings {
    let mut p = PolicySettings {
        default: skill_tuner::bench::bench_policy(),
        case_mix,
        ..PolicySettings::default()
    };
    p.default.components.handle_time = Some(skill_tuner::config::Component {
        weight: 1.0,
        target: 300.0,
        limit: 900.0,
    });
    p
}

/// Two BEST queues, the second's work taking 1.5 × the first's (400 s against 600 s for the
/// same agent); twenty identical agents on each and four on both, all rated 2.5.
fn two_queues() -> Snapshot {
    let mut agents = Vec::new();
    for i in 0..20 {
        agents.push(agent(i, 2.5, &[(0, 100, 400.0)]));
        agents.push(agent(100 + i, 2.5, &[(1, 100, 600.0)]));
    }
    for i in 0..4 {
        agents.push(agent(200 + i, 2.5, &[(0, 50, 400.0), (1, 50, 600.0)]));
    }
    Snapshot {
        skills: vec![Skill {
            id: "skill".into(),
            name: "Billing".into(),
        }],
        tunable: vec![true],
        queues: ["Easy", "Hard"]
            .iter()
            .map(|name| Queue {
                id: name.to_lowercase(),
                name: Some(name.to_string()),
                method: Some(skill_tuner::org::EvaluationMethod::Best),
            })
            .collect(),
        queues_listed: true,
        agents,
        queries: 1,
        ..Snapshot::default()
    }
}

#[test]
fn case_mix_removes_the_queue_bias_of_identical_agents() {
    let snapshot = two_queues();
    let targets = |case_mix: bool| -> Vec<f64> {
        let policies = handle_time_only(case_mix);
        let scorer = Scorer::new(&snapshot, &policies);
        snapshot
            .agents
            .iter()
            .map(|a| scorer.score(&snapshot, a, 0).unwrap().target)
            .collect()
    };
    // Absolute: 400 s scores (900 − 400) / 600 → 4.0 stars after rounding to 0.5, 600 s
    // scores 2.5: the same people, a star and a half apart for the queue they were given.
    let absolute = targets(false);
    assert_eq!(&absolute[0..2], &[4.0, 2.5]);
    // Case mix: everyone did exactly what their work demands — ratio 1, score 0.5, 2.5 stars.
    let relative = targets(true);
    assert!(relative.iter().all(|t| *t == 2.5), "{relative:?}");
    let score = Scorer::new(&snapshot, &handle_time_only(true))
        .score(&snapshot, &snapshot.agents[1], 0)
        .unwrap();
    let explained = score.explain();
    assert!(
        explained.contains("handle_time 600s vs 600s expected ×1.00"),
        "{explained}"
    );

    // And the plan: absolute ramps promote everyone on the easy queue and no one on the
    // hard one; with case mix nobody moves.
    let breaker = BreakerSettings {
        max_changed_share: 1.0,
        max_demotion_share: 1.0,
        ..BreakerSettings::default()
    };
    let changed_on = |case_mix: bool| {
        let p = plan(&snapshot, &handle_time_only(case_mix), &breaker);
        let mut by_queue = [0usize; 2];
        for item in p.changes() {
            by_queue[usize::from(snapshot.agents[item.agent as usize].cells[0].queue)] += 1;
        }
        by_queue
    };
    assert_eq!(changed_on(false), [24, 0]);
    assert_eq!(changed_on(true), [0, 0]);
}

// ---------------------------------------------------------------- the twin

/// What one scorer did on the twin.
#[derive(Debug)]
struct ScorerFigures {
    /// Spearman's rank correlation of the combined score with true ability.
    spearman: f64,
    /// Mean score on the two hardest queues minus on the two easiest, for equal true ability
    /// (the residuals of a cubic fit of score on ability), and its Welch t with agents as
    /// the units.
    gap: f64,
    gap_t: f64,
    /// The same with queues as the units: the slope of each queue's mean residual on the log
    /// of its difficulty, and its t (queues − 2 degrees of freedom). Agents of one queue share
    /// its estimated demand, so this is the test that counts that estimate's own error.
    slope: f64,
    slope_t: f64,
    /// Per queue (easiest first): demotions planned ÷ scored pairs.
    demotion_rates: Vec<f64>,
    /// The slope of the demotion rate on the log of queue difficulty, and its t.
    demotion_slope: f64,
    demotion_slope_t: f64,
}

#[derive(Debug)]
struct TwinFigures {
    pairs: usize,
    placement: f64,
    case_mix: ScorerFigures,
    absolute: ScorerFigures,
}

/// A twin of `agents` agents with `days` of history standing at [`test_now`]; one collect
/// over HTTP of the whole window; both scorers on the same snapshot, judged against the
/// twin's hidden truth averaged over the window.
async fn twin_figures(agents: usize, days: u32, seed: u64) -> TwinFigures {
    let sim = Simulator::start(SimConfig {
        agents,
        seed,
        rate_limit_per_minute: 0,
        clock: Clock::manual(test_now()),
        twin: Some(TwinConfig {
            history_days: days,
            ..TwinConfig::default()
        }),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let twin = sim.twin().unwrap();
    let handle = twin.clone();
    tokio::task::spawn_blocking(move || handle.simulate_ended_days())
        .await
        .unwrap();

    let mut settings = relaxed(&sim);
    settings.metrics.lookback_days = days;
    settings.policy.default = SkillPolicy::default();
    let client = client_for(&sim, &settings).await;
    let snapshot = collect(
        &client,
        &settings.scope,
        &settings.metrics,
        4,
        sim.clock().now(),
    )
    .await
    .unwrap();

    // The truth, averaged over the days the window covers (abilities drift for some).
    let (start, end) = window(&settings.metrics, sim.clock().now());
    let (first, last) = (start.date_naive(), end.date_naive());
    let mut truth: HashMap<(String, String), (f64, f64)> = HashMap::new();
    let mut day = first;
    while day < last {
        for t in twin.truth(day) {
            let e = truth.entry((t.user_id, t.skill_id)).or_default();
            e.0 += t.ability;
            e.1 += 1.0;
        }
        day = day.succ_opt().unwrap();
    }
    let queues = twin.queues();
    let difficulty: HashMap<&str, f64> = queues
        .iter()
        .map(|q| (q.id.as_str(), q.handle_multiplier))
        .collect();
    let mut order: Vec<f64> = queues.iter().map(|q| q.handle_multiplier).collect();
    order.sort_by(f64::total_cmp);
    let placement = twin.placement_correlation(last.pred_opt().unwrap());

    // Every (agent, skill) with enough work, its true ability and the queue it worked.
    let min = settings.policy.default.min_interactions;
    let mut pairs = Vec::new();
    for (ai, a) in snapshot.agents.iter().enumerate() {
        for &(skill, _) in &a.skills {
            if a.metrics_for(skill).is_none_or(|m| m.handled < min) {
                continue;
            }
            let skill_id = &snapshot.skills[usize::from(skill)].id;
            let Some(&(sum, n)) = truth.get(&(a.id.clone(), skill_id.clone())) else {
                continue;
            };
            let Some(cell) = a
                .cells
                .iter()
                .filter(|c| c.skill == skill)
                .max_by_key(|c| c.handled)
            else {
                continue;
            };
            let queue = &snapshot.queues[usize::from(cell.queue)].id;
            let rank = order
                .iter()
                .position(|d| *d == difficulty[queue.as_str()])
                .unwrap();
            pairs.push((ai, skill, sum / n, rank));
        }
    }
    let figures = |case_mix: bool| {
        let mut policies = settings.policy.clone();
        policies.case_mix = case_mix;
        let scorer = Scorer::new(&snapshot, &policies);
        let scores: Vec<f64> = pairs
            .iter()
            .map(|&(ai, skill, ..)| {
                scorer
                    .score(&snapshot, &snapshot.agents[ai], skill)
                    .unwrap()
                    .combined
            })
            .collect();
        let ability: Vec<f64> = pairs.iter().map(|p| p.2).collect();
        let residual = cubic_residuals(&ability, &scores);
        let nq = order.len();
        let hard: Vec<f64> = pick(&pairs, &residual, |r| r + 2 >= nq);
        let easy: Vec<f64> = pick(&pairs, &residual, |r| r < 2);
        let (gap, gap_t) = welch(&hard, &easy);
        let log_difficulty: Vec<f64> = order.iter().map(|d| d.ln()).collect();
        let per_queue = |values: &dyn Fn(usize) -> f64| -> Vec<f64> {
            let mut sums = vec![(0f64, 0f64); nq];
            for (i, p) in pairs.iter().enumerate() {
                sums[p.3].0 += values(i);
                sums[p.3].1 += 1.0;
            }
            sums.iter().map(|(s, n)| s / n.max(1.0)).collect()
        };
        let (slope, slope_t) = regression(&log_difficulty, &per_queue(&|i| residual[i]));

        // Demotions the plan makes from the starting (supervisors') proficiencies.
        let breaker = BreakerSettings {
            max_changed_share: 1.0,
            max_demotion_share: 1.0,
            min_data_share: 0.0,
            ..BreakerSettings::default()
        };
        let planned = plan(&snapshot, &policies, &breaker);
        let demoted: std::collections::HashSet<(usize, u16)> = planned
            .changes()
            .filter(|i| i.proposed().is_some_and(|p| p < i.current))
            .map(|i| (i.agent as usize, i.skill))
            .collect();
        let demotion_rates =
            per_queue(&|i| f64::from(u8::from(demoted.contains(&(pairs[i].0, pairs[i].1)))));
        let (demotion_slope, demotion_slope_t) = regression(&log_difficulty, &demotion_rates);
        ScorerFigures {
            spearman: spearman(&scores, &ability),
            gap,
            gap_t,
            slope,
            slope_t,
            demotion_rates,
            demotion_slope,
            demotion_slope_t,
        }
    };
    let out = TwinFigures {
        pairs: pairs.len(),
        placement,
        case_mix: figures(true),
        absolute: figures(false),
    };
    sim.shutdown().await;
    out
}

fn pick(
    pairs: &[(usize, u16, f64, usize)],
    residual: &[f64],
    rank: impl Fn(usize) -> bool,
) -> Vec<f64> {
    pairs
        .iter()
        .zip(residual)
        .filter(|(p, _)| rank(p.3))
        .map(|(_, r)| *r)
        .collect()
}

/// Average ranks (ties share their mean rank).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        for k in i..=j {
            out[order[k]] = (i + j) as f64 / 2.0;
        }
        i = j + 1;
    }
    out
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx * syy).sqrt()
}

fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

/// Residuals of the least-squares fit `y ≈ a + b x + c x² + d x³`.
fn cubic_residuals(x: &[f64], y: &[f64]) -> Vec<f64> {
    const K: usize = 4;
    let mut ata = [[0f64; K]; K];
    let mut aty = [0f64; K];
    for (xi, yi) in x.iter().zip(y) {
        let row = [1.0, *xi, xi * xi, xi * xi * xi];
        for r in 0..K {
            aty[r] += row[r] * yi;
            for c in 0..K {
                ata[r][c] += row[r] * row[c];
            }
        }
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..K {
        let pivot = (col..K)
            .max_by(|&a, &b| ata[a][col].abs().total_cmp(&ata[b][col].abs()))
            .unwrap();
        ata.swap(col, pivot);
        aty.swap(col, pivot);
        let top = ata[col];
        for r in col + 1..K {
            let f = ata[r][col] / top[col];
            for (cell, above) in ata[r].iter_mut().zip(&top).skip(col) {
                *cell -= f * above;
            }
            aty[r] -= f * aty[col];
        }
    }
    let mut beta = [0f64; K];
    for r in (0..K).rev() {
        let rest: f64 = (r + 1..K).map(|c| ata[r][c] * beta[c]).sum();
        beta[r] = (aty[r] - rest) / ata[r][r];
    }
    x.iter()
        .zip(y)
        .map(|(xi, yi)| yi - (beta[0] + beta[1] * xi + beta[2] * xi * xi + beta[3] * xi.powi(3)))
        .collect()
}

/// Difference of means `a − b` and Welch's t.
fn welch(a: &[f64], b: &[f64]) -> (f64, f64) {
    let stats = |v: &[f64]| {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
        (m, var / n)
    };
    let ((ma, sa), (mb, sb)) = (stats(a), stats(b));
    (ma - mb, (ma - mb) / (sa + sb).sqrt())
}

/// Least-squares slope of `y` on `x`, and its t statistic (n − 2 degrees of freedom).
fn regression(x: &[f64], y: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let slope = sxy / sxx;
    let sse: f64 = x
        .iter()
        .zip(y)
        .map(|(a, b)| (b - my - slope * (a - mx)).powi(2))
        .sum();
    let se = (sse / (n - 2.0) / sxx).sqrt();
    (slope, slope / se)
}

/// Student's t quantile at 0.975 for 1–10 degrees of freedom (two-sided 5 %).
fn t_975(df: usize) -> f64 {
    [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ][df.clamp(1, 10) - 1]
}

fn print(label: &str, f: &TwinFigures) {
    eprintln!(
        "{label}: {} agent-skill pairs, placement correlation {:.2}",
        f.pairs, f.placement
    );
    for (name, s) in [("case mix", &f.case_mix), ("absolute", &f.absolute)] {
        eprintln!(
            "  {name:<9} spearman {:.3} | equal-ability gap hard−easy {:+.3} (agents t {:+.1}; per ln difficulty {:+.3}, queues t {:+.2}) | demotions by queue, easiest first {} (per ln difficulty {:+.3}, t {:+.2})",
            s.spearman,
            s.gap,
            s.gap_t,
            s.slope,
            s.slope_t,
            s.demotion_rates
                .iter()
                .map(|r| format!("{:.0}%", r * 100.0))
                .collect::<Vec<_>>()
                .join(" "),
            s.demotion_slope,
            s.demotion_slope_t,
        );
    }
}

/// Mean, standard error and t (against 0) of per-seed values.
fn across(values: &[f64]) -> (f64, f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let se = (var / n).sqrt();
    (mean, se, mean / se)
}

#[tokio::test]
async fn on_a_small_twin_case_mix_ranks_agents_better_than_absolute_ramps() {
    let f = twin_figures(400, 14, 11).await;
    print("twin 400 agents, 2 weeks, seed 11", &f);
    assert!(f.pairs > 300, "{f:?}");
    assert!(f.case_mix.spearman > f.absolute.spearman + 0.1, "{f:?}");
    assert!(f.case_mix.spearman > 0.7, "{f:?}");
    // The absolute ramps score the hard queues' agents lower at equal ability, and demote
    // them more; case mix much less.
    assert!(f.absolute.gap_t < -3.0, "{f:?}");
    assert!(f.case_mix.gap.abs() < f.absolute.gap.abs() / 2.0, "{f:?}");
}

/// The figures quoted in the README: 2 000 agents, 4 weeks, seeds 1–10.
#[tokio::test]
#[ignore = "the long run: cargo test --release --test it casemix::evidence -- --ignored --nocapture"]
async fn evidence_on_the_confounded_twin() {
    let mut runs = Vec::new();
    for seed in 1..=10 {
        let f = twin_figures(2_000, 28, seed).await;
        print(&format!("seed {seed:>2}"), &f);
        runs.push(f);
    }
    let of = |pick: &dyn Fn(&TwinFigures) -> f64| runs.iter().map(pick).collect::<Vec<f64>>();
    let summary = |name: &str, values: &[f64]| {
        let (mean, se, t) = across(values);
        let (lo, hi) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
        eprintln!("{name:<44} mean {mean:+.3} ± {se:.3} (t {t:+.2}), range {lo:+.3} … {hi:+.3}");
        t
    };
    eprintln!("over 10 seeds (2 000 agents, 4 weeks):");
    summary("spearman, case mix", &of(&|f| f.case_mix.spearman));
    summary("spearman, absolute", &of(&|f| f.absolute.spearman));
    let gap_t = summary(
        "equal-ability gap hard−easy, case mix",
        &of(&|f| f.case_mix.gap),
    );
    summary(
        "equal-ability gap hard−easy, absolute",
        &of(&|f| f.absolute.gap),
    );
    let demotion_t = summary(
        "demotion rate per ln difficulty, case mix",
        &of(&|f| f.case_mix.demotion_slope),
    );
    summary(
        "demotion rate per ln difficulty, absolute",
        &of(&|f| f.absolute.demotion_slope),
    );
    for f in &runs {
        assert!(f.case_mix.spearman >= 0.8, "{f:?}");
        assert!(f.case_mix.spearman > f.absolute.spearman, "{f:?}");
    }
    // No bias across orgs: the mean gap and the mean demotion slope are not significant.
    assert!(gap_t.abs() < t_975(9), "gap t {gap_t}");
    assert!(demotion_t.abs() < t_975(9), "demotion t {demotion_t}");
}
