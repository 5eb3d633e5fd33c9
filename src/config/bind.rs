//! Listener addresses: `--bind` and `--metrics-bind`, in Gunicorn's forms.

use std::fmt;
use std::path::PathBuf;

/// Where a listener comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindSpec {
    /// A host (name or address) and port.
    Tcp {
        host: String,
        port: u16,
    },
    Unix(PathBuf),
    /// An already open listening socket, inherited.
    Fd(i32),
}

impl BindSpec {
    /// Whether two listeners would claim the same address: the same path or descriptor, or the
    /// same TCP port (not 0, which picks a free one) on the same host or a wildcard host.
    pub fn overlaps(&self, other: &BindSpec) -> bool {
        let wildcard = |h: &str| matches!(h, "0.0.0.0" | "::" | "");
        match (self, other) {
            (BindSpec::Tcp { host: a, port: p }, BindSpec::Tcp { host: b, port: q }) => {
                p == q && *p != 0 && (a == b || wildcard(a) || wildcard(b))
            }
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for BindSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindSpec::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            BindSpec::Tcp { host, port } => write!(f, "{host}:{port}"),
            BindSpec::Unix(path) => write!(f, "unix:{}", path.display()),
            BindSpec::Fd(fd) => write!(f, "fd://{fd}"),
        }
    }
}

impl BindSpec {
    /// Gunicorn's address forms: `HOST`, `HOST:PORT`, `[V6]:PORT`, `tcp://…`, `unix:PATH`,
    /// `unix://PATH`, `fd://N`. A missing port is 8000.
    pub fn parse(text: &str) -> Result<BindSpec, String> {
        let bad = |why: &str| format!("invalid --bind {text:?}: {why}");
        if let Some(path) = text
            .strip_prefix("unix://")
            .or_else(|| text.strip_prefix("unix:"))
        {
            if path.is_empty() {
                return Err(bad("empty socket path"));
            }
            return Ok(BindSpec::Unix(PathBuf::from(path)));
        }
        if let Some(fd) = text.strip_prefix("fd://") {
            return fd
                .parse::<i32>()
                .ok()
                .filter(|fd| *fd >= 0)
                .map(BindSpec::Fd)
                .ok_or_else(|| bad("not a file descriptor number"));
        }
        let rest = text.strip_prefix("tcp://").unwrap_or(text);
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| bad("expected ':' after ']'"))?,
                    ),
                ),
            }
        } else if rest.matches(':').count() > 1 {
            return Err(bad("IPv6 addresses need brackets, as [::1]:8000"));
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port = match port {
            None => 8000,
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("port must be a number from 0 to 65535"))?,
        };
        Ok(BindSpec::Tcp {
            host: host.to_string(),
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_forms() {
        assert_eq!(
            BindSpec::parse("0.0.0.0:80"),
            Ok(BindSpec::Tcp {
                host: "0.0.0.0".into(),
                port: 80
            })
        );
        assert_eq!(
            BindSpec::parse("localhost"),
            Ok(BindSpec::Tcp {
                host: "localhost".into(),
                port: 8000
            })
        );
        assert_eq!(
            BindSpec::parse("[::1]:9000"),
            Ok(BindSpec::Tcp {
                host: "::1".into(),
                port: 9000
            })
        );
        assert_eq!(
            BindSpec::parse("tcp://127.0.0.1:1"),
            Ok(BindSpec::Tcp {
                host: "127.0.0.1".into(),
                port: 1
            })
        );
        assert_eq!(
            BindSpec::parse("unix:/tmp/s.sock"),
            Ok(BindSpec::Unix("/tmp/s.sock".into()))
        );
        assert_eq!(
            BindSpec::parse("unix:///tmp/s.sock"),
            Ok(BindSpec::Unix("/tmp/s.sock".into()))
        );
        assert_eq!(BindSpec::parse("fd://3"), Ok(BindSpec::Fd(3)));
        for bad in [
            "fd://x",
            "1.2.3.4:99999",
            "::1:80",
            "[::1",
            ":80",
            "unix:",
            "h:port",
        ] {
            assert!(BindSpec::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            BindSpec::Tcp {
                host: "::1".into(),
                port: 1
            }
            .to_string(),
            "[::1]:1"
        );
    }
}
