//! Log lines leave the process off the threads that log them. Each log (error, access) has a
//! bounded queue per process, emptied in order by a writer thread of that process, so a slow
//! or stalled destination (a pipe nobody reads, a hung disk) costs lines, never an event loop:
//! when the queue is full a new line is dropped and counted, and the caller is told when a
//! WARNING about the drops is due (at most once per [`REPORT_EVERY`]).
//!
//! Fork: the master logs through these queues too and then forks workers. A child inherits the
//! queue but not the thread; its first line sees that the writer belongs to another pid, drops
//! the parent's lines (the parent writes them) and starts its own writer. The master holds both
//! queue locks across `fork` ([`ForkGuard`]) so no child inherits a lock that a writer thread
//! of the parent held. The writer thread takes no other lock (it writes with `write(2)` on the
//! descriptor, not through `std::io::stdout`'s lock, and formats nothing).

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Bytes a log may hold (queued or being written) before new lines are dropped: seconds of a
/// busy access log, and a bound on what a stalled destination can cost.
pub const CAPACITY: usize = 1 << 20;
/// Lines written together go in one `write` of at most this many bytes: a pipe writes up to
/// `PIPE_BUF` bytes at once, so lines of several processes never interleave mid-line.
const BATCH: usize = libc::PIPE_BUF;
/// The drop WARNING comes at most this often.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Where a log's lines go: `-` is a standard stream, anything else a file opened for append.
#[derive(Debug)]
pub enum Target {
    Stdout,
    Stderr,
    File { path: String, file: File },
}

impl Target {
    fn fd(&self) -> RawFd {
        match self {
            Target::Stdout => libc::STDOUT_FILENO,
            Target::Stderr => libc::STDERR_FILENO,
            Target::File { file, .. } => file.as_raw_fd(),
        }
    }

    /// Writes `bytes` whole, waiting while the descriptor is full (even one somebody made
    /// non-blocking). An error loses the bytes: a log has nowhere to report its own failure.
    pub fn write_all(&self, mut bytes: &[u8]) {
        let fd = self.fd();
        while !bytes.is_empty() {
            // SAFETY: `bytes` is valid for its length; `fd` stays open while `self` lives.
            let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
            if n > 0 {
                bytes = &bytes[n as usize..];
                continue;
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) => {
                    let mut pfd = libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut pfd, 1, -1) };
                }
                _ => return,
            }
        }
    }
}

/// Which log a queue carries (the `log` label of the drop counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Error = 0,
    Access = 1,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Error => "error",
            Kind::Access => "access",
        }
    }
}

/// One log's queue in this process.
pub struct Channel {
    kind: Kind,
    capacity: usize,
    state: Mutex<State>,
    /// Wakes the writer (lines arrived) and flushes (lines written).
    changed: Condvar,
}

struct State {
    /// The process whose writer thread empties this queue; 0: none started yet.
    writer_pid: u32,
    lines: VecDeque<(Arc<Target>, Vec<u8>)>,
    /// Bytes queued or being written.
    bytes: usize,
    /// The writer holds lines it took off the queue and has not finished writing.
    writing: bool,
    /// Lines written so far: a flush gives up only when this stops moving.
    written: u64,
    /// Lines dropped since the last report, and when that was.
    dropped: u64,
    reported_at: Option<Instant>,
}

impl State {
    const fn new() -> State {
        State {
            writer_pid: 0,
            lines: VecDeque::new(),
            bytes: 0,
            writing: false,
            written: 0,
            dropped: 0,
            reported_at: None,
        }
    }
}

pub static ERROR: Channel = Channel::new(Kind::Error, CAPACITY);
pub static ACCESS: Channel = Channel::new(Kind::Access, CAPACITY);

impl Channel {
    pub const fn new(kind: Kind, capacity: usize) -> Channel {
        Channel {
            kind,
            capacity,
            state: Mutex::new(State::new()),
            changed: Condvar::new(),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `line` for `target`, or drops it if the queue is full. Returns how many dropped
    /// lines to report now, if a report is due.
    pub fn push(&'static self, target: Arc<Target>, line: Vec<u8>) -> Option<u64> {
        let mut st = self.lock();
        let pid = std::process::id();
        if st.writer_pid != pid {
            // First line of this process (or of a child after fork): what is queued is the
            // parent's, and its writer is the parent's thread.
            *st = State::new();
            let spawned = std::thread::Builder::new()
                .name(format!("log-{}", self.kind.label()))
                .spawn(move || self.run());
            if spawned.is_err() {
                // No thread (a task limit): this line is written here, as before the queue.
                drop(st);
                target.write_all(&line);
                return None;
            }
            st.writer_pid = pid;
        }
        if st.bytes + line.len() > self.capacity {
            st.dropped += 1;
            if let Some(counters) = DROP_COUNTERS.get() {
                counters[self.kind as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            return Self::take_report(&mut st, false);
        }
        let idle = st.lines.is_empty() && !st.writing;
        st.bytes += line.len();
        st.lines.push_back((target, line));
        let report = Self::take_report(&mut st, false);
        drop(st);
        if idle {
            // Otherwise the writer is busy and looks at the queue again before it waits.
            self.changed.notify_all();
        }
        report
    }

    /// Drops not yet reported, if a report is due (`now`: whatever the interval).
    pub fn due_report(&self, now: bool) -> Option<u64> {
        Self::take_report(&mut self.lock(), now)
    }

    fn take_report(st: &mut State, now: bool) -> Option<u64> {
        if st.dropped == 0 {
            return None;
        }
        if !now && st.reported_at.is_some_and(|at| at.elapsed() < REPORT_EVERY) {
            return None;
        }
        st.reported_at = Some(Instant::now());
        Some(std::mem::take(&mut st.dropped))
    }

    /// The writer thread: takes everything queued, writes it in order, repeats.
    fn run(&self) {
        let mut st = self.lock();
        loop {
            while st.lines.is_empty() {
                st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            let batch: Vec<(Arc<Target>, Vec<u8>)> = st.lines.drain(..).collect();
            st.writing = true;
            drop(st);
            write_batch(&batch);
            let (lines, bytes) = (
                batch.len(),
                batch.iter().map(|(_, l)| l.len()).sum::<usize>(),
            );
            // The targets go before anyone hears of it: a flushed log holds no file open.
            drop(batch);
            st = self.lock();
            st.writing = false;
            st.bytes -= bytes;
            st.written += lines as u64;
            self.changed.notify_all();
        }
    }

    /// Waits until this process's lines are written, giving up once the writer has written
    /// nothing for `stall` (a destination that takes nothing must not hold up an exit).
    /// Returns whether everything was written.
    pub fn flush(&self, stall: Duration) -> bool {
        let mut st = self.lock();
        if st.writer_pid != std::process::id() {
            return true;
        }
        let (mut seen, mut since) = (st.written, Instant::now());
        while !st.lines.is_empty() || st.writing {
            if st.written != seen {
                (seen, since) = (st.written, Instant::now());
            }
            let Some(left) = stall.checked_sub(since.elapsed()) else {
                return false;
            };
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Writes lines in order, as few `write`s as fit in [`BATCH`] bytes each, never splitting a
/// line between two (a line longer than that is one `write` by itself).
fn write_batch(batch: &[(Arc<Target>, Vec<u8>)]) {
    let mut buf = Vec::with_capacity(BATCH);
    let mut current: Option<&Arc<Target>> = None;
    for (target, line) in batch {
        let same = current.is_some_and(|c| Arc::ptr_eq(c, target));
        if !buf.is_empty() && (!same || buf.len() + line.len() > BATCH) {
            if let Some(c) = current {
                c.write_all(&buf);
            }
            buf.clear();
        }
        current = Some(target);
        if line.len() > BATCH {
            target.write_all(line);
        } else {
            buf.extend_from_slice(line);
        }
    }
    if let (Some(c), false) = (current, buf.is_empty()) {
        c.write_all(&buf);
    }
}

/// Both queue locks, held by the master across `fork` (see the module's comment).
pub struct ForkGuard {
    _locks: [MutexGuard<'static, State>; 2],
}

pub fn fork_guard() -> ForkGuard {
    ForkGuard {
        _locks: [ERROR.lock(), ACCESS.lock()],
    }
}

/// Where dropped lines are counted for `/metrics` (per log kind), handed in by the master once
/// the shared metrics exist: the log stays beneath the metrics (`src/lib.rs`'s layers).
static DROP_COUNTERS: std::sync::OnceLock<&'static [std::sync::atomic::AtomicU64; 2]> =
    std::sync::OnceLock::new();

/// Counts dropped lines in `counters` from now on (in this process and its children).
pub fn count_drops_in(counters: &'static [std::sync::atomic::AtomicU64; 2]) {
    let _ = DROP_COUNTERS.set(counters);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> (File, File) {
        let (r, w) = nix::unistd::pipe().unwrap();
        (File::from(r), File::from(w))
    }

    fn channel(capacity: usize) -> &'static Channel {
        Box::leak(Box::new(Channel::new(Kind::Access, capacity)))
    }

    fn file_target(file: File) -> Arc<Target> {
        Arc::new(Target::File {
            path: "pipe".into(),
            file,
        })
    }

    #[test]
    fn lines_arrive_whole_and_in_order_and_flush_waits_for_them() {
        let (r, w) = pipe();
        let ch = channel(CAPACITY);
        let target = file_target(w);
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut &r, &mut text).unwrap();
            text
        });
        let mut expected = String::new();
        for i in 0..5000 {
            // Some lines longer than a batch, to cross the one-line-per-write path.
            let pad = if i % 997 == 0 { 5000 } else { i % 50 };
            let line = format!("line {i} {}\n", "x".repeat(pad));
            expected.push_str(&line);
            assert_eq!(ch.push(target.clone(), line.into_bytes()), None);
        }
        assert!(ch.flush(Duration::from_secs(30)), "flushed within 30 s");
        drop(target);
        assert_eq!(reader.join().unwrap(), expected);
    }

    #[test]
    fn a_stalled_destination_drops_new_lines_counts_them_and_reports_them_once() {
        let (r, w) = pipe();
        // SAFETY: `w` is a valid pipe descriptor owned by `w`.
        unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
        let ch = channel(64 * 1024);
        let target = file_target(w);
        let line = vec![b'x'; 1023]
            .into_iter()
            .chain([b'\n'])
            .collect::<Vec<_>>();
        let mut reports = Vec::new();
        let start = Instant::now();
        // Pipe (4 KiB), the writer's batch and the queue (64 KiB) hold at most ~140 lines.
        for _ in 0..1000 {
            if let Some(n) = ch.push(target.clone(), line.clone()) {
                reports.push(n);
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "pushing never waits on the stalled pipe (took {:?})",
            start.elapsed()
        );
        let st = ch.lock();
        let queued = st.lines.len() as u64;
        assert!(st.bytes <= 64 * 1024);
        let dropped = st.dropped;
        drop(st);
        // The first drop is reported at once; later ones wait for the interval.
        assert_eq!(reports, vec![1], "one report, of the first drop");
        assert!(dropped >= 1000 - 140, "dropped {dropped}, queued {queued}");
        assert_eq!(ch.due_report(false), None, "not again within 10 s");
        assert_eq!(ch.due_report(true), Some(dropped));
        assert!(
            !ch.flush(Duration::from_millis(200)),
            "a stalled flush gives up"
        );
        drop(r);
    }

    #[test]
    fn a_child_after_fork_writes_only_its_own_lines() {
        let (r, w) = pipe();
        let ch = channel(CAPACITY);
        let target = file_target(w);
        ch.push(target.clone(), b"parent\n".to_vec());
        assert!(ch.flush(Duration::from_secs(30)));
        // Pretend the queue was inherited: another pid's writer and a line still queued.
        {
            let mut st = ch.lock();
            st.writer_pid = u32::MAX;
            st.lines
                .push_back((target.clone(), b"inherited\n".to_vec()));
            st.bytes += 10;
        }
        ch.push(target.clone(), b"child\n".to_vec());
        assert!(ch.flush(Duration::from_secs(30)));
        drop(target);
        let mut text = String::new();
        let mut buf = [0u8; 64];
        let n = nix::unistd::read(&r, &mut buf).unwrap();
        text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        assert_eq!(text, "parent\nchild\n");
    }
}
