//! Socket helpers for the event loop: non-blocking reads and writes, and who the peer is.

use super::queue::Peer;
use crate::metrics::Metrics;
use nix::errno::Errno;
use nix::sys::socket::{getpeername, recv, send, sockopt, MsgFlags, SockaddrStorage};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Outcome of a non-blocking read.
pub enum ReadOutcome {
    Data(usize),
    WouldBlock,
    Closed,
}

pub fn read_nonblocking(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    metrics: Option<&Metrics>,
) -> ReadOutcome {
    loop {
        // recv, not read: the socket call skips the file layer's position lock (perf: ~1 % of
        // a health request's CPU).
        match recv(fd.as_raw_fd(), buf, MsgFlags::empty()) {
            Ok(0) => return ReadOutcome::Closed,
            Ok(n) => {
                if let Some(m) = metrics {
                    m.add_received(n);
                }
                return ReadOutcome::Data(n);
            }
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return ReadOutcome::WouldBlock,
            Err(_) => return ReadOutcome::Closed,
        }
    }
}

/// Writes as much as the socket takes now. `Err` means the peer is gone. What went out is
/// counted in `heavy_api_http_sent_bytes_total` (one add per call), as reads are in
/// `heavy_api_http_received_bytes_total`.
pub fn write_nonblocking(
    fd: BorrowedFd<'_>,
    data: &[u8],
    metrics: Option<&Metrics>,
) -> Result<usize, Errno> {
    let mut written = 0;
    while written < data.len() {
        match send(
            fd.as_raw_fd(),
            &data[written..],
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(n) => written += n,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => break,
            Err(e) => {
                if let (true, Some(m)) = (written > 0, metrics) {
                    m.add_sent(written);
                }
                return Err(e);
            }
        }
    }
    if let (true, Some(m)) = (written > 0, metrics) {
        m.add_sent(written);
    }
    Ok(written)
}

/// Whether the peer has sent bytes we have not read yet.
pub fn has_pending_input(fd: BorrowedFd<'_>) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        nix::sys::socket::recv(fd.as_raw_fd(), &mut byte, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT),
        Ok(n) if n > 0
    )
}

/// The client's address: IP and port for TCP; empty for a Unix socket.
pub fn peer_of(fd: BorrowedFd<'_>) -> Peer {
    let addr = getpeername::<SockaddrStorage>(fd.as_raw_fd()).ok();
    if let Some(v4) = addr.as_ref().and_then(|a| a.as_sockaddr_in()) {
        Peer {
            ip: v4.ip().to_string(),
            port: Some(v4.port()),
        }
    } else if let Some(v6) = addr.as_ref().and_then(|a| a.as_sockaddr_in6()) {
        Peer {
            ip: v6.ip().to_string(),
            port: Some(v6.port()),
        }
    } else {
        Peer {
            ip: String::new(),
            port: None,
        }
    }
}

/// Turns off Nagle's algorithm on TCP connections (a no-op error on Unix sockets).
pub fn set_nodelay(fd: BorrowedFd<'_>) {
    let _ = nix::sys::socket::setsockopt(&fd, sockopt::TcpNoDelay, &true);
}
