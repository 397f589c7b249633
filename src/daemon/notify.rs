//! systemd's notification protocol (`sd_notify`) through the `sd-notify` crate.
//!
//! One case the crate cannot serve is kept here: an abstract socket (`NOTIFY_SOCKET=@name`,
//! which sd_notify(3) allows). sd-notify 0.5 connects to the variable's value as a file
//! path, so `@name` would never arrive; those datagrams are sent by `Target::Abstract`,
//! in the crate's own message format.
//!
//! Without `$NOTIFY_SOCKET` (not under systemd, a container) every call is a no-op. Sending
//! is best effort: a failed notification is logged at debug level, never fatal, because the
//! daemon's work must not depend on its supervisor listening.

use sd_notify::NotifyState;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where notifications go.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
}

#[derive(Debug)]
enum Target {
    /// A socket file: `sd_notify::notify` sends, reading `$NOTIFY_SOCKET` itself.
    Crate,
    /// An abstract socket, which the crate cannot reach.
    Abstract {
        socket: UnixDatagram,
        addr: std::os::unix::net::SocketAddr,
        name: String,
    },
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
        // `WATCHDOG_USEC=0` means no watchdog; the crate would return a zero interval.
        let watchdog = sd_notify::watchdog_enabled().filter(|d| !d.is_zero());
        let socket = std::env::var_os("NOTIFY_SOCKET");
        Self::for_name(socket.as_deref().unwrap_or_default(), watchdog)
    }

    /// A notifier for the socket `name` names (empty: none).
    fn for_name(name: &OsStr, watchdog: Option<Duration>) -> Result<Self, NotifyError> {
        let bytes = name.as_bytes();
        let target = match bytes.first() {
            None => None,
            Some(b'/') => Some(Target::Crate),
            Some(b'@') => Some(Target::abstract_socket(&bytes[1..], name)?),
            Some(_) => {
                return Err(NotifyError::Unsupported(
                    name.to_string_lossy().into_owned(),
                ))
            }
        };
        Ok(Self { target, watchdog })
    }

    /// True when a supervisor listens.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The watchdog interval systemd expects pings within (`WatchdogSec=`), if any.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        let result = match &self.target {
            None => return,
            Some(Target::Crate) => sd_notify::notify(states),
            Some(Target::Abstract { socket, addr, .. }) => socket
                .send_to_addr(message(states).as_bytes(), addr)
                .map(drop),
        };
        if let Err(e) = result {
            let socket = match &self.target {
                Some(Target::Abstract { name, .. }) => name.as_str(),
                _ => "$NOTIFY_SOCKET",
            };
            tracing::debug!(socket, error = %e, "sd_notify failed");
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// `RELOADING=1` with the `MONOTONIC_USEC` systemd requires to order it with `READY=1`.
    pub fn reloading(&self) {
        let status = NotifyState::Status("reloading the config");
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now, status]),
            Err(e) => {
                tracing::debug!(error = %e, "no CLOCK_MONOTONIC for MONOTONIC_USEC");
                self.send(&[NotifyState::Reloading, status]);
            }
        }
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }
}

/// The datagram `sd_notify::notify` would send: one `KEY=VALUE` line per state.
fn message(states: &[NotifyState<'_>]) -> String {
    states.iter().map(|s| format!("{s}\n")).collect()
}

impl Target {
    fn abstract_socket(abstract_name: &[u8], name: &OsStr) -> Result<Self, NotifyError> {
        let err = |source| NotifyError::Socket {
            socket: name.to_string_lossy().into_owned(),
            source,
        };
        let addr = abstract_addr(abstract_name).map_err(err)?;
        let socket = UnixDatagram::unbound().map_err(err)?;
        Ok(Target::Abstract {
            socket,
            addr,
            name: name.to_string_lossy().into_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_file_is_left_to_the_crate_and_no_socket_to_nobody() {
        let n = Notifier::for_name(OsStr::new("/run/systemd/notify"), None).unwrap();
        assert!(matches!(n.target, Some(Target::Crate)));
        let n = Notifier::for_name(OsStr::new(""), Some(Duration::from_secs(2))).unwrap();
        assert!(!n.is_enabled());
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(2)));
    }

    /// The path the crate cannot take: `@name`, with MONOTONIC_USEC on RELOADING.
    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("skill-tuner-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::for_name(OsStr::new(&format!("@{name}")), None).unwrap();
        n.ready("ok");
        let mut buf = [0u8; 256];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=ok\n");
        n.reloading();
        let len = listener.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..len]).unwrap();
        assert!(text.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{text}");
        let usec: u64 = text.lines().nth(1).unwrap()["MONOTONIC_USEC=".len()..]
            .parse()
            .unwrap();
        assert!(usec > 0);
    }

    #[test]
    fn relative_names_are_refused() {
        assert!(matches!(
            Notifier::for_name(OsStr::new("relative.sock"), None),
            Err(NotifyError::Unsupported(_))
        ));
    }
}
