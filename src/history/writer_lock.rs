//! One writer per org and ledger: OS advisory locks on two files beside the ledger, per org.
//!
//! - `<ledger>.daemon.lock` is held by a daemon for as long as it runs the org's cycles on the
//!   ledger, so a second daemon for the same org on the same ledger is refused at start
//!   instead of running every cycle twice.
//! - `<ledger>.write.lock` is held by whatever writes to the org (a daemon's cycle, `once`,
//!   a rollback) for as long as it writes, so a person can roll back while the daemon idles
//!   but never in the middle of its cycle.
//!
//! Those are the names for the one org of a config without `[[orgs]]` (`default`); a listed
//! org's are `<ledger>.<org>.daemon.lock` and `<ledger>.<org>.write.lock`, so one org's
//! cycle never waits for, or refuses, another's. Two processes configured for one org on
//! two ledgers (two pods, two machines) cannot see each other here: the cycle's
//! second-writer warning is what shows them.
//!
//! Nobody waits: a refused process fails at once, naming the holder (pid, host, since, what),
//! which the holder wrote into the file. The kernel drops a lock when its process dies (even
//! on kill -9 or power loss), so a dead holder never blocks the next start; its stale line is
//! simply overwritten. The ledger itself is not locked: the read-only commands (`history`,
//! `show`, `export`, `diff`) never look at these files. The per-run lock files
//! (`<ledger>.run-<id>.lock`) are a different thing: they tell a live run from a crashed one
//! for reconciliation.

use crate::clock::Clock;
use crate::text::Printable;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which of the two locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// One daemon per ledger, for the daemon's lifetime.
    Daemon,
    /// One writer to the org at a time, for as long as it writes.
    Write,
}

impl LockKind {
    fn suffix(self) -> &'static str {
        match self {
            LockKind::Daemon => ".daemon.lock",
            LockKind::Write => ".write.lock",
        }
    }

    /// The lock file of this kind beside `ledger`, for the unlisted org (`default`).
    pub fn path_for(self, ledger: &Path) -> PathBuf {
        self.path_for_org(ledger, crate::config::DEFAULT_ORG)
    }

    /// The lock file of this kind beside `ledger` for `org` (see the module comment).
    pub fn path_for_org(self, ledger: &Path, org: &str) -> PathBuf {
        let mut name = ledger.as_os_str().to_owned();
        if org != crate::config::DEFAULT_ORG {
            name.push(format!(".{org}"));
        }
        name.push(self.suffix());
        PathBuf::from(name)
    }
}

/// Who holds a lock, as its holder wrote it into the lock file (one JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// When the lock was taken (RFC 3339, from the holder's clock).
    pub since: String,
    /// What the holder is doing: `daemon`, `scheduled cycle`, `once`, `rollback of run #3`.
    pub what: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Read back from a file anyone with access to the state directory could edit.
        write!(
            f,
            "pid {} on host {}, since {} ({})",
            self.pid,
            Printable(&self.host),
            Printable(&self.since),
            Printable(&self.what)
        )
    }
}

/// A lock another process holds, and who that is.
#[derive(Debug)]
pub struct Held {
    pub kind: LockKind,
    /// The org the lock is for.
    pub org: String,
    pub ledger: PathBuf,
    pub lock_file: PathBuf,
    /// `None` when the holder has not written its line yet (or the file was edited).
    pub holder: Option<Holder>,
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = self.holder.as_ref().map_or_else(
            || "a process that has not recorded itself yet".to_string(),
            Holder::to_string,
        );
        let (ledger, lock_file) = (self.ledger.display(), self.lock_file.display());
        let org = if self.org == crate::config::DEFAULT_ORG {
            String::new()
        } else {
            format!(" for org `{}`", self.org)
        };
        match self.kind {
            LockKind::Daemon => write!(
                f,
                "another skill-tuner daemon already runs{org} on the history ledger {ledger}: {who}. One daemon per org and ledger: stop that one first (lock file {lock_file})"
            ),
            LockKind::Write => write!(
                f,
                "another skill-tuner is writing to the org{org} from the history ledger {ledger}: {who}. Nothing was done (this never waits); run it again once that has finished (lock file {lock_file})"
            ),
        }
    }
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Boxed: the ledger's error type travels through every `Result` of the ledger.
    #[error("{0}")]
    Held(Box<Held>),
    #[error("history lock file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl LockError {
    /// True when another process holds the lock (exit 5), not when the file is unusable.
    pub fn is_held(&self) -> bool {
        matches!(self, LockError::Held(_))
    }
}

/// A held lock. Dropping it clears the holder line and releases the lock.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    path: PathBuf,
}

impl LockGuard {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Still ours while we truncate; the kernel releases the lock when the file closes.
        let _ = self.file.set_len(0);
    }
}

/// Takes the `kind` lock beside `ledger` without waiting, and records `what` with this
/// process's pid, host and `clock`'s now in it (the unlisted org's, `default`).
pub fn acquire(
    ledger: &Path,
    kind: LockKind,
    clock: &Clock,
    what: &str,
) -> Result<LockGuard, LockError> {
    acquire_for_org(ledger, crate::config::DEFAULT_ORG, kind, clock, what)
}

/// [`acquire`] for `org`'s lock.
pub fn acquire_for_org(
    ledger: &Path,
    org: &str,
    kind: LockKind,
    clock: &Clock,
    what: &str,
) -> Result<LockGuard, LockError> {
    let path = kind.path_for_org(ledger, org);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The ledger's own open creates it too; an error shows up in the open below.
        let _ = std::fs::create_dir_all(dir);
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(LockError::Held(Box::new(Held {
                kind,
                org: org.to_string(),
                ledger: ledger.to_path_buf(),
                holder: read_holder(&mut file),
                lock_file: path,
            })))
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    let holder = Holder {
        pid: std::process::id(),
        host: host_name(),
        since: clock
            .now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        what: what.to_string(),
    };
    if let Err(e) = write_holder(&mut file, &holder) {
        // The lock itself is the kernel's; the line only makes a refusal easier to act on.
        tracing::warn!(path = %path.display(), error = %e, "cannot record the lock holder; a refused process will not see who holds it");
    }
    Ok(LockGuard { file, path })
}

fn write_holder(file: &mut File, holder: &Holder) -> std::io::Result<()> {
    let mut line = serde_json::to_string(holder).map_err(std::io::Error::other)?;
    line.push('\n');
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(line.as_bytes())?;
    file.flush()
}

/// The holder's line; a holder that has only just taken the lock may not have written it
/// yet, so an empty file is read again a few times.
fn read_holder(file: &mut File) -> Option<Holder> {
    for attempt in 0..5 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut text = String::new();
        if file.rewind().is_err() || file.read_to_string(&mut text).is_err() {
            return None;
        }
        if !text.trim().is_empty() {
            return serde_json::from_str(text.trim()).ok();
        }
    }
    None
}

/// This machine's name, for the holder line (`unknown` if the OS will not say).
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match String::from_utf8_lossy(&buf[..end]).trim() {
        "" => "unknown".into(),
        name => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_ledger(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "skill-tuner-writer-lock-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("ledger.db")
    }

    fn at() -> Clock {
        Clock::manual(
            chrono::DateTime::parse_from_rfc3339("2027-05-12T12:00:00Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
        )
    }

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_line() {
        let ledger = temp_ledger("second");
        let first = acquire(&ledger, LockKind::Write, &at(), "once").unwrap();
        let err = acquire(&ledger, LockKind::Write, &at(), "scheduled cycle").unwrap_err();
        assert!(err.is_held(), "{err:?}");
        let LockError::Held(held) = &err else {
            unreachable!()
        };
        let holder = held.holder.clone().expect("the first holder's line");
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.since, "2027-05-12T12:00:00.000Z");
        assert_eq!(holder.what, "once");
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id()))
                && text.contains("since 2027-05-12T12:00:00.000Z")
                && text.contains(&holder.host),
            "{text}"
        );
        // The other kind is another file: a daemon may idle while `once` writes.
        let daemon = acquire(&ledger, LockKind::Daemon, &at(), "daemon").unwrap();
        drop(first);
        let again = acquire(&ledger, LockKind::Write, &at(), "rollback of run #1").unwrap();
        assert_eq!(again.path(), LockKind::Write.path_for(&ledger));
        drop((again, daemon));
        let _ = std::fs::remove_dir_all(ledger.parent().unwrap());
    }

    #[test]
    fn a_stale_line_left_by_a_dead_holder_is_overwritten() {
        let ledger = temp_ledger("stale");
        let path = LockKind::Daemon.path_for(&ledger);
        std::fs::write(
            &path,
            "{\"pid\":999999,\"host\":\"gone\",\"since\":\"2020-01-01T00:00:00Z\",\"what\":\"daemon\"}\n",
        )
        .unwrap();
        let guard = acquire(&ledger, LockKind::Daemon, &at(), "daemon").unwrap();
        let line: Holder = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(line.pid, std::process::id());
        drop(guard);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        let _ = std::fs::remove_dir_all(ledger.parent().unwrap());
    }

    #[test]
    fn a_holder_line_cannot_smuggle_control_characters_into_the_message() {
        let holder = Holder {
            pid: 1,
            host: "evil\x1b[2Jhost\nnext".into(),
            since: "now".into(),
            what: "daemon".into(),
        };
        let text = holder.to_string();
        assert!(!text.contains('\x1b') && !text.contains('\n'), "{text}");
    }
}
