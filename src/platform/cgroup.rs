//! The cgroup this process runs in: its CPU quota, memory limit and throttled time, from cgroup v2
//! (`cpu.max`, `memory.max`, `cpu.stat` `throttled_usec`) or v1 (`cpu.cfs_quota_us` /
//! `cpu.cfs_period_us`, `memory.limit_in_bytes`, `cpu.stat` `throttled_time`); and what
//! utilization needs at scrape time ([`Usage`]): CPU used (v2 `cpu.stat` `usage_usec`, v1
//! `cpuacct.usage`), CFS periods and throttled periods (`nr_periods`, `nr_throttled`), memory used
//! (v2 `memory.current`, v1 `memory.usage_in_bytes`).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where this process's cgroup files are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cgroup {
    /// The unified (v2) directory, when the CPU controller is there.
    pub v2: Option<PathBuf>,
    /// The v1 `cpu` controller's directory.
    pub v1_cpu: Option<PathBuf>,
    /// The v1 `memory` controller's directory.
    pub v1_memory: Option<PathBuf>,
    /// The v1 `cpuacct` controller's directory (often the same as `v1_cpu`: `cpu,cpuacct`).
    pub v1_cpuacct: Option<PathBuf>,
}

/// The cgroup's counters and gauges at one moment, for `/metrics`. Each is absent where its
/// file is (no cgroup, no controller, or a v1 hierarchy without it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// CPU time used by all the cgroup's tasks.
    pub cpu_usage: Option<Duration>,
    /// CFS enforcement periods that elapsed while the cgroup had runnable tasks.
    pub periods: Option<u64>,
    /// Of those, the periods in which the cgroup was throttled (its quota ran out).
    pub throttled_periods: Option<u64>,
    pub throttled_time: Option<Duration>,
    /// Memory charged to the cgroup (page cache included, as the OOM killer counts it).
    pub memory_usage: Option<u64>,
    pub memory_limit: Option<u64>,
    /// The CPU quota in CPUs.
    pub cpu_quota: Option<f64>,
}

impl Cgroup {
    /// This process's cgroup, from /proc/self/cgroup and the mounts under /sys/fs/cgroup.
    pub fn current() -> Cgroup {
        let table = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        Cgroup::from_table(&table, Path::new("/sys/fs/cgroup"))
    }

    /// Resolves `/proc/self/cgroup`'s `table` against the cgroup mounts under `root`.
    pub fn from_table(table: &str, root: &Path) -> Cgroup {
        let mut found = Cgroup::default();
        for line in table.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let path = path.trim_start_matches('/');
            if controllers.is_empty() {
                if root.join("cgroup.controllers").exists() {
                    // A cgroup without the CPU controller (no `cpu.max`) still has `cpu.stat`'s
                    // usage and the memory files.
                    found.v2 = existing(root, path, "cpu.max")
                        .or_else(|| existing(root, "", "cpu.max"))
                        .or_else(|| existing(root, path, "cpu.stat"))
                        .or_else(|| existing(root, "", "cpu.stat"));
                }
                continue;
            }
            let names: Vec<&str> = controllers.split(',').collect();
            if names.contains(&"cpu") {
                let mount = root.join(controllers);
                let mount = if mount.exists() {
                    mount
                } else {
                    root.join("cpu")
                };
                found.v1_cpu = existing(&mount, path, "cpu.cfs_quota_us")
                    .or_else(|| existing(&mount, "", "cpu.cfs_quota_us"));
            }
            if names.contains(&"cpuacct") {
                let mount = root.join(controllers);
                let mount = if mount.exists() {
                    mount
                } else {
                    root.join("cpuacct")
                };
                found.v1_cpuacct = existing(&mount, path, "cpuacct.usage")
                    .or_else(|| existing(&mount, "", "cpuacct.usage"));
            }
            if names.contains(&"memory") {
                let mount = root.join("memory");
                found.v1_memory = existing(&mount, path, "memory.limit_in_bytes")
                    .or_else(|| existing(&mount, "", "memory.limit_in_bytes"));
            }
        }
        found
    }

    /// The CPU quota in CPUs (1.5 = one and a half), if one is set.
    pub fn cpu_quota(&self) -> Option<f64> {
        if let Some(dir) = &self.v2 {
            let text = read(dir, "cpu.max")?;
            let mut parts = text.split_whitespace();
            let quota = parts.next()?;
            let period: f64 = parts.next()?.parse().ok()?;
            return match quota {
                "max" => None,
                q => Some(q.parse::<f64>().ok()? / period).filter(|&c| c > 0.0),
            };
        }
        let dir = self.v1_cpu.as_ref()?;
        let quota: f64 = read(dir, "cpu.cfs_quota_us")?.trim().parse().ok()?;
        let period: f64 = read(dir, "cpu.cfs_period_us")?.trim().parse().ok()?;
        (quota > 0.0 && period > 0.0).then(|| quota / period)
    }

    /// The memory limit in bytes, if one is set.
    pub fn memory_limit(&self) -> Option<u64> {
        if let Some(dir) = &self.v2 {
            return read(dir, "memory.max")?.trim().parse().ok();
        }
        let limit: u64 = read(self.v1_memory.as_ref()?, "memory.limit_in_bytes")?
            .trim()
            .parse()
            .ok()?;
        // v1 says "no limit" with a huge number (a page-rounded i64::MAX).
        (limit < (1 << 60)).then_some(limit)
    }

    /// Time the cgroup's tasks were throttled for exceeding the quota, in all.
    pub fn throttled_time(&self) -> Option<Duration> {
        let (dir, key, unit_ns) = match (&self.v2, &self.v1_cpu) {
            (Some(dir), _) => (dir, "throttled_usec", 1_000),
            (None, Some(dir)) => (dir, "throttled_time", 1),
            (None, None) => return None,
        };
        let value = stat_field(&read(dir, "cpu.stat")?, key)?;
        Some(Duration::from_nanos(value.saturating_mul(unit_ns)))
    }

    /// CPU time the cgroup's tasks used, in all: v2 `cpu.stat` `usage_usec`, v1
    /// `cpuacct.usage` (nanoseconds).
    pub fn cpu_usage(&self) -> Option<Duration> {
        if let Some(dir) = &self.v2 {
            let usec = stat_field(&read(dir, "cpu.stat")?, "usage_usec")?;
            return Some(Duration::from_micros(usec));
        }
        let ns: u64 = read(self.v1_cpuacct.as_ref()?, "cpuacct.usage")?
            .trim()
            .parse()
            .ok()?;
        Some(Duration::from_nanos(ns))
    }

    /// CFS periods, and those throttled: `cpu.stat` `nr_periods` and `nr_throttled` (the same
    /// names in v1 and v2; v2 leaves them out without the CPU controller).
    pub fn periods(&self) -> (Option<u64>, Option<u64>) {
        let Some(text) = self
            .v2
            .as_ref()
            .or(self.v1_cpu.as_ref())
            .and_then(|d| read(d, "cpu.stat"))
        else {
            return (None, None);
        };
        (
            stat_field(&text, "nr_periods"),
            stat_field(&text, "nr_throttled"),
        )
    }

    /// Memory charged to the cgroup now: v2 `memory.current`, v1 `memory.usage_in_bytes`.
    pub fn memory_usage(&self) -> Option<u64> {
        if let Some(dir) = &self.v2 {
            return read(dir, "memory.current")?.trim().parse().ok();
        }
        read(self.v1_memory.as_ref()?, "memory.usage_in_bytes")?
            .trim()
            .parse()
            .ok()
    }

    /// Everything `/metrics` shows of the cgroup, read now.
    pub fn usage(&self) -> Usage {
        let (periods, throttled_periods) = self.periods();
        Usage {
            cpu_usage: self.cpu_usage(),
            periods,
            throttled_periods,
            throttled_time: self.throttled_time(),
            memory_usage: self.memory_usage(),
            memory_limit: self.memory_limit(),
            cpu_quota: self.cpu_quota(),
        }
    }
}

/// The value of `key` in a flat-keyed file such as `cpu.stat` (`key value` lines).
fn stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

fn existing(mount: &Path, path: &str, file: &str) -> Option<PathBuf> {
    let dir = mount.join(path);
    dir.join(file).exists().then_some(dir)
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

/// This process's CPU quota in CPUs, if its cgroup sets one.
pub fn cpu_quota() -> Option<f64> {
    Cgroup::current().cpu_quota()
}

thread_local!(static CGROUP: Cgroup = Cgroup::current());

/// This process's cgroup's throttled time so far. Sampled twice per heavy request, so each
/// thread keeps `cpu.stat` open and re-reads it from offset 0 (one `pread` instead of an open,
/// a stat, two reads and a close; the kernel regenerates the text at offset 0).
pub fn throttled_time() -> Option<Duration> {
    use std::os::unix::fs::FileExt;
    thread_local!(static STAT: Option<(std::fs::File, &'static str, u64)> = CGROUP.with(|cg| {
        let (dir, key, unit_ns) = match (&cg.v2, &cg.v1_cpu) {
            (Some(dir), _) => (dir, "throttled_usec", 1_000),
            (None, Some(dir)) => (dir, "throttled_time", 1),
            (None, None) => return None,
        };
        let file = std::fs::File::open(dir.join("cpu.stat")).ok()?;
        Some((file, key, unit_ns))
    }));
    STAT.with(|stat| {
        let (file, key, unit_ns) = stat.as_ref()?;
        let mut buf = [0u8; 2048];
        let n = file.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        let value = stat_field(text, key)?;
        Some(Duration::from_nanos(value.saturating_mul(*unit_ns)))
    })
}

/// This process's cgroup's usage now (for a scrape).
pub fn usage() -> Usage {
    CGROUP.with(Cgroup::usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
    }

    #[test]
    fn cgroup_v2_quota_memory_and_throttling() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(r, "cgroup.controllers", "cpu memory\n");
        let task = r.join("ecs/task-1");
        write(&task, "cpu.max", "150000 100000\n");
        write(&task, "memory.max", "4294967296\n");
        write(
            &task,
            "cpu.stat",
            "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\nnr_periods 40\n\
             nr_throttled 3\nthrottled_usec 2500\nnr_bursts 0\nburst_usec 0\n",
        );
        write(&task, "memory.current", "73728000\n");
        let cg = Cgroup::from_table("0::/ecs/task-1\n", r);
        assert_eq!(cg.v2.as_deref(), Some(task.as_path()));
        assert_eq!(cg.cpu_quota(), Some(1.5));
        assert_eq!(cg.memory_limit(), Some(4 << 30));
        assert_eq!(cg.throttled_time(), Some(Duration::from_micros(2500)));
        assert_eq!(
            cg.usage(),
            Usage {
                cpu_usage: Some(Duration::from_micros(1_234_567)),
                periods: Some(40),
                throttled_periods: Some(3),
                throttled_time: Some(Duration::from_micros(2500)),
                memory_usage: Some(73_728_000),
                memory_limit: Some(4 << 30),
                cpu_quota: Some(1.5),
            }
        );
        write(&task, "cpu.max", "max 100000\n");
        write(&task, "memory.max", "max\n");
        assert_eq!(cg.cpu_quota(), None);
        assert_eq!(cg.memory_limit(), None);
        // Without the CPU controller v2 keeps usage but drops the CFS fields.
        write(
            &task,
            "cpu.stat",
            "usage_usec 5\nuser_usec 3\nsystem_usec 2\n",
        );
        let u = cg.usage();
        assert_eq!(u.cpu_usage, Some(Duration::from_micros(5)));
        assert_eq!(
            (u.periods, u.throttled_periods, u.throttled_time),
            (None, None, None)
        );
    }

    #[test]
    fn cgroup_v1_quota_memory_and_throttling() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let cpu = r.join("cpu,cpuacct/docker/abc");
        write(&cpu, "cpu.cfs_quota_us", "200000\n");
        write(&cpu, "cpu.cfs_period_us", "100000\n");
        write(
            &cpu,
            "cpu.stat",
            "nr_periods 9\nnr_throttled 2\nthrottled_time 7000000\n",
        );
        write(&cpu, "cpuacct.usage", "987654321\n");
        let mem = r.join("memory/docker/abc");
        write(&mem, "memory.limit_in_bytes", "9223372036854771712\n");
        write(&mem, "memory.usage_in_bytes", "52428800\n");
        let table = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n";
        let cg = Cgroup::from_table(table, r);
        assert_eq!(cg.v2, None, "no unified CPU controller here");
        assert_eq!(cg.v1_cpuacct.as_deref(), Some(cpu.as_path()));
        assert_eq!(cg.cpu_quota(), Some(2.0));
        assert_eq!(cg.memory_limit(), None, "v1's 'unlimited'");
        assert_eq!(cg.throttled_time(), Some(Duration::from_millis(7)));
        assert_eq!(
            cg.usage(),
            Usage {
                cpu_usage: Some(Duration::from_nanos(987_654_321)),
                periods: Some(9),
                throttled_periods: Some(2),
                throttled_time: Some(Duration::from_millis(7)),
                memory_usage: Some(50 << 20),
                memory_limit: None,
                cpu_quota: Some(2.0),
            }
        );
        write(&cpu, "cpu.cfs_quota_us", "-1\n");
        assert_eq!(cg.cpu_quota(), None);
    }

    #[test]
    fn cgroup_v1_with_cpu_and_cpuacct_mounted_apart() {
        // As docker/podman hosts mount them: /sys/fs/cgroup/cpu and /sys/fs/cgroup/cpuacct.
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(&r.join("cpu"), "cpu.cfs_quota_us", "-1\n");
        write(&r.join("cpu"), "cpu.cfs_period_us", "100000\n");
        write(
            &r.join("cpu"),
            "cpu.stat",
            "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
        );
        write(&r.join("cpuacct"), "cpuacct.usage", "42000\n");
        let cg = Cgroup::from_table("2:cpuacct:/\n1:cpu:/\n0::/\n", r);
        let u = cg.usage();
        assert_eq!(u.cpu_usage, Some(Duration::from_micros(42)));
        assert_eq!(u.periods, Some(0));
        assert_eq!(u.cpu_quota, None);
        assert_eq!(
            u.memory_usage, None,
            "no memory controller: absent, not zero"
        );
        assert_eq!(Cgroup::default().usage(), Usage::default());
    }

    #[test]
    fn a_namespaced_path_falls_back_to_the_mount_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(r, "cgroup.controllers", "cpu\n");
        write(r, "cpu.max", "100000 100000\n");
        let cg = Cgroup::from_table("0::/not/visible/here\n", r);
        assert_eq!(cg.cpu_quota(), Some(1.0));
    }
}
