//! What every command that reads a config does first: load it, then start logging as it
//! says.

use super::{ConfigArg, Failure, OrgArg};
use skill_tuner::clock::Clock;
use skill_tuner::config::{LogFormat, Orgs, Settings};
use skill_tuner::exit::ExitClass;

pub fn init_logging(level: &str, format: LogFormat) {
    // An invalid RUST_LOG is said, not silently replaced by `log.level`.
    let filter = match std::env::var("RUST_LOG") {
        Ok(text) if !text.trim().is_empty() => {
            tracing_subscriber::EnvFilter::try_new(&text).unwrap_or_else(|e| {
                eprintln!("warning: RUST_LOG=`{text}` is not a log filter ({e}); using log.level = `{level}`");
                tracing_subscriber::EnvFilter::new(level)
            })
        }
        _ => tracing_subscriber::EnvFilter::new(level),
    };
    // Colours only on a terminal: journald, files and log shippers get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        // One flat object per event: its fields at the top level beside `level`, `target`
        // and the current span (not the span list as well), as log shippers expect.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// Loads the config (every org), then starts logging as it says, then logs the config
/// file's permission warnings (before logging starts they would be lost).
pub fn load_orgs(config: &ConfigArg) -> Result<Orgs, Failure> {
    let (orgs, warnings) = Orgs::load_reporting(&config.config, true)?;
    let log = &orgs.process().log;
    init_logging(&log.level, log.format);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    Ok(orgs)
}

/// [`load_orgs`], then the org `--org` names (optional with one org): a missing or unknown
/// name is a usage error listing the config's orgs.
pub fn load(config: &ConfigArg, org: &OrgArg) -> Result<Settings, Failure> {
    let orgs = load_orgs(config)?;
    let chosen = orgs
        .choose(org.org.as_deref())
        .map_err(|e| Failure::new(ExitClass::Usage, e))?;
    Ok(chosen.clone())
}

/// A clock moved by `SKILL_TUNER_NOW` is for tests and simulations; say so loudly.
pub fn warn_if_shifted(clock: &Clock) {
    if !clock.is_system() {
        tracing::warn!(
            now = %clock.now().to_rfc3339(),
            variable = skill_tuner::clock::NOW_ENV,
            "the clock is shifted (tests and simulations only): the metrics window and the schedule follow it"
        );
    }
}
