//! Signals as a queue: each handler only writes its signal number into a non-blocking self-pipe
//! (async-signal-safe), and the process's own loop reads them back one at a time, in order.
//! The pipe's read end is also the loop's wake-up: a signal is seen at once.

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use signal_hook::low_level::{register, unregister};
use signal_hook::SigId;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

pub struct SignalPipe {
    read: OwnedFd,
    write: OwnedFd,
    ids: Vec<SigId>,
}

impl SignalPipe {
    /// Installs handlers for `signals`. The pipe holds 64 KiB of pending signals; beyond that
    /// (a flood nobody is reading) further ones are dropped, as Gunicorn caps its queue.
    pub fn install(signals: &[libc::c_int]) -> io::Result<SignalPipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        let fd = write.as_raw_fd();
        let mut ids = Vec::with_capacity(signals.len());
        for &signal in signals {
            let byte = signal as u8;
            // SAFETY: the action only calls write(2), which is async-signal-safe, on a
            // descriptor that outlives the registration (it is unregistered first).
            let id = unsafe {
                register(signal, move || {
                    let saved = *libc::__errno_location();
                    libc::write(fd, (&byte as *const u8).cast(), 1);
                    *libc::__errno_location() = saved;
                })
            }?;
            ids.push(id);
        }
        Ok(SignalPipe { read, write, ids })
    }

    /// The next queued signal, if any.
    pub fn pop(&self) -> Option<libc::c_int> {
        let mut byte = [0u8; 1];
        match nix::unistd::read(&self.read, &mut byte) {
            Ok(1) => Some(libc::c_int::from(byte[0])),
            _ => None,
        }
    }

    /// Waits until a signal is queued or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(self.read.as_fd(), PollFlags::POLLIN)];
        let _ = poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        );
    }

    /// The read end, for a loop that waits on other descriptors too (epoll).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Removes the handlers and closes the pipe (a forked child does this with its parent's).
    pub fn uninstall(self) {
        for id in &self.ids {
            unregister(*id);
        }
        drop(self.read);
        drop(self.write);
    }
}

/// Gunicorn's lower-case signal name, as in `Handling signal: term`.
pub fn name(signal: libc::c_int) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().trim_start_matches("SIG").to_ascii_lowercase())
        .unwrap_or_else(|_| signal.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_queue_in_arrival_order_and_wake_the_waiter() {
        let pipe = SignalPipe::install(&[libc::SIGUSR2, libc::SIGWINCH]).unwrap();
        assert_eq!(pipe.pop(), None);
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGWINCH).unwrap();
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGUSR2).unwrap();
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGWINCH).unwrap();
        pipe.wait(Duration::from_secs(5));
        assert_eq!(pipe.pop(), Some(libc::SIGWINCH));
        assert_eq!(pipe.pop(), Some(libc::SIGUSR2));
        assert_eq!(pipe.pop(), Some(libc::SIGWINCH));
        assert_eq!(pipe.pop(), None);
        pipe.uninstall();
    }

    #[test]
    fn names_are_gunicorns() {
        assert_eq!(name(libc::SIGTERM), "term");
        assert_eq!(name(libc::SIGTTIN), "ttin");
    }
}
