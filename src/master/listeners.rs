//! The master's listening sockets: bound once, inherited by every worker at fork.

use crate::config::BindSpec;
use crate::log;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{
    bind, getsockname, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    SockaddrIn6, SockaddrStorage, UnixAddr,
};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

pub struct Listener {
    fd: OwnedFd,
    /// The address it is bound to, as `Listening at:` shows it.
    pub url: String,
    unix_path: Option<PathBuf>,
}

impl Listener {
    /// The socket itself, for a forked worker to own (a Unix socket's file stays).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Closes the socket (and removes a Unix socket's file).
    pub fn close(self) {
        if let Some(path) = &self.unix_path {
            let _ = std::fs::remove_file(path);
        }
        drop(self.fd);
    }
}

#[derive(Debug)]
pub struct BindError(pub String);

/// Binds every spec. An address in use is retried five times a second apart, as Gunicorn does.
///
/// A descriptor given twice (`--bind fd://3 --bind fd://3`) is adopted once, with a WARNING:
/// two owners would close it twice. Gunicorn duplicates the descriptor for each `--bind` and
/// serves on it, so its users expect the server to start, listening on that socket once.
pub fn bind_all(specs: &[BindSpec], backlog: i32) -> Result<Vec<Listener>, BindError> {
    let mut listeners = Vec::with_capacity(specs.len());
    let mut adopted = Vec::new();
    for spec in specs {
        if let BindSpec::Fd(raw) = spec {
            if adopted.contains(raw) {
                log::warning(&format!(
                    "--bind {spec} is given more than once; listening on it once"
                ));
                continue;
            }
            adopted.push(*raw);
        }
        listeners.push(bind_with_retry(spec, backlog)?);
    }
    Ok(listeners)
}

fn bind_with_retry(spec: &BindSpec, backlog: i32) -> Result<Listener, BindError> {
    const ATTEMPTS: u32 = 5;
    for _ in 0..ATTEMPTS {
        match bind_one(spec, backlog) {
            Ok(listener) => return Ok(listener),
            Err(nix::errno::Errno::EADDRINUSE) => {
                // Gunicorn says it retries (and waits) after every attempt, the last one too.
                log::error(&format!("Connection in use: {}", gunicorn_addr(spec)));
                log::error("Retrying in 1 second.");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(err) if matches!(spec, BindSpec::Fd(_)) => {
                return Err(BindError(format!(
                    "Can't use {spec}: not an open listening socket ({})",
                    err.desc()
                )))
            }
            Err(err) => {
                return Err(BindError(format!(
                    "Can't connect to {}: {}",
                    gunicorn_addr(spec),
                    err.desc()
                )))
            }
        }
    }
    Err(BindError(format!(
        "Can't connect to {}",
        gunicorn_addr(spec)
    )))
}

/// Gunicorn prints addresses as Python tuples: `('127.0.0.1', 8000)`.
fn gunicorn_addr(spec: &BindSpec) -> String {
    match spec {
        BindSpec::Tcp { host, port } => format!("('{host}', {port})"),
        other => other.to_string(),
    }
}

fn bind_one(spec: &BindSpec, backlog: i32) -> nix::Result<Listener> {
    match spec {
        BindSpec::Tcp { host, port } => {
            let addr = resolve(host, *port)?;
            let family = if addr.is_ipv6() {
                AddressFamily::Inet6
            } else {
                AddressFamily::Inet
            };
            let fd = socket(family, SockType::Stream, SockFlag::SOCK_NONBLOCK, None)?;
            setsockopt(&fd, sockopt::ReuseAddr, &true)?;
            if addr.is_ipv6() {
                setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
            }
            match addr {
                SocketAddr::V4(v4) => bind(fd.as_raw_fd(), &SockaddrIn::from(v4))?,
                SocketAddr::V6(v6) => bind(fd.as_raw_fd(), &SockaddrIn6::from(v6))?,
            }
            listen(&fd, backlog)?;
            let bound: SockaddrStorage = getsockname(fd.as_raw_fd())?;
            let url = match (bound.as_sockaddr_in(), bound.as_sockaddr_in6()) {
                (Some(v4), _) => format!("http://{}:{}", v4.ip(), v4.port()),
                (_, Some(v6)) => format!("http://[{}]:{}", v6.ip(), v6.port()),
                _ => format!("http://{spec}"),
            };
            Ok(Listener {
                fd,
                url,
                unix_path: None,
            })
        }
        BindSpec::Unix(path) => {
            remove_stale_socket(path);
            let fd = socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_NONBLOCK,
                None,
            )?;
            bind(fd.as_raw_fd(), &UnixAddr::new(path.as_path())?)?;
            listen(&fd, backlog)?;
            Ok(Listener {
                fd,
                url: format!("unix:{}", path.display()),
                unix_path: Some(path.clone()),
            })
        }
        BindSpec::Fd(raw) => {
            // Adopt only an open, listening socket: `fd://2` must not take over stderr.
            if !is_listening_socket(*raw)? {
                return Err(nix::errno::Errno::ENOTSOCK);
            }
            // SAFETY: an open listening socket the user handed us to own (`fd://N`).
            let fd = unsafe { OwnedFd::from_raw_fd(*raw) };
            // Non-blocking for accept4 in the event loops, keeping its other status flags.
            let flags = fcntl(&fd, FcntlArg::F_GETFL)?;
            fcntl(
                &fd,
                FcntlArg::F_SETFL(OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK),
            )?;
            let url = match getsockname::<SockaddrStorage>(*raw)
                .ok()
                .and_then(|a| a.as_sockaddr_in().copied())
            {
                Some(v4) => format!("http://{}:{}", v4.ip(), v4.port()),
                None => format!("fd://{raw}"),
            };
            Ok(Listener {
                fd,
                url,
                unix_path: None,
            })
        }
    }
}

/// `listen(2)` with the backlog as given: the kernel caps it at `net.core.somaxconn` (libc's
/// `SOMAXCONN` constant differs between glibc and musl and says nothing about this machine).
fn listen(fd: &OwnedFd, backlog: i32) -> nix::Result<()> {
    // SAFETY: listen on a socket we own.
    nix::errno::Errno::result(unsafe { libc::listen(fd.as_raw_fd(), backlog) }).map(drop)
}

/// The kernel's cap on listen backlogs, when readable.
pub fn somaxconn() -> Option<i32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether `raw` is an open socket in the listening state (`SO_ACCEPTCONN`).
fn is_listening_socket(raw: RawFd) -> nix::Result<bool> {
    // SAFETY: F_GETFD only asks whether the descriptor is open.
    if unsafe { libc::fcntl(raw, libc::F_GETFD) } < 0 {
        return Err(nix::errno::Errno::EBADF);
    }
    // SAFETY: borrowed only for this call; `raw` is open (checked above).
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
    match nix::sys::socket::getsockopt(&fd, sockopt::AcceptConn) {
        Ok(listening) => Ok(listening),
        Err(nix::errno::Errno::ENOTSOCK) => Ok(false),
        Err(err) => Err(err),
    }
}

fn resolve(host: &str, port: u16) -> nix::Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .map_err(|_| nix::errno::Errno::EADDRNOTAVAIL)?
        .next()
        .ok_or(nix::errno::Errno::EADDRNOTAVAIL)
}

/// A socket file left by a previous run would make bind fail; remove it only if it is a socket.
fn remove_stale_socket(path: &std::path::Path) {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
}
