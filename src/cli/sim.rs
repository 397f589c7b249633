//! `sim`: the embedded Genesys Cloud simulator on its own, until Ctrl-C.

use super::setup::init_logging;
use super::{Failure, SimArgs};
use skill_tuner::clock::Clock;
use skill_tuner::config::LogFormat;
use skill_tuner::demo;
use skill_tuner::exit::ExitClass;

/// `--now`: clap's value parsers report a `String`.
pub fn parse_instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("expected an RFC 3339 instant such as 2027-03-28T01:30:00Z ({e})"))
}

/// `--other-user-share`: a share of the window from 0 to 1.
pub fn parse_share(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err("expected a share from 0 to 1, e.g. 0.5".into()),
    }
}

pub async fn run(args: SimArgs, clock: Clock) -> Result<ExitClass, Failure> {
    let config = genesys_sim::SimConfig {
        agents: args.org.agents,
        skills: args.org.skills,
        seed: args.org.seed,
        rate_limit_per_minute: args.rate,
        other_user_share: args.other_user_share,
        clock: args.now.map_or(clock, Clock::starting_at),
        worktype_id: demo::demo_worktype_id(),
        ..Default::default()
    };
    init_logging("info", LogFormat::Human);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], args.port));
    let id = config.client_id.clone();
    let secret = config.client_secret.clone();
    let agents = config.agents;
    let other = config.other_user_share;
    let sim = genesys_sim::Simulator::start_on(config, addr)
        .await
        .map_err(|e| {
            Failure::new(
                ExitClass::Failed,
                format!("cannot start the simulator on {addr}: {e}"),
            )
        })?;
    println!("simulator listening on {}", sim.base_url());
    println!("  client id:     {id}");
    println!("  client secret: {secret}   (a demo value, not a real secret)");
    println!(
        "  review worktype: {} (the one config/demo.toml names)",
        sim.org().worktype_id()
    );
    if other > 0.0 {
        println!(
            "  another user of every token spends {:.0} % of each rate-limit window",
            other * 100.0
        );
    }
    println!("  {agents} agents; try:");
    println!(
        "    curl -s -u {id}:{secret} -d grant_type=client_credentials {}/oauth/token",
        sim.base_url()
    );
    println!("    curl -s -H \"Authorization: Bearer $TOKEN\" '{}/api/v2/users?pageSize=5&expand=skills'", sim.base_url());
    let _ = tokio::signal::ctrl_c().await;
    sim.shutdown().await;
    Ok(ExitClass::Ok)
}
