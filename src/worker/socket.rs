//! Socket helpers for the worker: non-blocking reads and writes, peer names, and a bounded
//! blocking write for handler threads.

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{getpeername, send, sockopt, MsgFlags, SockaddrStorage};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

/// Outcome of a non-blocking read.
pub enum ReadOutcome {
    Data(usize),
    WouldBlock,
    Closed,
}

pub fn read_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> ReadOutcome {
    loop {
        match nix::unistd::read(fd, buf) {
            Ok(0) => return ReadOutcome::Closed,
            Ok(n) => return ReadOutcome::Data(n),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return ReadOutcome::WouldBlock,
            Err(_) => return ReadOutcome::Closed,
        }
    }
}

/// Writes as much as the socket takes now. `Err` means the peer is gone.
pub fn write_nonblocking(fd: BorrowedFd<'_>, data: &[u8]) -> Result<usize, Errno> {
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
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Writes all of `data`, waiting for the socket at most `timeout` in all. For handler threads,
/// which may block; a client that stops reading cannot hold the thread longer than that.
pub fn write_all_within(fd: BorrowedFd<'_>, data: &[u8], timeout: Duration) -> Result<(), Errno> {
    let deadline = Instant::now() + timeout;
    let mut written = 0;
    while written < data.len() {
        written += write_nonblocking(fd, &data[written..])?;
        if written == data.len() {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Errno::ETIMEDOUT);
        }
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
        let ms = left.as_millis().clamp(1, u16::MAX as u128) as u16;
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether the peer has sent bytes we have not read yet.
pub fn has_pending_input(fd: BorrowedFd<'_>) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        nix::sys::socket::recv(fd.as_raw_fd(), &mut byte, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT),
        Ok(n) if n > 0
    )
}

/// The client's address as the access log shows it (`%(h)s`): the IP for TCP, empty for Unix.
pub fn peer_name(fd: BorrowedFd<'_>) -> String {
    let Ok(addr) = getpeername::<SockaddrStorage>(fd.as_raw_fd()) else {
        return String::new();
    };
    if let Some(v4) = addr.as_sockaddr_in() {
        v4.ip().to_string()
    } else if let Some(v6) = addr.as_sockaddr_in6() {
        v6.ip().to_string()
    } else {
        String::new()
    }
}

/// Turns off Nagle's algorithm on TCP connections (a no-op error on Unix sockets).
pub fn set_nodelay(fd: BorrowedFd<'_>) {
    let _ = nix::sys::socket::setsockopt(&fd, sockopt::TcpNoDelay, &true);
}

/// Checks that an inherited descriptor is an open, listening socket.
pub fn check_listener(fd: RawFd) -> Result<(), Errno> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: plain getsockopt into a local int; a closed or non-socket descriptor is reported
    // as an error, which is what this check is for.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    match (rc, value) {
        (0, 1) => Ok(()),
        (0, _) => Err(Errno::EINVAL),
        _ => Err(Errno::last()),
    }
}
