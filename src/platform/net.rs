//! The network namespace's interface counters, from `/proc/net/dev` (which shows the namespace of
//! the process reading it). With awsvpc networking (Fargate, or ECS on EC2 in awsvpc mode) the
//! namespace is the task's own, so these are the task's ENI; in bridge mode the container's veth;
//! with host networking the whole instance's interfaces. Loopback is left out.

/// One interface's totals since it came up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub receive_bytes: u64,
    pub receive_packets: u64,
    pub transmit_bytes: u64,
    pub transmit_packets: u64,
}

/// The interfaces of this process's network namespace, except `lo`; empty if unreadable.
pub fn interfaces() -> Vec<Interface> {
    std::fs::read_to_string("/proc/net/dev")
        .map(|text| parse_net_dev(&text))
        .unwrap_or_default()
}

/// Parses `/proc/net/dev`: two header lines, then `name: rx_bytes rx_packets errs drop fifo
/// frame compressed multicast tx_bytes tx_packets ...`. Malformed lines are skipped.
pub fn parse_net_dev(text: &str) -> Vec<Interface> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let name = name.trim();
            if name == "lo" || name.is_empty() {
                return None;
            }
            let fields: Vec<u64> = rest
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            if fields.len() < 10 {
                return None;
            }
            Some(Interface {
                name: name.to_string(),
                receive_bytes: fields[0],
                receive_packets: fields[1],
                transmit_bytes: fields[8],
                transmit_packets: fields[9],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded on the development machine (a container with its own namespace: eth0 its veth,
    /// ifb0/ifb1 traffic-shaping devices).
    const RECORDED: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 967668295 3287027    0    0    0     0          0         0 967668295 3287027    0    0    0     0       0          0
  ifb0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  ifb1:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0: 218198670    6551    0    0    0     0          0         0   373975    4074    0    0    0     0       0          0
";

    #[test]
    fn interfaces_parse_without_loopback() {
        let ifs = parse_net_dev(RECORDED);
        let names: Vec<&str> = ifs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["ifb0", "ifb1", "eth0"]);
        assert_eq!(
            ifs[2],
            Interface {
                name: "eth0".into(),
                receive_bytes: 218_198_670,
                receive_packets: 6551,
                transmit_bytes: 373_975,
                transmit_packets: 4074,
            }
        );
    }

    #[test]
    fn names_glued_to_counters_and_junk_lines() {
        // Counters wide enough to touch the colon, and a truncated line.
        let text = "h1\nh2\neth0:12345678901 2 0 0 0 0 0 0 3 4 0 0 0 0 0 0\nbad: 1 2\n";
        let ifs = parse_net_dev(text);
        assert_eq!(ifs.len(), 1);
        assert_eq!(ifs[0].name, "eth0");
        assert_eq!(ifs[0].receive_bytes, 12_345_678_901);
        assert_eq!((ifs[0].transmit_bytes, ifs[0].transmit_packets), (3, 4));
        assert!(parse_net_dev("").is_empty());
    }

    #[test]
    fn this_namespace_reads() {
        // Whatever this machine has; only that reading never panics and drops lo.
        assert!(interfaces().iter().all(|i| i.name != "lo"));
    }
}
