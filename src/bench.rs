//! `bench`: one full cycle against the embedded simulator, measured in what bounds it — API
//! calls against the rate limit, wall time against `calls ÷ rate`, and memory.
//!
//! The simulator runs in this process; the cycle runs in a child process
//! (`bench-client`), so that its peak RSS is the daemon's own, not the simulator's.
//! The org is prepared so that exactly the requested share of agents needs a change under a
//! transparent policy (handle time only, no smoothing), and every change is over the alert
//! threshold (one workitem each).
//!
//! The simulator and the child share a shifted clock that starts at [`BENCH_NOW`], so the
//! same options measure the same org and the same changes on any day the bench is run.

use crate::clock::{Clock, NOW_ENV};
use crate::config::{Component, Components, Settings, SkillPolicy};
use crate::cycle::collect::CollectError;
use crate::cycle::CycleError;
use crate::genesys::ApiError;
use crate::history::LedgerError;
use crate::runtime::StartupError;
use genesys_sim::{SimConfig, Simulator};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The instant the bench's simulated org stands at (a Wednesday noon).
pub const BENCH_NOW: &str = "2026-06-10T12:00:00Z";

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub agents: usize,
    pub skills: usize,
    /// Share of agents that need a change (0..1).
    pub changed: f64,
    /// The simulator's per-token limit, requests per minute.
    pub rate: u32,
    /// Share of every window another user of the same token spends (0..=1).
    pub other_user_share: f64,
    /// The naive pattern instead: per agent, read then write, sequentially.
    pub per_agent: bool,
    pub seed: u64,
}

/// The benchmark's one JSON line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BenchResult {
    pub agents: usize,
    pub skills: usize,
    pub changed_agents: usize,
    pub rate_per_minute: u32,
    /// Share of every window the token's other user spends.
    pub other_user_share: f64,
    /// What the other user leaves to the cycle, requests per minute: the rate `bound_s`
    /// divides by.
    pub rate_left_per_minute: u32,
    pub pattern: String,
    pub api_calls: u64,
    pub lower_bound_calls: u64,
    pub calls_ratio: f64,
    pub wall_s: f64,
    pub bound_s: f64,
    pub wall_ratio: f64,
    pub http_429: u64,
    /// The other user's requests, and how many of them the simulator refused.
    pub other_user_requests: u64,
    pub other_user_429: u64,
    pub retries: u64,
    pub peak_rss_mb: f64,
    /// Wall time of scoring and planning every agent (single thread).
    pub plan_ms: u64,
}

/// Why the bench could not measure. The child's own failures reach the parent only as its
/// exit status and output ([`BenchError::ClientFailed`]).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("BENCH_NOW: {0}")]
    Instant(#[from] chrono::ParseError),
    #[error("cannot start the simulator: {0}")]
    Simulator(#[source] std::io::Error),
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run the bench client: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the bench client failed ({status}): {stdout}")]
    ClientFailed {
        status: std::process::ExitStatus,
        stdout: String,
    },
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Collect(#[from] CollectError),
    #[error(transparent)]
    Cycle(#[from] CycleError),
}

fn file_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// What the child reports back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientRun {
    pub wall_s: f64,
    pub peak_rss_mb: f64,
    pub agents_changed: usize,
    pub retries: u64,
    pub plan_ms: u64,
    pub outcome: crate::history::RunOutcome,
}

/// Handle time only, every change the full way: targets follow from the simulator's truth.
pub fn bench_policy() -> SkillPolicy {
    SkillPolicy {
        components: Components {
            handle_time: Some(Component {
                weight: 1.0,
                target: 420.0,
                limit: 720.0,
            }),
            transfer_rate: None,
            quality: None,
            csat: None,
        },
        min_interactions: 1,
        shrinkage: 0.0,
        smoothing: 1.0,
        max_step: 5.0,
        dead_band: 0.0,
        round_to: 0.5,
        floor: 0.0,
        ceiling: 5.0,
    }
}

/// Settings for the child: the simulator's address, the bench policy, workitems and webhook on.
pub fn bench_settings(sim: &Simulator, rate: u32, history: &std::path::Path) -> Settings {
    let mut s = crate::demo::settings_for(sim, rate);
    s.policy.default = bench_policy();
    // The targets below follow from the absolute ramp.
    s.policy.case_mix = false;
    s.metrics.evaluations = false;
    s.breaker.max_changed_share = 1.0;
    s.breaker.max_demotion_share = 1.0;
    s.alerts.threshold = 1.0;
    s.history.path = history.to_path_buf();
    s.log.level = "warn".into();
    s
}

/// Sets every agent's skills to their target, then moves one skill of an even spread of
/// `changed` of them one step of 1.0 away. Returns how many agents need a change.
pub fn prepare_org(sim: &Simulator, settings: &Settings, changed: f64) -> usize {
    let org = sim.org();
    let (start, end) = crate::cycle::collect::window(&settings.metrics, sim.clock().now());
    let policy = &settings.policy.default;
    let Some(aht) = policy.components.handle_time else {
        return 0;
    };
    let mut made = 0usize;
    for (i, agent) in org.agent_ids().iter().enumerate() {
        let pick = ((i + 1) as f64 * changed).floor() > (i as f64 * changed).floor();
        let mut stale_done = false;
        for (skill, _) in org.user_skills(agent) {
            let Some(truth) = org.metrics_truth(agent, &skill, start, end) else {
                continue;
            };
            if truth.t_handle_count == 0 {
                continue;
            }
            let secs = truth.t_handle_sum_ms as f64 / truth.t_handle_count as f64 / 1000.0;
            let score = crate::cycle::score::ramp(secs, aht.target, aht.limit);
            let target = crate::cycle::score::round_to(5.0 * score, policy.round_to);
            let value = if pick && !stale_done {
                stale_done = true;
                if target <= 4.0 {
                    target + 1.0
                } else {
                    target - 1.0
                }
            } else {
                target
            };
            org.set_proficiency(agent, &skill, value);
        }
        if stale_done {
            made += 1;
        }
    }
    made
}

/// Peak resident set of this process, in MB (Linux `VmHWM`).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The lower bound: roster pages of 500, queue pages of 100, skill-group pages of
/// 100 and one read per group (its conditions), analytics at 100 agents a query per source,
/// per changed agent one re-read and one write per 50 skills, one workitem per
/// over-threshold change, one webhook digest.
pub fn lower_bound_calls(
    users: usize,
    queues: usize,
    skill_groups: usize,
    agents: usize,
    sources: usize,
    changed: usize,
    over: usize,
) -> u64 {
    let pages = users.div_ceil(500);
    let queue_pages = queues
        .div_ceil(crate::genesys::QUEUE_PAGE_SIZE as usize)
        .max(1);
    let group_reads = skill_groups
        .div_ceil(crate::genesys::SKILL_GROUP_PAGE_SIZE as usize)
        .max(1)
        + skill_groups;
    let analytics = agents.div_ceil(100) * sources;
    (pages + queue_pages + group_reads + analytics + changed * 2 + over + 1) as u64
}

/// The rate another user spending `share` of every minute leaves, as the simulator counts
/// it (the other user's requests are whole).
pub fn rate_left_per_minute(rate: u32, share: f64) -> u32 {
    let others = (f64::from(rate) * share.clamp(0.0, 1.0)).floor() as u32;
    rate.saturating_sub(others)
}

/// Starts the simulator, prepares the org, runs the child, and computes the result.
pub async fn run(options: &BenchOptions, exe: &std::path::Path) -> Result<BenchResult, BenchError> {
    let now = chrono::DateTime::parse_from_rfc3339(BENCH_NOW)?.with_timezone(&chrono::Utc);
    let sim = Simulator::start(SimConfig {
        agents: options.agents,
        skills: options.skills,
        seed: options.seed,
        rate_limit_per_minute: options.rate,
        other_user_share: options.other_user_share,
        clock: Clock::starting_at(now),
        ..SimConfig::default()
    })
    .await
    .map_err(BenchError::Simulator)?;
    let dir = std::env::temp_dir().join(format!("skill-tuner-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(file_error(&dir))?;
    let settings = bench_settings(&sim, options.rate, &dir.join("bench.db"));
    let changed = prepare_org(&sim, &settings, options.changed);
    let config = dir.join("bench.toml");
    std::fs::write(&config, settings.to_toml()).map_err(file_error(&config))?;
    sim.reset_counters();

    let mut command = tokio::process::Command::new(exe);
    command
        .arg("bench-client")
        .arg("--config")
        .arg(&config)
        // Where the child's settings look for the secret.
        .env(
            &settings.genesys.client_secret_env,
            SimConfig::default().client_secret,
        )
        .env(NOW_ENV, sim.clock().now().to_rfc3339())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    if options.per_agent {
        command.arg("--per-agent");
    }
    let run: ClientRun = client_output(command).await?;
    let _ = std::fs::remove_dir_all(&dir);

    let counters = sim.counters();
    let token_calls = counters.count("POST", "/oauth/token");
    let api_calls = counters.total() - token_calls;
    let org = sim.org();
    let users = org.agent_ids().len() + org.supervisor_ids().len();
    let lower = lower_bound_calls(
        users,
        org.queues().len(),
        org.skill_groups().len(),
        options.agents,
        1,
        changed,
        changed,
    );
    let rate_left = rate_left_per_minute(options.rate, options.other_user_share);
    let bound_s = api_calls as f64 * 60.0 / f64::from(rate_left.max(1));
    let other = sim.other_user();
    sim.shutdown().await;
    Ok(BenchResult {
        agents: options.agents,
        skills: options.skills,
        changed_agents: run.agents_changed,
        rate_per_minute: options.rate,
        other_user_share: options.other_user_share,
        rate_left_per_minute: rate_left,
        pattern: if options.per_agent {
            "per-agent".into()
        } else {
            "batched".into()
        },
        api_calls,
        lower_bound_calls: lower,
        calls_ratio: round3(api_calls as f64 / lower as f64),
        wall_s: round3(run.wall_s),
        bound_s: round3(bound_s),
        wall_ratio: round3(run.wall_s / bound_s.max(f64::EPSILON)),
        http_429: counters.rate_limited(),
        other_user_requests: other.requests,
        other_user_429: other.rate_limited,
        retries: run.retries,
        peak_rss_mb: round3(run.peak_rss_mb),
        plan_ms: run.plan_ms,
    })
}

/// Runs the child and reads its one JSON line (the last line that parses).
async fn client_output<T: serde::de::DeserializeOwned>(
    mut command: tokio::process::Command,
) -> Result<T, BenchError> {
    let output = command.output().await.map_err(BenchError::Spawn)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| BenchError::ClientFailed {
            status: output.status,
            stdout: stdout.to_string(),
        })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The child side: one cycle (or the naive per-agent pattern), measured.
pub async fn client_run(
    settings: &Settings,
    per_agent: bool,
    clock: &Clock,
) -> Result<ClientRun, BenchError> {
    let client = crate::runtime::connect(settings, clock)?;
    let started = std::time::Instant::now();
    crate::runtime::start_client(&client, settings).await?;
    let (changed, outcome, plan_ms) = if per_agent {
        per_agent_pattern(&client, settings, clock).await?
    } else {
        let report = once(&client, settings, clock).await?;
        (report.agents_changed, report.outcome, report.plan_ms)
    };
    let wall_s = started.elapsed().as_secs_f64();
    Ok(ClientRun {
        wall_s,
        peak_rss_mb: peak_rss_mb(),
        agents_changed: changed,
        retries: client.stats().retries(),
        plan_ms,
        outcome,
    })
}

/// One real cycle of `settings`' org, on its ledger.
async fn once(
    client: &crate::genesys::GenesysClient,
    settings: &Settings,
    clock: &Clock,
) -> Result<crate::cycle::report::CycleReport, BenchError> {
    let ledger = crate::runtime::open_ledger(settings, clock)?;
    let stop = crate::cycle::StopSignal::default();
    Ok(crate::cycle::run_cycle(
        client,
        settings,
        &ledger,
        crate::cycle::Mode::Once,
        &stop,
        clock,
    )
    .await?)
}

/// The pattern the tutorial used: for every agent, read its skills, then write them, one
/// agent after another. Measured for comparison, never used by the daemon.
async fn per_agent_pattern(
    client: &crate::genesys::GenesysClient,
    settings: &Settings,
    clock: &Clock,
) -> Result<(usize, crate::history::RunOutcome, u64), BenchError> {
    let snapshot =
        crate::cycle::collect::collect(client, &settings.scope, &settings.metrics, 1, clock.now())
            .await?;
    let planned = std::time::Instant::now();
    let plan = crate::cycle::plan::plan(&snapshot, &settings.policy, &settings.breaker);
    let plan_ms = planned.elapsed().as_millis() as u64;
    let mut changed = 0;
    for (ai, agent) in snapshot.agents.iter().enumerate() {
        let current = client.user_skills(&agent.id).await?;
        let mut body: Vec<crate::genesys::models::UserRoutingSkillPost> = current
            .iter()
            .map(|s| crate::genesys::models::UserRoutingSkillPost {
                id: s.id.clone(),
                proficiency: s.proficiency,
            })
            .collect();
        let mut any = false;
        for item in plan.changes().filter(|i| i.agent as usize == ai) {
            let skill = &snapshot.skills[usize::from(item.skill)].id;
            if let (Some(entry), Some(to)) =
                (body.iter_mut().find(|b| &b.id == skill), item.proposed())
            {
                entry.proficiency = to;
                any = true;
            }
        }
        changed += usize::from(any);
        client.patch_user_skills(&agent.id, &body).await?;
    }
    Ok((changed, crate::history::RunOutcome::Ok, plan_ms))
}

/// `bench --orgs N`: N orgs tuned by one process, each its own simulator (its own OAuth
/// client and rate limit), all cycles at once as the daemon runs them. One JSON line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrgsBenchResult {
    pub orgs: usize,
    pub agents_per_org: usize,
    pub rate_per_minute: u32,
    pub api_calls: u64,
    /// The slowest org's own bound: its calls ÷ its rate.
    pub slowest_bound_s: f64,
    /// From the first login to the last cycle's end, all orgs at once.
    pub wall_s: f64,
    /// `wall_s ÷ slowest_bound_s`: 1 means the orgs cost no time on top of the slowest.
    pub wall_ratio: f64,
    pub http_429: u64,
    pub changed_agents: usize,
    pub peak_rss_mb: f64,
    pub per_org: Vec<OrgBench>,
}

/// One org of [`OrgsBenchResult`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrgBench {
    pub org: String,
    pub api_calls: u64,
    pub bound_s: f64,
    pub wall_s: f64,
    pub http_429: u64,
    pub changed_agents: usize,
}

/// What the child reports for each org of a multi-org run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrgsClientRun {
    pub wall_s: f64,
    pub peak_rss_mb: f64,
    /// `(org, wall seconds, agents changed, outcome)`.
    pub orgs: Vec<(String, f64, usize, crate::history::RunOutcome)>,
}

/// The name of the bench's org `i`.
fn bench_org(i: usize) -> String {
    format!("org-{i:02}")
}

/// Starts `orgs` simulators, prepares each, runs every org's cycle in one child process and
/// measures it against the slowest org's bound.
pub async fn run_orgs(
    options: &BenchOptions,
    orgs: usize,
    exe: &std::path::Path,
) -> Result<OrgsBenchResult, BenchError> {
    let now = chrono::DateTime::parse_from_rfc3339(BENCH_NOW)?.with_timezone(&chrono::Utc);
    let dir = std::env::temp_dir().join(format!("skill-tuner-bench-orgs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(file_error(&dir))?;
    let mut sims = Vec::new();
    let mut changed = 0;
    let mut text = String::new();
    let mut tables = String::new();
    for i in 0..orgs {
        let name = bench_org(i);
        let sim = Simulator::start(SimConfig {
            agents: options.agents,
            skills: options.skills,
            seed: options.seed + i as u64,
            rate_limit_per_minute: options.rate,
            clock: Clock::starting_at(now),
            client_id: format!("bench-client-{name}"),
            client_secret: format!("bench-secret-{name}"),
            ..SimConfig::default()
        })
        .await
        .map_err(BenchError::Simulator)?;
        let settings = bench_settings(&sim, options.rate, &dir.join("bench.db"));
        changed += prepare_org(&sim, &settings, options.changed);
        if i == 0 {
            text = settings.to_toml();
        }
        tables.push_str(&format!(
            "\n[[orgs]]\nname = \"{name}\"\ngenesys.api_base_url = \"{base}\"\ngenesys.login_base_url = \"{base}\"\ngenesys.client_id = \"bench-client-{name}\"\nalerts.workitem.worktype_id = \"{worktype}\"\nalerts.webhook.url = \"{base}/_sim/webhook\"\n",
            base = sim.base_url(),
            worktype = settings.alerts.workitem.worktype_id,
        ));
        sim.reset_counters();
        sims.push((name, sim));
    }
    text.push_str(&tables);
    let config = dir.join("bench.toml");
    std::fs::write(&config, &text).map_err(file_error(&config))?;

    let mut command = tokio::process::Command::new(exe);
    command
        .arg("bench-client")
        .arg("--config")
        .arg(&config)
        .env(NOW_ENV, now.to_rfc3339())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (name, _) in &sims {
        command.env(
            crate::config::orgs::secret_env_for("SKILL_TUNER_CLIENT_SECRET", name),
            format!("bench-secret-{name}"),
        );
    }
    let run: OrgsClientRun = client_output(command).await?;
    let _ = std::fs::remove_dir_all(&dir);

    let mut per_org = Vec::new();
    for (name, sim) in sims {
        let counters = sim.counters();
        let api_calls = counters.total() - counters.count("POST", "/oauth/token");
        let (wall_s, changed_agents) = run
            .orgs
            .iter()
            .find(|(org, ..)| *org == name)
            .map_or((0.0, 0), |(_, wall, changed, _)| (*wall, *changed));
        per_org.push(OrgBench {
            org: name,
            api_calls,
            bound_s: round3(api_calls as f64 * 60.0 / f64::from(options.rate.max(1))),
            wall_s: round3(wall_s),
            http_429: counters.rate_limited(),
            changed_agents,
        });
        sim.shutdown().await;
    }
    let slowest = per_org.iter().map(|o| o.bound_s).fold(0.0, f64::max);
    Ok(OrgsBenchResult {
        orgs,
        agents_per_org: options.agents,
        rate_per_minute: options.rate,
        api_calls: per_org.iter().map(|o| o.api_calls).sum(),
        slowest_bound_s: round3(slowest),
        wall_s: round3(run.wall_s),
        wall_ratio: round3(run.wall_s / slowest.max(f64::EPSILON)),
        http_429: per_org.iter().map(|o| o.http_429).sum(),
        changed_agents: changed.min(per_org.iter().map(|o| o.changed_agents).sum()),
        peak_rss_mb: round3(run.peak_rss_mb),
        per_org,
    })
}

/// The child side of `bench --orgs`: every org's cycle at once in this one task (as the
/// daemon's org loops run), each with its own client and ledger handle.
pub async fn client_run_orgs(
    orgs: &crate::config::Orgs,
    clock: &Clock,
) -> Result<OrgsClientRun, BenchError> {
    let started = std::time::Instant::now();
    let cycles = orgs.iter().map(|settings| async move {
        let client = crate::runtime::connect(settings, clock)?;
        crate::runtime::start_client(&client, settings).await?;
        let report = once(&client, settings, clock).await?;
        Ok::<_, BenchError>((
            settings.org_name().to_string(),
            started.elapsed().as_secs_f64(),
            report.agents_changed,
            report.outcome,
        ))
    });
    let mut done = Vec::new();
    for result in futures_util::future::join_all(cycles).await {
        done.push(result?);
    }
    Ok(OrgsClientRun {
        wall_s: started.elapsed().as_secs_f64(),
        peak_rss_mb: peak_rss_mb(),
        orgs: done,
    })
}
