//! Signals as a queue: each handler only writes its signal number into a non-blocking self-pipe
//! (async-signal-safe), and the process's own loop reads them back one at a time, in order.
//! The pipe's read end is also the loop's wake-up: a signal is seen at once.
//!
//! The handlers are installed with `sigaction` directly (not `signal-hook`) so that dropping the
//! pipe puts back exactly the dispositions that were there before: a forked worker must not keep
//! the master's handlers, and `signal-hook` cannot uninstall its own.

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// The write end of the installed pipe, for the handler; -1 when none is installed.
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    let byte = signal as u8;
    // SAFETY: write(2) on a pipe, and errno saved and restored: all async-signal-safe.
    unsafe {
        let saved = *libc::__errno_location();
        libc::write(fd, (&byte as *const u8).cast(), 1);
        *libc::__errno_location() = saved;
    }
}

/// The process's signal queue. At most one exists at a time; dropping it restores the signal
/// dispositions it replaced and closes the pipe.
pub struct SignalPipe {
    read: OwnedFd,
    write: OwnedFd,
    previous: Vec<(Signal, SigAction)>,
}

impl SignalPipe {
    /// Installs handlers for `signals`. The pipe holds 64 KiB of pending signals; beyond that
    /// (a flood nobody is reading) further ones are dropped, as Gunicorn caps its queue.
    pub fn install(signals: &[Signal]) -> io::Result<SignalPipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        if WRITE_FD
            .compare_exchange(-1, write.as_raw_fd(), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a signal pipe is already installed",
            ));
        }
        let mut pipe = SignalPipe {
            read,
            write,
            previous: Vec::with_capacity(signals.len()),
        };
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for &signal in signals {
            // SAFETY: the handler only calls async-signal-safe functions (see `on_signal`).
            let previous = unsafe { sigaction(signal, &action) }?;
            pipe.previous.push((signal, previous));
        }
        Ok(pipe)
    }

    /// The next queued signal, if any.
    pub fn pop(&self) -> Option<Signal> {
        let mut byte = [0u8; 1];
        match nix::unistd::read(&self.read, &mut byte) {
            Ok(1) => Signal::try_from(libc::c_int::from(byte[0])).ok(),
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
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        for (signal, previous) in self.previous.drain(..).rev() {
            // SAFETY: puts back a disposition that was installed before ours.
            let _ = unsafe { sigaction(signal, &previous) };
        }
        let _ = WRITE_FD.compare_exchange(
            self.write.as_raw_fd(),
            -1,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}

/// Gunicorn's lower-case signal name, as in `Handling signal: term`.
pub fn name(signal: Signal) -> String {
    signal
        .as_str()
        .trim_start_matches("SIG")
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disposition(signal: Signal) -> SigHandler {
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: reads the disposition by swapping in SIG_IGN and straight back.
        let current = unsafe { sigaction(signal, &ignore) }.unwrap();
        unsafe { sigaction(signal, &current) }.unwrap();
        current.handler()
    }

    /// One test, so no two pipes are installed at once within this test binary.
    #[test]
    fn signals_queue_in_order_and_dropping_restores_the_old_dispositions() {
        let before = disposition(Signal::SIGUSR2);
        let pipe = SignalPipe::install(&[Signal::SIGUSR2, Signal::SIGWINCH]).unwrap();
        assert!(
            SignalPipe::install(&[Signal::SIGUSR1]).is_err(),
            "only one at a time"
        );
        assert_eq!(pipe.pop(), None);
        nix::sys::signal::raise(Signal::SIGWINCH).unwrap();
        nix::sys::signal::raise(Signal::SIGUSR2).unwrap();
        nix::sys::signal::raise(Signal::SIGWINCH).unwrap();
        pipe.wait(Duration::from_secs(5));
        assert_eq!(pipe.pop(), Some(Signal::SIGWINCH));
        assert_eq!(pipe.pop(), Some(Signal::SIGUSR2));
        assert_eq!(pipe.pop(), Some(Signal::SIGWINCH));
        assert_eq!(pipe.pop(), None);
        assert!(matches!(
            disposition(Signal::SIGUSR2),
            SigHandler::Handler(_)
        ));
        drop(pipe);
        assert_eq!(
            format!("{:?}", disposition(Signal::SIGUSR2)),
            format!("{before:?}")
        );
        let again = SignalPipe::install(&[Signal::SIGUSR2]).unwrap();
        drop(again);
    }

    #[test]
    fn names_are_gunicorns() {
        assert_eq!(name(Signal::SIGTERM), "term");
        assert_eq!(name(Signal::SIGTTIN), "ttin");
    }
}
