//! `bench` runs on a small org and its counters add up (no timing is asserted: speed is
//! measured by the command, never by tests).

use skill_tuner::bench::{lower_bound_calls, BenchResult};

fn bench(args: &[&str]) -> BenchResult {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skill-tuner"))
        .arg("bench")
        .args([
            "--agents",
            "200",
            "--skills",
            "4",
            "--changed",
            "0.2",
            "--rate",
            "60000",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.trim()).unwrap()
}

#[test]
fn the_batched_cycle_stays_at_the_lower_bound() {
    let r = bench(&[]);
    assert_eq!(r.changed_agents, 40, "exactly the requested share changes");
    assert_eq!(r.http_429, 0);
    assert!(r.api_calls >= r.lower_bound_calls, "{r:?}");
    // Beyond the bound: the skill catalogue, the org limits, one externalTag lookup.
    assert!(r.api_calls <= r.lower_bound_calls + 3, "{r:?}");
    assert!((r.calls_ratio - r.api_calls as f64 / r.lower_bound_calls as f64).abs() < 1e-3);
    assert!((r.bound_s - r.api_calls as f64 * 60.0 / 60000.0).abs() < 1e-3);
    assert!(r.peak_rss_mb > 0.0 && r.wall_s > 0.0);
}

#[test]
fn the_per_agent_pattern_reads_and_writes_every_agent() {
    let r = bench(&["--per-agent"]);
    assert_eq!(r.pattern, "per-agent");
    assert_eq!(r.changed_agents, 40);
    // Roster, skills, limits and analytics as in the batched cycle (not its skill-group
    // reads: the simulator's 4-skill org has 2 groups, a listing and 2 reads), then two
    // calls per agent.
    let batched_reads = r.lower_bound_calls - 40 * 3 - 1 - 3;
    assert!(r.api_calls >= batched_reads + 2 * 200, "{r:?}");
    assert!(r.calls_ratio > 2.0, "{r:?}");
}

#[test]
fn the_lower_bound_follows_the_issue_formula() {
    // 10 000 agents + 834 supervisors, 3 queues, 4 skill groups, one source, 2 000
    // changed, all over threshold: 22 pages + 1 queue page + 1 group page and 4 group reads
    // + 100 queries + 4 000 + 2 000 + 1 digest.
    assert_eq!(
        lower_bound_calls(10_834, 3, 4, 10_000, 1, 2_000, 2_000),
        22 + 1 + 5 + 100 + 4_000 + 2_000 + 1
    );
    // Queues are read a page of 100 at a time; no skill group still costs the listing.
    assert_eq!(
        lower_bound_calls(10_834, 250, 0, 10_000, 1, 2_000, 2_000),
        22 + 3 + 1 + 100 + 4_000 + 2_000 + 1
    );
}

/// `bench --orgs`: every org's counters add up, each against its own limit, none refused.
#[test]
fn several_orgs_in_one_process_each_keep_their_own_limit() {
    let r: skill_tuner::bench::OrgsBenchResult = serde_json::from_str(
        String::from_utf8(
            std::process::Command::new(env!("CARGO_BIN_EXE_skill-tuner"))
                .args([
                    "bench", "--orgs", "3", "--agents", "100", "--skills", "4", "--rate", "60000",
                ])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim(),
    )
    .unwrap();
    assert_eq!(r.orgs, 3);
    assert_eq!(r.per_org.len(), 3);
    assert_eq!(r.http_429, 0, "{r:?}");
    assert_eq!(
        r.api_calls,
        r.per_org.iter().map(|o| o.api_calls).sum::<u64>()
    );
    for org in &r.per_org {
        assert!(org.changed_agents > 0 && org.api_calls > 0, "{r:?}");
        assert!((org.bound_s - org.api_calls as f64 * 60.0 / 60000.0).abs() < 1e-3);
    }
    let slowest = r.per_org.iter().map(|o| o.bound_s).fold(0.0, f64::max);
    assert_eq!(r.slowest_bound_s, slowest);
    assert!(r.peak_rss_mb > 0.0 && r.wall_s > 0.0);
}
