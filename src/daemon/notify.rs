//! systemd's notification protocol (`sd_notify`): one datagram of `KEY=VALUE` lines to the
//! socket named by `$NOTIFY_SOCKET`. Written here rather than taken from a crate because it is
//! one `sendto` (the sd-notify crate also changed its API between 0.4 and 0.5).
//!
//! Without `$NOTIFY_SOCKET` (not under systemd, a container) every call is a no-op. Sending
//! is best effort: a failed notification is logged once at debug level, never fatal, because
//! the daemon's work must not depend on its supervisor listening.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where notifications go.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    addr: std::os::unix::net::SocketAddr,
    display: String,
}

/// Why `$NOTIFY_SOCKET` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET `{socket}` is not usable: {source}")]
    Socket {
        socket: String,
        source: std::io::Error,
    },
    #[error("NOTIFY_SOCKET `{0}` is neither an absolute path nor an abstract name (`@…`)")]
    Unsupported(String),
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Self {
            target: None,
            watchdog: None,
        }
    }

    /// Reads `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` / `$WATCHDOG_PID` from the environment.
    pub fn from_env() -> Result<Self, NotifyError> {
        let watchdog = watchdog_from(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        let target = match std::env::var("NOTIFY_SOCKET") {
            Ok(name) if !name.is_empty() => Some(Target::connect(&name)?),
            _ => None,
        };
        Ok(Self { target, watchdog })
    }

    /// A notifier for an explicit socket name (tests).
    pub fn for_socket(name: &str, watchdog: Option<Duration>) -> Result<Self, NotifyError> {
        Ok(Self {
            target: Some(Target::connect(name)?),
            watchdog,
        })
    }

    /// True when a supervisor listens.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The watchdog interval systemd expects pings within (`WatchdogSec=`), if any.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines).
    pub fn send(&self, state: &str) {
        if let Some(t) = &self.target {
            if let Err(e) = t.socket.send_to_addr(state.as_bytes(), &t.addr) {
                tracing::debug!(socket = %t.display, error = %e, "sd_notify failed");
            }
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// `RELOADING=1` with the `MONOTONIC_USEC` systemd requires to order it with `READY=1`.
    pub fn reloading(&self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading the config",
            monotonic_usec()
        ));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}"));
    }
}

impl Target {
    fn connect(name: &str) -> Result<Self, NotifyError> {
        let err = |source| NotifyError::Socket {
            socket: name.to_string(),
            source,
        };
        let addr = if let Some(abstract_name) = name.strip_prefix('@') {
            abstract_addr(abstract_name.as_bytes()).map_err(err)?
        } else if name.starts_with('/') {
            std::os::unix::net::SocketAddr::from_pathname(name).map_err(err)?
        } else {
            return Err(NotifyError::Unsupported(name.to_string()));
        };
        let socket = UnixDatagram::unbound().map_err(err)?;
        Ok(Self {
            socket,
            addr,
            display: name.to_string(),
        })
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> std::io::Result<std::os::unix::net::SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_name: &[u8]) -> std::io::Result<std::os::unix::net::SocketAddr> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

/// The watchdog interval when it is meant for this process (`WATCHDOG_PID` unset or ours).
fn watchdog_from(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(own_pid) {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
/// `std::time::Instant` does not expose its value, hence libc (already in the tree via tokio).
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to a local.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_only_for_our_pid() {
        assert_eq!(
            watchdog_from(Some("2000000"), None, 7),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            watchdog_from(Some("2000000"), Some("7"), 7),
            Some(Duration::from_secs(2))
        );
        assert_eq!(watchdog_from(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("x"), None, 7), None);
        assert_eq!(watchdog_from(None, None, 7), None);
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("st-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::for_socket(path.to_str().unwrap(), None).unwrap();
        n.reloading();
        let mut buf = [0u8; 256];
        let len = listener.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..len]).unwrap();
        assert!(text.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{text}");
        let usec: u64 = text.lines().nth(1).unwrap()["MONOTONIC_USEC=".len()..]
            .parse()
            .unwrap();
        assert!(usec > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("skill-tuner-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::for_socket(&format!("@{name}"), None).unwrap();
        n.ready("ok");
        let mut buf = [0u8; 256];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=ok");
    }

    #[test]
    fn relative_names_are_refused() {
        assert!(matches!(
            Notifier::for_socket("relative.sock", None),
            Err(NotifyError::Unsupported(_))
        ));
    }
}
