//! The signals the daemon answers, as one stream of events.
//!
//! `tokio::signal::unix` already sits on signal-hook's registry, so signal-hook itself adds
//! nothing here. Handlers are installed before the daemon reports ready, so a SIGHUP sent by
//! `systemctl reload` can never hit the default action (terminate).

use tokio::signal::unix::{signal, Signal, SignalKind};

/// One received signal, by meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    /// SIGHUP: re-read the config.
    Reload,
    /// SIGUSR1: run a cycle now.
    RunNow,
    /// SIGTERM or SIGINT: stop (a second one: stop at once).
    Terminate(&'static str),
}

/// The installed handlers.
#[derive(Debug)]
pub struct Signals {
    hup: Signal,
    usr1: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the handlers (needs a tokio runtime).
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next signal. Cancel-safe (each `recv` is), so it can sit in a `select!`.
    pub async fn next(&mut self) -> Sig {
        loop {
            let sig = tokio::select! {
                s = self.hup.recv() => s.map(|()| Sig::Reload),
                s = self.usr1.recv() => s.map(|()| Sig::RunNow),
                s = self.term.recv() => s.map(|()| Sig::Terminate("SIGTERM")),
                s = self.int.recv() => s.map(|()| Sig::Terminate("SIGINT")),
            };
            if let Some(sig) = sig {
                return sig;
            }
            // A closed stream only happens when the runtime shuts down; do not spin.
            std::future::pending::<()>().await;
        }
    }
}
