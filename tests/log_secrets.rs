//! Secrets never reach the logs. In a test binary of its own, apart from `tests/it`: it
//! installs the process-global tracing subscriber, the only kind that also sees what the
//! client's background tasks (the token refresher) log, and it must see nothing but its own
//! client's events, which no test running beside it may add to.

// This binary uses a part of the shared helpers; `tests/it` uses all of them.
#[allow(dead_code)]
#[path = "it/common/mod.rs"]
mod common;

use common::capture::Capture;
use common::sim::client_config_for;
use genesys_sim::{SimConfig, Simulator};
use skill_tuner::genesys::GenesysClient;

fn client_for(sim: &Simulator, secret: &str) -> GenesysClient {
    GenesysClient::new(client_config_for(sim, secret)).unwrap()
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    // Collects everything tracing writes, to grep it for secrets.
    let captured = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let secret = SimConfig::default().client_secret;
    let client = client_for(&sim, &secret);
    tracing::debug!(?client, "client built");
    client.list_skills().await.unwrap();
    sim.faults().revoke_tokens();
    client.list_skills().await.unwrap();
    let bad = client_for(&sim, "another-secret-xyz");
    let _ = bad.list_skills().await;
    let logs = String::from_utf8(captured.bytes()).unwrap();
    assert!(
        logs.contains("obtained an access token"),
        "logging was captured: {logs}"
    );
    assert!(!logs.contains(&secret) && !logs.contains("another-secret-xyz"));
    assert!(!logs.to_ascii_lowercase().contains("bearer "), "{logs}");
}
