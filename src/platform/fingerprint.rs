//! The platform fingerprint: what a comparison of two platforms needs to know about each —
//! which CPU, how many of them this server may use, under what quota and memory limit, which
//! kernel and hypervisor, whether SHA-256 runs on CPU extensions, and the ECS task it runs in.
//! Gathered once, by the master at boot.

use super::cgroup::Cgroup;
use super::ecs::{self, EcsTask};
use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Fingerprint {
    pub cpu_model: String,
    pub architecture: String,
    /// CPUs online on the machine.
    pub logical_cpus: usize,
    /// CPUs in this process's affinity mask.
    pub affinity_cpus: Option<usize>,
    /// The cgroup CPU quota, in CPUs.
    pub cpu_quota: Option<f64>,
    pub memory_limit_bytes: Option<u64>,
    pub kernel: String,
    /// Whether SHA-256 runs on the CPU's SHA extensions (SHA-NI on x86, SHA2 on ARMv8).
    pub sha_extensions: bool,
    /// Xen's `/sys/hypervisor/type`, or the `hypervisor` CPU flag's presence ("unknown").
    pub hypervisor: Option<String>,
    /// DMI vendor and product (`Amazon EC2 c7g.large`), where readable.
    pub machine: Option<String>,
    pub ecs: Option<EcsTask>,
    /// The network namespace's interfaces except `lo` (/proc/net/dev): with awsvpc (Fargate)
    /// the task's own ENI; with host networking the instance's.
    pub network_interfaces: Vec<String>,
    /// The EC2 instance type (`t3.medium`) from the DMI product name Nitro instances carry;
    /// absent off EC2, on Xen-based instances (`HVM domU`), and on Fargate, whose DMI would
    /// name the host rather than anything the task rents.
    pub instance_type: Option<String>,
    /// Whether that instance type is burstable (the T family: CPU credits decide its speed).
    pub burstable: Option<bool>,
}

impl Fingerprint {
    /// Reads everything; `env` gives the environment (for the ECS endpoint). The second value
    /// is a warning to log when the ECS metadata could not be read.
    pub fn gather(env: &dyn Fn(&str) -> Option<String>) -> (Fingerprint, Option<String>) {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cgroup = Cgroup::current();
        let (ecs, warning) = match ecs::read(env) {
            Ok(task) => (task, None),
            Err(why) => (None, Some(format!("ECS task metadata unavailable: {why}"))),
        };
        let (vendor, product) = (dmi("sys_vendor"), dmi("product_name"));
        let on_fargate = ecs
            .as_ref()
            .is_some_and(|t| t.launch_type.as_deref() == Some("FARGATE"));
        let instance_type = if on_fargate {
            None
        } else {
            ec2_instance_type(vendor.as_deref(), product.as_deref())
        };
        let fingerprint = Fingerprint {
            cpu_model: cpu_model(&cpuinfo),
            architecture: std::env::consts::ARCH.to_string(),
            logical_cpus: super::logical_cpus(),
            affinity_cpus: super::affinity_cpus(),
            cpu_quota: cgroup.cpu_quota(),
            memory_limit_bytes: cgroup.memory_limit(),
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha_extensions: sha_extensions(),
            hypervisor: hypervisor(&cpuinfo),
            machine: match (vendor, product) {
                (Some(v), Some(p)) => Some(format!("{v} {p}")),
                (v, p) => v.or(p),
            },
            ecs,
            network_interfaces: super::net::interfaces()
                .into_iter()
                .map(|i| i.name)
                .collect(),
            burstable: instance_type.as_deref().map(is_burstable),
            instance_type,
        };
        (fingerprint, warning)
    }

    /// The one-line summary for the boot log.
    pub fn summary(&self) -> String {
        let mut parts = vec![
            format!("{} ({})", self.cpu_model, self.architecture),
            format!(
                "{} logical CPUs, {} usable, quota {}",
                self.logical_cpus,
                self.affinity_cpus.map_or("?".into(), |n| n.to_string()),
                self.cpu_quota.map_or("none".into(), |q| format!("{q:.2}"))
            ),
            format!(
                "memory limit {}",
                self.memory_limit_bytes.map_or("none".into(), |b| format!(
                    "{:.1} GiB",
                    b as f64 / (1u64 << 30) as f64
                ))
            ),
            format!("kernel {}", self.kernel),
            format!(
                "SHA extensions {}",
                if self.sha_extensions { "yes" } else { "no" }
            ),
        ];
        if let Some(h) = &self.hypervisor {
            parts.push(format!("hypervisor {h}"));
        }
        if let Some(m) = &self.machine {
            parts.push(m.clone());
        }
        if self.burstable == Some(true) {
            parts.push(format!(
                "burstable instance {} (CPU credits decide its speed)",
                self.instance_type.as_deref().unwrap_or("?")
            ));
        }
        if let Some(task) = &self.ecs {
            parts.push(format!(
                "ECS {} {}",
                task.launch_type.as_deref().unwrap_or("?"),
                task.availability_zone.as_deref().unwrap_or("?")
            ));
        }
        format!("Platform: {}", parts.join("; "))
    }

    /// Labels of the `heavy_api_platform_info` metric: the platform part of the fingerprint.
    pub fn labels(&self) -> Vec<(&'static str, String)> {
        let ecs = self.ecs.clone().unwrap_or_default();
        vec![
            ("cpu_model", self.cpu_model.clone()),
            ("architecture", self.architecture.clone()),
            ("logical_cpus", self.logical_cpus.to_string()),
            (
                "cpu_quota",
                self.cpu_quota.map(|q| format!("{q}")).unwrap_or_default(),
            ),
            ("kernel", self.kernel.clone()),
            ("sha_extensions", self.sha_extensions.to_string()),
            ("hypervisor", self.hypervisor.clone().unwrap_or_default()),
            ("launch_type", ecs.launch_type.unwrap_or_default()),
            (
                "availability_zone",
                ecs.availability_zone.unwrap_or_default(),
            ),
            (
                "instance_type",
                self.instance_type.clone().unwrap_or_default(),
            ),
            (
                "burstable",
                self.burstable.map(|b| b.to_string()).unwrap_or_default(),
            ),
        ]
    }
}

/// x86: the `model name` line. ARM: the implementer and part, named for the cores AWS uses.
fn cpu_model(cpuinfo: &str) -> String {
    let field = |name: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    if let Some(model) = field("model name").filter(|m| !m.is_empty()) {
        return model;
    }
    match (field("CPU implementer"), field("CPU part")) {
        (Some(implementer), Some(part)) => {
            let known = match (implementer.as_str(), part.as_str()) {
                ("0x41", "0xd0c") => Some("ARM Neoverse-N1 (Graviton2)"),
                ("0x41", "0xd40") => Some("ARM Neoverse-V1 (Graviton3)"),
                ("0x41", "0xd4f") => Some("ARM Neoverse-V2 (Graviton4)"),
                ("0x41", "0xd08") => Some("ARM Cortex-A72 (Graviton)"),
                _ => None,
            };
            known.map_or_else(
                || format!("implementer {implementer} part {part}"),
                str::to_string,
            )
        }
        _ => "unknown".into(),
    }
}

#[cfg(target_arch = "x86_64")]
fn sha_extensions() -> bool {
    std::arch::is_x86_feature_detected!("sha")
}

#[cfg(target_arch = "aarch64")]
fn sha_extensions() -> bool {
    std::arch::is_aarch64_feature_detected!("sha2")
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn sha_extensions() -> bool {
    false
}

fn hypervisor(cpuinfo: &str) -> Option<String> {
    if let Ok(kind) = std::fs::read_to_string("/sys/hypervisor/type") {
        return Some(kind.trim().to_string());
    }
    let flagged = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "hypervisor"));
    flagged.then(|| "unknown".to_string())
}

fn dmi(file: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/dmi/id/{file}"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The instance type a Nitro EC2 instance writes in its DMI product name (vendor `Amazon
/// EC2`), if it looks like one: `family.size`.
fn ec2_instance_type(vendor: Option<&str>, product: Option<&str>) -> Option<String> {
    if vendor? != "Amazon EC2" {
        return None;
    }
    let product = product?;
    let (family, size) = product.split_once('.')?;
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    (word(family) && word(size) && family.as_bytes()[0].is_ascii_lowercase())
        .then(|| product.to_string())
}

/// The T family (t2, t3, t3a, t4g, ...): burstable instances that run on CPU credits.
fn is_burstable(instance_type: &str) -> bool {
    let family = instance_type.split('.').next().unwrap_or_default();
    family
        .strip_prefix('t')
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_models_on_x86_and_graviton() {
        assert_eq!(
            cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7R13 Processor\n"),
            "AMD EPYC 7R13 Processor"
        );
        assert_eq!(
            cpu_model("processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd40\n"),
            "ARM Neoverse-V1 (Graviton3)"
        );
        assert_eq!(cpu_model(""), "unknown");
    }

    #[test]
    fn instance_types_from_dmi_and_the_t_family() {
        let it = |v, p| ec2_instance_type(Some(v), Some(p));
        assert_eq!(it("Amazon EC2", "t3.medium").as_deref(), Some("t3.medium"));
        assert_eq!(it("Amazon EC2", "c7g.large").as_deref(), Some("c7g.large"));
        assert_eq!(
            it("Amazon EC2", "u-6tb1.metal").as_deref(),
            Some("u-6tb1.metal")
        );
        assert_eq!(it("Xen", "HVM domU"), None, "Xen instances do not say");
        assert_eq!(it("QEMU", "Standard PC (i440FX + PIIX, 1996)"), None);
        assert_eq!(it("Amazon EC2", "Not Specified"), None);
        assert_eq!(ec2_instance_type(None, Some("t3.micro")), None);
        for t in ["t2.micro", "t3.medium", "t3a.large", "t4g.small"] {
            assert!(is_burstable(t), "{t}");
        }
        for t in ["c7g.large", "trn1.2xlarge", "m5.xlarge", "x2iedn.xlarge"] {
            assert!(!is_burstable(t), "{t}");
        }
    }

    #[test]
    fn this_machine_has_a_fingerprint() {
        let (f, warning) = Fingerprint::gather(&|_| None);
        assert!(warning.is_none());
        assert!(f.logical_cpus >= 1);
        assert_eq!(f.architecture, std::env::consts::ARCH);
        assert!(f.summary().starts_with("Platform: "));
        assert!(f.labels().iter().any(|(k, _)| *k == "cpu_model"));
    }
}
