//! The one edge error: every library error a command can meet becomes the message printed
//! after `error:` and the exit status, here and nowhere else. The classes themselves are the
//! library's table ([`ExitClass`]), which the README, `--help` and the systemd unit quote.

use skill_tuner::audit::AuditError;
use skill_tuner::clock::ClockEnvError;
use skill_tuner::config::ConfigError;
use skill_tuner::cycle::CycleError;
use skill_tuner::daemon::DaemonError;
use skill_tuner::exit::ExitClass;
use skill_tuner::genesys::ApiError;
use skill_tuner::history::LedgerError;
use skill_tuner::runtime::StartupError;
use std::fmt::Display;
use std::process::ExitCode;

/// A command that could not do its job: what to tell the operator and which exit status says
/// so.
#[derive(Debug)]
pub struct Failure {
    message: String,
    class: ExitClass,
}

impl Failure {
    /// A failure the edge itself meets (an unwritable standard output, a port in use).
    pub fn new(class: ExitClass, message: impl Display) -> Self {
        Self {
            message: message.to_string(),
            class,
        }
    }

    /// Adds a line saying what the command does about it.
    pub fn note(mut self, line: &str) -> Self {
        self.message.push('\n');
        self.message.push_str(line);
        self
    }

    /// Tells the operator, on standard error.
    pub fn print(&self) {
        eprintln!("error: {}", self.message);
    }

    /// Tells the operator and gives the process's exit status.
    pub fn exit(self) -> ExitCode {
        self.print();
        self.class.into()
    }
}

/// Each library error with the class the exit table gives it.
macro_rules! classified {
    ($($error:ty => $class:expr;)*) => {$(
        impl From<$error> for Failure {
            fn from(e: $error) -> Self {
                let class: fn(&$error) -> ExitClass = $class;
                Failure::new(class(&e), e)
            }
        }
    )*};
}

classified! {
    // Several orgs and no `--org` (or an unknown one) is how the command was called.
    ConfigError => |e| match e {
        ConfigError::Org(_) => ExitClass::Usage,
        _ => ExitClass::BadConfig,
    };
    // `SKILL_TUNER_NOW` is configuration too.
    ClockEnvError => |_| ExitClass::BadConfig;
    StartupError => ExitClass::of_startup;
    // The API errors that reach the edge on their own are failed logins.
    ApiError => ExitClass::of_login;
    LedgerError => ExitClass::of_ledger;
    CycleError => ExitClass::of_cycle;
    DaemonError => ExitClass::of_daemon;
    // A refused request (rolling back a dry run or a rollback, an unfinished run) is a
    // failed command, not a bad config: 2 stays reserved for what restarting cannot fix.
    AuditError => |e| match e {
        AuditError::Ledger(l) => ExitClass::of_ledger(l),
        _ => ExitClass::Failed,
    };
}

#[cfg(feature = "simulator")]
classified! {
    skill_tuner::demo::DemoError => |_| ExitClass::Failed;
    skill_tuner::bench::BenchError => |_| ExitClass::Failed;
    skill_tuner::simulate::SimulateError => |_| ExitClass::Failed;
}
