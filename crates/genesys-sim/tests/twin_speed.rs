//! How long the twin takes per simulated day, and what a day looks like. Not a default
//! test (it wants a release build):
//!
//! ```text
//! cargo test -p genesys-sim --release --test twin_speed -- --ignored --nocapture
//! TWIN_AGENTS=10000 TWIN_DAYS=14 cargo test -p genesys-sim --release --test twin_speed -- --ignored --nocapture
//! ```

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use genesys_sim::{gini, SimConfig, Simulator, Totals, TwinConfig};
use skill_tuner_clock::Clock;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident set size of this process, from `/proc/self/status` (Linux), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU time this thread has run, in seconds (`/proc/thread-self/schedstat`, Linux): on a
/// shared machine wall time says more about the neighbours than about the twin.
fn thread_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

/// Runs `days` days on a fresh twin; with `oracle`, proficiencies are set from the truth
/// each morning. Returns the seconds spent simulating and the outcomes' totals.
fn run(
    agents: usize,
    days: i64,
    oracle: bool,
    config: &TwinConfig,
) -> (f64, f64, Totals, Vec<u32>) {
    // A Monday, so a 14-day run has whole weeks.
    let start: DateTime<Utc> = "2027-03-01T06:00:00Z".parse().expect("instant");
    let clock = Clock::manual(start);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sim = runtime
        .block_on(Simulator::start(SimConfig {
            agents,
            seed: 7,
            rate_limit_per_minute: 0,
            clock: clock.clone(),
            twin: Some(config.clone()),
            ..SimConfig::default()
        }))
        .expect("start");
    let twin = sim.twin().expect("a twin");
    let (mut elapsed, mut cpu) = (0.0, 0.0);
    for d in 0..=days {
        clock.set(start + Duration::days(d));
        let date = twin.first_day() + Duration::days(d);
        if d > 0 {
            let (began, cpu0) = (Instant::now(), thread_cpu_secs().unwrap_or(0.0));
            twin.simulate_through(date - Duration::days(1))
                .expect("simulate");
            elapsed += began.elapsed().as_secs_f64();
            cpu += thread_cpu_secs().unwrap_or(0.0) - cpu0;
        }
        if oracle && d < days {
            twin.set_proficiencies(&twin.oracle_proficiencies(date))
                .expect("oracle");
        }
    }
    let mut total = Totals::default();
    let mut work: Vec<u32> = Vec::new();
    let mut per_queue = vec![Totals::default(); twin.queues().len()];
    for o in twin.outcomes() {
        total.add(&o.total);
        if work.is_empty() {
            work = vec![0; o.work.len()];
        }
        for (w, x) in work.iter_mut().zip(&o.work) {
            *w += x;
        }
        for (q, t) in per_queue.iter_mut().zip(&o.per_queue) {
            q.add(t);
        }
    }
    if !oracle {
        for (q, info) in twin.queues().iter().enumerate() {
            let t = per_queue[q];
            println!(
                "  {:<16} {:>4} ×{:.2} members {:>5}: offered {:>8} AHT {:>6.1} SL20 {:.3} ASA {:>5.1} abandoned {:.4}",
                info.name,
                info.method.as_api(),
                info.handle_multiplier,
                info.members.len(),
                t.offered,
                t.aht_secs().unwrap_or(f64::NAN),
                t.service_level().unwrap_or(f64::NAN),
                t.asa_secs().unwrap_or(f64::NAN),
                t.abandonment_rate().unwrap_or(f64::NAN),
            );
        }
        println!(
            "  placement rank correlation {:.3}",
            twin.placement_correlation(twin.first_day())
        );
    }
    (elapsed, cpu, total, work)
}

fn line(name: &str, t: &Totals, work: &[u32]) {
    println!(
        "{name:<7} AHT {:.1} s, transfers {:.4}, quality {:.2}, CSAT {:.2}, SL20 {:.4}, ASA {:.2} s, abandoned {:.4}, work Gini {:.3}",
        t.aht_secs().unwrap_or(f64::NAN),
        t.transfer_rate().unwrap_or(f64::NAN),
        t.quality().unwrap_or(f64::NAN),
        t.csat().unwrap_or(f64::NAN),
        t.service_level().unwrap_or(f64::NAN),
        t.asa_secs().unwrap_or(f64::NAN),
        t.abandonment_rate().unwrap_or(f64::NAN),
        gini(work),
    );
}

#[test]
#[ignore = "a timing run: use --release and --ignored"]
fn twin_time_per_day() {
    let agents = env_or("TWIN_AGENTS", 1_000);
    let days = env_or("TWIN_DAYS", 14) as i64;
    let mut config = TwinConfig {
        history_days: 0,
        ..TwinConfig::default()
    };
    if let Some(load) = std::env::var("TWIN_LOAD").ok().and_then(|v| v.parse().ok()) {
        config.load = load;
    }
    let (elapsed, cpu, stat, work) = run(agents, days, false, &config);
    println!(
        "{agents} agents, {days} days: {:.3} s CPU ({:.3} s wall) per simulated day; {:.0} interactions a day, {:.2} µs CPU each; peak RSS {:.0} MiB",
        cpu / days as f64,
        elapsed / days as f64,
        stat.offered as f64 / days as f64,
        cpu * 1e6 / stat.offered as f64,
        peak_rss_mib().unwrap_or(f64::NAN),
    );
    line("static", &stat, &work);
    let (_, _, oracle, work) = run(agents, days, true, &config);
    line("oracle", &oracle, &work);
    assert_eq!(stat.offered, oracle.offered, "common random numbers");
}
