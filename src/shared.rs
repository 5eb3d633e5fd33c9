//! Memory shared between the master and its workers: small blocks of atomics mapped
//! `MAP_SHARED` before forking, so both sides see each other's writes without any I/O.
//! This is how the master reads heartbeats (Gunicorn uses a file per worker for the same job).

use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};
use std::num::NonZeroUsize;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// A `T` in an anonymous shared mapping. `T` must be valid when all-zero (atomics are).
pub struct SharedMap<T> {
    ptr: NonNull<T>,
}

// SAFETY: `T` is only reached through `&T`, and the types used here are atomics, designed for
// concurrent access (also across processes, since the mapping is shared).
unsafe impl<T: Sync> Send for SharedMap<T> {}
unsafe impl<T: Sync> Sync for SharedMap<T> {}

impl<T: ZeroedIsValid> SharedMap<T> {
    pub fn new() -> std::io::Result<Self> {
        let len = NonZeroUsize::new(std::mem::size_of::<T>().max(1)).expect("non-zero");
        // SAFETY: a fresh anonymous mapping aliases nothing; the kernel zero-fills it, which
        // `ZeroedIsValid` promises is a valid `T`.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }?;
        Ok(SharedMap { ptr: ptr.cast() })
    }
}

impl<T> Deref for SharedMap<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the mapping lives until `drop`, and is a valid `T` (see `new`).
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for SharedMap<T> {
    fn drop(&mut self) {
        let len = std::mem::size_of::<T>().max(1);
        // SAFETY: this is the mapping `new` created, with its length; nothing borrows it now.
        unsafe {
            let _ = munmap(self.ptr.cast(), len);
        }
    }
}

/// Marker: the all-zero bit pattern is a valid value of this type.
///
/// # Safety
/// Implement only for types made of atomics and integers.
pub unsafe trait ZeroedIsValid {}

/// State of the whole server.
#[derive(Default)]
#[repr(C)]
pub struct ServerState {
    /// Workers that are up and taking requests from the shared queue and not stopping.
    pub serving_workers: AtomicI64,
    /// The whole server is stopping (TERM, INT, QUIT, or the master is gone): no replacement
    /// worker will come, so the last worker to stop drains the shared queue itself. Otherwise a
    /// stopping worker leaves work and connections on the queue for the others (or for its
    /// replacement).
    pub shutting_down: AtomicBool,
}

// SAFETY: atomics only.
unsafe impl ZeroedIsValid for ServerState {}

/// One worker's slot, written by the worker and read by the master.
#[derive(Default)]
#[repr(C)]
pub struct WorkerSlot {
    /// Last proof of progress, in [`monotonic_ms`]. The master kills the worker when it is older
    /// than `--timeout`.
    pub heartbeat_ms: AtomicU64,
    /// The worker finished booting.
    pub booted: AtomicBool,
    /// The worker counts itself in [`ServerState::serving_workers`]; whoever clears this flag
    /// (the worker when it stops, or the master when it reaps a worker that died) decrements.
    pub counted_serving: AtomicBool,
}

// SAFETY: atomics only.
unsafe impl ZeroedIsValid for WorkerSlot {}

impl WorkerSlot {
    pub fn beat(&self, at_ms: u64) {
        self.heartbeat_ms.store(at_ms, Ordering::Relaxed);
    }

    /// Joins the serving set (once).
    pub fn start_serving(&self, state: &ServerState) {
        if !self.counted_serving.swap(true, Ordering::AcqRel) {
            state.serving_workers.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Leaves the serving set (once, whoever calls it first). Returns how many remain.
    pub fn stop_serving(&self, state: &ServerState) -> i64 {
        if self.counted_serving.swap(false, Ordering::AcqRel) {
            state.serving_workers.fetch_sub(1, Ordering::AcqRel) - 1
        } else {
            state.serving_workers.load(Ordering::Acquire)
        }
    }
}

/// A random number from the kernel (for `--max-requests-jitter`).
pub fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| monotonic_ns() ^ u64::from(std::process::id()))
}

/// Milliseconds on `CLOCK_MONOTONIC`, which every process on the machine shares.
pub fn monotonic_ms() -> u64 {
    monotonic_ns() / 1_000_000
}

/// Nanoseconds on `CLOCK_MONOTONIC`.
pub fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC exists on Linux");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_in_a_child_are_seen_by_the_parent() {
        let slot: SharedMap<WorkerSlot> = SharedMap::new().unwrap();
        // SAFETY: the child only stores to an atomic and exits at once.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                slot.beat(42);
                unsafe { libc::_exit(0) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(slot.heartbeat_ms.load(Ordering::Relaxed), 42);
            }
        }
    }

    #[test]
    fn serving_membership_is_counted_once() {
        let state: SharedMap<ServerState> = SharedMap::new().unwrap();
        let slot: SharedMap<WorkerSlot> = SharedMap::new().unwrap();
        slot.start_serving(&state);
        slot.start_serving(&state);
        assert_eq!(state.serving_workers.load(Ordering::Relaxed), 1);
        assert_eq!(slot.stop_serving(&state), 0);
        assert_eq!(slot.stop_serving(&state), 0);
        assert_eq!(state.serving_workers.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a && a > 0);
    }
}
