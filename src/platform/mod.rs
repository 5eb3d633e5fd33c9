//! What the server can learn about the machine under it: the CPUs it may use (cgroup quota,
//! affinity), the cgroup's CPU throttling and the host's steal time (sampled around each heavy
//! request), and a fingerprint of the platform (CPU model, hypervisor, ECS task metadata) for
//! `/heavy/info/`, the boot log and the `heavy_api_platform_info` metric.
//!
//! Reads files under /proc and /sys only (and, once at boot, the ECS metadata endpoint); never
//! fails: what cannot be read is absent.

pub mod cgroup;
pub mod ecs;
pub mod fingerprint;
pub mod net;

use std::time::Duration;

/// How many CPUs this process may use, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct UsableCpus {
    /// Whole CPUs: a fractional quota is rounded up.
    pub count: usize,
    /// How it was found, for the boot log: `cgroup quota 1.5 CPUs`, `affinity 2 CPUs`, ...
    pub source: String,
}

/// The CPUs this process may use: the cgroup CPU quota (rounded up) if one is set, else the
/// affinity mask, else the logical CPU count. `nproc` in a container shows the machine's CPUs,
/// not the task's share; this does not.
pub fn usable_cpus() -> UsableCpus {
    if let Some(quota) = cgroup::cpu_quota() {
        return UsableCpus {
            count: (quota.ceil() as usize).max(1),
            source: format!("cgroup quota {quota:.1} CPUs"),
        };
    }
    if let Some(n) = affinity_cpus() {
        return UsableCpus {
            count: n.max(1),
            source: format!("affinity {n} CPUs"),
        };
    }
    let n = logical_cpus();
    UsableCpus {
        count: n,
        source: format!("{n} logical CPUs"),
    }
}

/// CPUs online on the machine (what `nproc --all` shows).
pub fn logical_cpus() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .map_or(1, |n| n.max(1) as usize)
}

/// CPUs in this process's affinity mask (what `taskset` sets).
pub fn affinity_cpus() -> Option<usize> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()?;
    let n = (0..nix::sched::CpuSet::count())
        .filter(|&i| set.is_set(i).unwrap_or(false))
        .count();
    (n > 0).then_some(n)
}

/// Time the hypervisor gave this machine's vCPUs to others (all CPUs together), from the
/// `steal` column of /proc/stat.
pub fn steal_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: u64 = line.split_whitespace().nth(8)?.parse().ok()?;
    Some(ticks_to_duration(ticks))
}

/// The steal time as of at most one clock tick ago. /proc/stat counts in ticks (10 ms with
/// `USER_HZ` 100) and the kernel formats the whole file, every CPU's and interrupt's line, on
/// each read (`show_stat` was the top user-space-visible cost of a cheap heavy request): reading
/// it at most once a tick per process loses no resolution.
pub fn steal_time_recent() -> Option<Duration> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    // The last value read (ns, u64::MAX: none) and when (ns since `EPOCH`).
    static LAST: AtomicU64 = AtomicU64::new(u64::MAX);
    static READ_AT: AtomicU64 = AtomicU64::new(0);
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    let now = EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
        + 1;
    let read_at = READ_AT.load(Ordering::Acquire);
    let last = LAST.load(Ordering::Acquire);
    if last != u64::MAX && now.saturating_sub(read_at) < ticks_to_duration(1).as_nanos() as u64 {
        return Some(Duration::from_nanos(last));
    }
    let steal = steal_time()?;
    LAST.store(steal.as_nanos() as u64, Ordering::Release);
    READ_AT.store(now, Ordering::Release);
    Some(steal)
}

/// Clock ticks (`USER_HZ`) as a duration.
fn ticks_to_duration(ticks: u64) -> Duration {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&hz| hz > 0)
        .unwrap_or(100) as u64;
    Duration::from_nanos(ticks.saturating_mul(1_000_000_000 / hz))
}

/// Asks the scheduler (EEVDF, Linux 6.12 and later) for a short time slice, 0.3 ms (the default
/// is 0.75 ms times a factor for the CPU count), for the calling thread: a thread that runs
/// briefly and often then gets its turn sooner when woken. Best effort: false where the kernel or
/// a seccomp profile refuses it (older kernels accept the call and ignore the slice), and left
/// alone when an operator chose another policy (`chrt`, systemd's `CPUSchedulingPolicy`).
pub fn request_short_slice() -> bool {
    // SAFETY: sched_getscheduler has no memory arguments; pid 0 is the calling thread. A policy
    // with SCHED_RESET_ON_FORK set reads as a different number, so it is left alone too.
    if unsafe { libc::sched_getscheduler(0) } != libc::SCHED_OTHER {
        return false;
    }
    /// `struct sched_attr` (include/uapi/linux/sched/types.h), the version-1 size.
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
        util_min: u32,
        util_max: u32,
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        // The nice value is set with the policy: keep the thread's own.
        nice: current_nice(),
        priority: 0,
        // For SCHED_OTHER the kernel reads the slice from `runtime` (clamped to 0.1-100 ms).
        runtime: 300_000,
        deadline: 0,
        period: 0,
        util_min: 0,
        util_max: 0,
    };
    // SAFETY: sched_setattr reads `size` bytes of a valid, initialised struct; pid 0 is the
    // calling thread.
    unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) == 0 }
}

/// The calling thread's nice value.
fn current_nice() -> i32 {
    // SAFETY: getpriority has no memory arguments; who 0 is the calling thread.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
}

/// CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_time() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// The platform counters that move while a request runs, sampled before and after it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// The cgroup's throttled time (`cpu.stat`), if there is a CPU controller.
    pub throttled: Option<Duration>,
    /// The host's steal time.
    pub steal: Option<Duration>,
}

impl Counters {
    pub fn now() -> Counters {
        Counters {
            throttled: cgroup::throttled_time(),
            steal: steal_time_recent(),
        }
    }

    /// What moved between `self` and `later`.
    pub fn since(self, later: Counters) -> Counters {
        let delta = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
        Counters {
            throttled: delta(self.throttled, later.throttled),
            steal: delta(self.steal, later.steal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_cpus_never_exceed_the_affinity_or_go_below_one() {
        let usable = usable_cpus();
        assert!(usable.count >= 1);
        if let (Some(affinity), None) = (affinity_cpus(), cgroup::cpu_quota()) {
            assert_eq!(usable.count, affinity, "{usable:?}");
        }
        assert!(logical_cpus() >= affinity_cpus().unwrap_or(1));
    }

    #[test]
    fn a_short_slice_is_the_calling_threads_only() {
        let slice = |sched: &str| {
            sched
                .lines()
                .find(|l| l.starts_with("se.slice"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        };
        let read = || std::fs::read_to_string("/proc/thread-self/sched").unwrap_or_default();
        let before = slice(&read());
        let (asked, after) = std::thread::spawn(move || (request_short_slice(), slice(&read())))
            .join()
            .unwrap();
        // Where the kernel shows the slice (EEVDF with custom slices, Linux 6.12+), the thread
        // that asked has 0.3 ms and this one kept its own.
        if asked && after.is_some() && before.is_some() {
            assert_eq!(after.as_deref(), Some("300000"));
            assert_eq!(slice(&read()), before);
        }
    }

    #[test]
    fn thread_cpu_time_moves_with_work_only() {
        let before = thread_cpu_time();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_time() > before);
    }

    #[test]
    fn counters_subtract_what_both_samples_have() {
        let a = Counters {
            throttled: Some(Duration::from_millis(5)),
            steal: None,
        };
        let b = Counters {
            throttled: Some(Duration::from_millis(12)),
            steal: Some(Duration::from_millis(1)),
        };
        let d = a.since(b);
        assert_eq!(d.throttled, Some(Duration::from_millis(7)));
        assert_eq!(d.steal, None);
    }
}
