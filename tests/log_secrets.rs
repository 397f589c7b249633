//! Secrets never reach the logs. In a test binary of its own: tracing caches per-callsite
//! interest process-wide, so a scoped subscriber racing with other tests could miss events.

use secrecy::SecretString;
use skill_tuner::genesys::{ClientConfig, Credentials, Endpoints, GenesysClient};
use skill_tuner::sim::{SimConfig, Simulator};
use std::sync::{Arc, Mutex};

fn client_for(sim: &Simulator, secret: &str) -> GenesysClient {
    let base = sim.base_url();
    let endpoints = Endpoints::resolve("us-east-1", Some(&base), Some(&base), false).unwrap();
    let mut config = ClientConfig::new(
        endpoints,
        Credentials {
            client_id: SimConfig::default().client_id,
            client_secret: SecretString::from(secret.to_string()),
        },
    );
    config.rate_limit_per_minute = 0;
    GenesysClient::new(config).unwrap()
}

/// Collects everything tracing writes, to grep it for secrets.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
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
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("obtained an access token"),
        "logging was captured: {logs}"
    );
    assert!(!logs.contains(&secret) && !logs.contains("another-secret-xyz"));
    assert!(!logs.to_ascii_lowercase().contains("bearer "), "{logs}");
}
