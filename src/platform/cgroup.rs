//! The cgroup this process runs in: its CPU quota, memory limit and throttled time, from cgroup v2
//! (`cpu.max`, `memory.max`, `cpu.stat` `throttled_usec`) or v1 (`cpu.cfs_quota_us` /
//! `cpu.cfs_period_us`, `memory.limit_in_bytes`, `cpu.stat` `throttled_time`).

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
                    found.v2 =
                        existing(root, path, "cpu.max").or_else(|| existing(root, "", "cpu.max"));
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
        let text = read(dir, "cpu.stat")?;
        let value: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())?;
        Some(Duration::from_nanos(value.saturating_mul(unit_ns)))
    }
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

/// This process's cgroup's throttled time so far.
pub fn throttled_time() -> Option<Duration> {
    thread_local!(static CGROUP: Cgroup = Cgroup::current());
    CGROUP.with(Cgroup::throttled_time)
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
            "usage_usec 10\nnr_throttled 3\nthrottled_usec 2500\n",
        );
        let cg = Cgroup::from_table("0::/ecs/task-1\n", r);
        assert_eq!(cg.v2.as_deref(), Some(task.as_path()));
        assert_eq!(cg.cpu_quota(), Some(1.5));
        assert_eq!(cg.memory_limit(), Some(4 << 30));
        assert_eq!(cg.throttled_time(), Some(Duration::from_micros(2500)));
        write(&task, "cpu.max", "max 100000\n");
        write(&task, "memory.max", "max\n");
        assert_eq!(cg.cpu_quota(), None);
        assert_eq!(cg.memory_limit(), None);
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
        let mem = r.join("memory/docker/abc");
        write(&mem, "memory.limit_in_bytes", "9223372036854771712\n");
        let table = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n";
        let cg = Cgroup::from_table(table, r);
        assert_eq!(cg.v2, None, "no unified CPU controller here");
        assert_eq!(cg.cpu_quota(), Some(2.0));
        assert_eq!(cg.memory_limit(), None, "v1's 'unlimited'");
        assert_eq!(cg.throttled_time(), Some(Duration::from_millis(7)));
        write(&cpu, "cpu.cfs_quota_us", "-1\n");
        assert_eq!(cg.cpu_quota(), None);
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
