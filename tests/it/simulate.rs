//! `simulate` on a small twin: the JSON line's shape, that routing by the truth beats the
//! starting ratings, that `tuned` runs the real cycle (ledger rows, writes over HTTP), that
//! on queues that disregard skills it changes nothing, and that the same seed gives the same
//! table. The long runs (10 000 agents, ten seeds) are
//! commands, not tests: `scripts/simulate-seeds.sh` and the README's `simulate` section.

use genesys_sim::TwinConfig;
use skill_tuner::simulate::{self, Metric, Policy, SimulateOptions, SimulateResult};

/// A twin small enough for a debug build: 100 agents, one week, just the history the
/// built-in policy's 14-day look-back needs.
fn small(seed: u64) -> SimulateOptions {
    SimulateOptions {
        agents: 100,
        weeks: 1,
        seed,
        twin: TwinConfig {
            history_days: 14,
            ..TwinConfig::default()
        },
        ..SimulateOptions::default()
    }
}

async fn run(seed: u64) -> SimulateResult {
    simulate::run(&small(seed)).await.unwrap()
}

#[test]
fn the_json_line_maps_every_metric_and_the_composite_to_a_share_or_null() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skill-tuner"))
        .args(["simulate", "--agents", "100", "--weeks", "1", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("gap closed by tuned, week 1"), "{stdout}");
    let last = stdout.lines().last().unwrap();
    let json: serde_json::Value = serde_json::from_str(last).unwrap();
    let gap = json["gap_closed"].as_object().unwrap();
    let mut names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    names.push("composite");
    let mut keys: Vec<&str> = gap.keys().map(String::as_str).collect();
    keys.sort_unstable();
    names.sort_unstable();
    assert_eq!(keys, names);
    for (name, share) in gap {
        assert!(share.is_null() || share.is_f64(), "{name}: {share}");
    }
    assert!(gap["aht"].is_f64(), "oracle beats static on AHT: {last}");
    let policies = json["policies"].as_array().unwrap();
    let order: Vec<&str> = policies
        .iter()
        .map(|p| p["policy"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["static", "tuned", "oracle"]);
    for p in policies {
        assert_eq!(p["weeks"].as_array().unwrap().len(), 1);
        assert!(p["weeks"][0]["gini"].is_f64());
    }
    assert_eq!(json["counted_week"], 1);
    assert!(json["constraints"]["gini_within"].is_boolean());
}

#[tokio::test]
async fn oracle_beats_static_on_the_same_callers() {
    let r = run(11).await;
    let week = |p: Policy| r.policy(p).unwrap().weeks[0].clone();
    let (st, oracle) = (week(Policy::Static), week(Policy::Oracle));
    assert_eq!(st.offered, oracle.offered, "common random numbers");
    assert!(
        oracle.aht_secs.unwrap() < st.aht_secs.unwrap(),
        "{st:?}\n{oracle:?}"
    );
    assert!(oracle.transfer_rate.unwrap() < st.transfer_rate.unwrap());
    assert!(oracle.csat.unwrap() > st.csat.unwrap());
    assert!(r.gap_closed["aht"].is_some() && r.gap_closed["composite"].is_some());
}

#[tokio::test]
async fn tuned_runs_the_real_cycle_through_http_with_its_ledger() {
    let r = run(12).await;
    let stats = r.policy(Policy::Tuned).unwrap().tuned.clone().unwrap();
    assert_eq!(stats.cycles, 7, "one cycle a day: {stats:?}");
    assert_eq!(stats.outcomes.get("ok"), Some(&7), "{stats:?}");
    assert!(stats.ledger_applied > 0, "{stats:?}");
    assert!(stats.bulk_writes > 0, "{stats:?}");
    // One bulk write per changed agent and cycle; each carries at least one applied row.
    assert!(
        stats.bulk_writes as usize <= stats.ledger_applied,
        "{stats:?}"
    );
    assert_eq!(stats.skills_up + stats.skills_down, stats.ledger_applied);
    assert!(stats.api_calls > stats.bulk_writes, "reads too: {stats:?}");
    // Its writes change routing: tuned's week is not static's.
    let week = |p: Policy| r.policy(p).unwrap().weeks[0].clone();
    assert_ne!(week(Policy::Tuned), week(Policy::Static));
    assert!(r.policy(Policy::Static).unwrap().tuned.is_none());
}

#[tokio::test]
async fn the_same_seed_gives_the_same_table() {
    let (a, b) = (run(13).await, run(13).await);
    assert_eq!(a.render(), b.render());
    assert_eq!(a.gap_closed, b.gap_closed);
    let c = run(14).await;
    assert_ne!(a.render(), c.render(), "another seed, another twin");
}

/// Proficiency changes no routing on queues that disregard skills (`NONE`), so on a twin
/// whose queues are all `NONE` the tuned weeks are static's to the interaction: by default
/// because the cycle leaves such skills alone, and with `tune_without_routing_effect`
/// because the proficiencies it then writes route nothing differently.
#[tokio::test]
async fn on_queues_that_disregard_skills_tuned_gives_static_outcomes() {
    let none_only = |tune_anyway: bool| {
        let mut options = small(15);
        options.twin.method_mix = genesys_sim::MethodMix {
            best: 0.0,
            none: 1.0,
            all: 0.0,
        };
        options.policies = vec![Policy::Static, Policy::Tuned];
        let mut settings = simulate::policy_settings(&options).unwrap();
        settings.policy.tune_without_routing_effect = tune_anyway;
        options.settings = Some(settings);
        options
    };
    for tune_anyway in [false, true] {
        let r = simulate::run(&none_only(tune_anyway)).await.unwrap();
        let weeks = |p: Policy| r.policy(p).unwrap().weeks.clone();
        let stats = r.policy(Policy::Tuned).unwrap().tuned.clone().unwrap();
        assert_eq!(stats.cycles, 7, "{stats:?}");
        if tune_anyway {
            assert!(stats.ledger_applied > 0, "it wrote: {stats:?}");
        } else {
            assert_eq!(stats.ledger_applied, 0, "nothing tuned: {stats:?}");
            assert_eq!(stats.bulk_writes, 0, "{stats:?}");
        }
        assert!(weeks(Policy::Static)[0].offered > 0);
        assert_eq!(
            weeks(Policy::Tuned),
            weeks(Policy::Static),
            "tune anyway: {tune_anyway}"
        );
    }
}
