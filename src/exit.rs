//! The process exit codes, in one place. Every command maps its result through
//! [`ExitClass`], and the README, `--help` ([`HELP`]) and the systemd unit
//! (`RestartPreventExitStatus=2 5`) quote this table, so a supervisor can tell a broken
//! config (restarting cannot help) from a failure worth retrying.

use crate::cycle::CycleError;
use crate::daemon::DaemonError;
use crate::genesys::ApiError;
use crate::history::{LedgerError, RunOutcome};
use crate::runtime::StartupError;

/// What a command's exit status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitClass {
    /// 0: done, or a dry run.
    Ok,
    /// 1: failed (the API unreachable, the ledger unusable, a cycle error); a retry may help.
    Failed,
    /// 2: the config or the credentials are unusable (invalid value, no secret, the login
    /// refused the secret, a skill name the org does not have): fix them first.
    BadConfig,
    /// 3: the blast-radius breaker stopped the cycle, or tuning is paused on harm; nothing
    /// was applied.
    Breaker,
    /// 4: partial: some writes or alerts failed, or a shutdown stopped the cycle.
    Partial,
    /// 5: another writer holds the ledger (another skill-tuner on the same file).
    LedgerBusy,
    /// 64 (`EX_USAGE`): an unknown command, flag or argument value.
    Usage,
}

/// The table for `--help` (and, in the same words, README.md and deploy/README.md).
pub const HELP: &str = "\
Exit codes:
  0   ok (or a dry run)
  1   failed
  2   bad config or credentials (restarting cannot help)
  3   breaker tripped: nothing applied
  4   partial: some writes or alerts failed, or a shutdown stopped the cycle
  5   another writer holds the history ledger
  64  usage error (unknown command, flag or value)";

impl ExitClass {
    /// The process exit status.
    pub const fn code(self) -> u8 {
        match self {
            ExitClass::Ok => 0,
            ExitClass::Failed => 1,
            ExitClass::BadConfig => 2,
            ExitClass::Breaker => 3,
            ExitClass::Partial => 4,
            ExitClass::LedgerBusy => 5,
            ExitClass::Usage => 64,
        }
    }

    /// A cycle's (or rollback's) outcome.
    pub fn of_outcome(outcome: RunOutcome) -> Self {
        match outcome {
            RunOutcome::Ok | RunOutcome::DryRun | RunOutcome::NothingToDo => ExitClass::Ok,
            RunOutcome::Breaker | RunOutcome::Paused => ExitClass::Breaker,
            // A shutdown stopped the cycle part-way: what landed is recorded, the rest not sent.
            RunOutcome::Partial | RunOutcome::Interrupted => ExitClass::Partial,
            RunOutcome::Failed => ExitClass::Failed,
        }
    }

    /// A failed login: refused credentials are a config problem, anything else a failure.
    pub fn of_login(error: &ApiError) -> Self {
        if error.is_credentials_rejected() {
            ExitClass::BadConfig
        } else {
            ExitClass::Failed
        }
    }

    pub fn of_ledger(error: &LedgerError) -> Self {
        match error {
            LedgerError::Locked { .. } => ExitClass::LedgerBusy,
            LedgerError::Lock(e) if e.is_held() => ExitClass::LedgerBusy,
            _ => ExitClass::Failed,
        }
    }

    pub fn of_startup(error: &StartupError) -> Self {
        match error {
            StartupError::Config(_) => ExitClass::BadConfig,
            StartupError::Api(e) => Self::of_login(e),
            StartupError::Ledger(e) => Self::of_ledger(e),
        }
    }

    pub fn of_cycle(error: &CycleError) -> Self {
        match error {
            CycleError::UnknownSkills(_) => ExitClass::BadConfig,
            CycleError::Ledger(e) => Self::of_ledger(e),
            CycleError::Collect(_) => ExitClass::Failed,
        }
    }

    /// A daemon that could not start: an unusable admin address or schedule is config.
    pub fn of_daemon(error: &DaemonError) -> Self {
        match error {
            DaemonError::Signals(_) => ExitClass::Failed,
            DaemonError::Startup(e) => Self::of_startup(e),
            DaemonError::AdminListen { .. } | DaemonError::Schedule(_) => ExitClass::BadConfig,
            DaemonError::Org { source, .. } => Self::of_daemon(source),
        }
    }
}

impl From<ExitClass> for std::process::ExitCode {
    fn from(class: ExitClass) -> Self {
        std::process::ExitCode::from(class.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_table_lists_every_code() {
        for class in [
            ExitClass::Ok,
            ExitClass::Failed,
            ExitClass::BadConfig,
            ExitClass::Breaker,
            ExitClass::Partial,
            ExitClass::LedgerBusy,
            ExitClass::Usage,
        ] {
            let line = format!("\n  {:<3} ", class.code());
            assert!(
                HELP.contains(&line) || HELP.starts_with(line.trim_start_matches('\n')),
                "{class:?} missing from the help table"
            );
        }
    }

    #[test]
    fn outcomes_map_to_their_codes() {
        let code = |outcome| ExitClass::of_outcome(outcome).code();
        assert_eq!(code(RunOutcome::Ok), 0);
        assert_eq!(code(RunOutcome::DryRun), 0);
        assert_eq!(code(RunOutcome::NothingToDo), 0);
        assert_eq!(code(RunOutcome::Breaker), 3);
        assert_eq!(code(RunOutcome::Partial), 4);
        assert_eq!(code(RunOutcome::Interrupted), 4);
        assert_eq!(code(RunOutcome::Failed), 1);
    }
}
