//! statsd metrics with Gunicorn's names and wire format (`--statsd-host`, `--statsd-prefix`,
//! `--dogstatsd-tags`), so dashboards built on a Gunicorn service keep working:
//!
//! - per request: `gunicorn.request.duration:<ms>|ms`, `gunicorn.requests:1|c|@1.0`,
//!   `gunicorn.request.status.<code>:1|c|@1.0` (in that order, one datagram each);
//! - `gunicorn.workers:<n>|g` from the master whenever the number of workers changes;
//! - `gunicorn.log.warning|error|critical:1|c|@1.0` for every error-log line at those levels
//!   (whatever `--log-level` lets through, as Gunicorn counts them).
//!
//! A prefix gets one trailing `.`; dogstatsd tags are appended as `|#<tags>`. Sends are
//! non-blocking datagrams whose errors are dropped: statsd never delays or fails a request.
//! The socket is opened in the master and inherited by the workers.

use std::net::{ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration;

/// Where `--statsd-host` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Udp { host: String, port: u16 },
    Unix(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Udp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Target::Udp { host, port } => write!(f, "{host}:{port}"),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Gunicorn's forms: `HOST:PORT`, `HOST` (port 8125), `[V6]:PORT`, `unix:PATH`, `unix://PATH`.
/// (`unix:NUMBER` is the host `unix` at that port, as Gunicorn keeps it.)
pub fn parse_target(text: &str) -> Result<Target, String> {
    let bad = |why: &str| format!("invalid --statsd-host {text:?}: {why}");
    if let Some(rest) = text.strip_prefix("unix:") {
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            let port = rest.parse().map_err(|_| bad("port out of range"))?;
            return Ok(Target::Udp {
                host: "unix".into(),
                port,
            });
        }
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err(bad("empty socket path"));
        }
        return Ok(Target::Unix(PathBuf::from(path)));
    }
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("missing ']'"))?;
        (host, after.strip_prefix(':'))
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let port = match port {
        None => 8125,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| bad("port must be a number from 0 to 65535"))?,
    };
    Ok(Target::Udp {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// Gunicorn's prefix rule: trailing dots become exactly one, but only for a prefix of two or
/// more characters (a one-character prefix is used as it is).
pub fn normalise_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('.');
    if trimmed.chars().count() >= 2 {
        format!("{trimmed}.")
    } else {
        prefix.to_string()
    }
}

enum Sock {
    Udp(UdpSocket),
    Unix(UnixDatagram, PathBuf),
}

struct Client {
    sock: Sock,
    prefix: String,
    tags: String,
}

static CLIENT: RwLock<Option<Client>> = RwLock::new(None);

/// `--statsd-host` cannot be used (its name does not resolve, no socket): statsd is off.
#[derive(Debug, thiserror::Error)]
#[error(
    "statsd is off: cannot use --statsd-host {target}: {source}; it stays off until a reload \
     (HUP) finds the host"
)]
pub struct Unusable {
    pub target: Target,
    #[source]
    pub source: std::io::Error,
}

/// Opens (or, on reload, replaces or closes) the statsd socket. A host that does not resolve
/// leaves statsd off and says so (the caller logs it; the server runs on, as Gunicorn's, whose
/// statsd goes quiet when its host cannot be reached); a collector that is not listening is no
/// error at all.
pub fn init(target: Option<&Target>, prefix: &str, tags: &str) -> Result<(), Unusable> {
    let mut result = Ok(());
    let client = target.and_then(|t| match open(t) {
        Ok(sock) => Some(Client {
            sock,
            prefix: normalise_prefix(prefix),
            tags: tags.to_string(),
        }),
        Err(source) => {
            result = Err(Unusable {
                target: t.clone(),
                source,
            });
            None
        }
    });
    *CLIENT.write().unwrap_or_else(|e| e.into_inner()) = client;
    result
}

fn open(target: &Target) -> std::io::Result<Sock> {
    Ok(match target {
        Target::Udp { host, port } => {
            let addr = (host.as_str(), *port)
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| std::io::Error::other("the host has no address"))?;
            let local = if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let sock = UdpSocket::bind(local)?;
            sock.connect(addr)?;
            sock.set_nonblocking(true)?;
            Sock::Udp(sock)
        }
        Target::Unix(path) => {
            let sock = UnixDatagram::unbound()?;
            sock.set_nonblocking(true)?;
            Sock::Unix(sock, path.clone())
        }
    })
}

pub fn enabled() -> bool {
    CLIENT.read().unwrap_or_else(|e| e.into_inner()).is_some()
}

fn send(name: &str, value: &str, kind: &str) {
    let guard = CLIENT.read().unwrap_or_else(|e| e.into_inner());
    let Some(c) = guard.as_ref() else { return };
    let mut msg = format!("{}{name}:{value}|{kind}", c.prefix);
    if !c.tags.is_empty() {
        msg.push_str("|#");
        msg.push_str(&c.tags);
    }
    // Non-blocking: a full buffer or an absent collector loses the datagram, nothing more.
    let _ = match &c.sock {
        Sock::Udp(s) => s.send(msg.as_bytes()),
        Sock::Unix(s, path) => s.send_to(msg.as_bytes(), path),
    };
}

/// A counter (`name:value|c|@1.0`).
pub fn increment(name: &str, value: u64) {
    send(name, &value.to_string(), "c|@1.0");
}

/// A gauge (`name:value|g`).
pub fn gauge(name: &str, value: u64) {
    send(name, &value.to_string(), "g");
}

/// A timer in milliseconds (`name:value|ms`), the value written as Python writes a float.
pub fn timer(name: &str, millis: f64) {
    send(name, &python_float(millis), "ms");
}

/// The three datagrams Gunicorn sends after each request.
pub fn request(status: u16, duration: Duration) {
    if !enabled() {
        return;
    }
    // As Gunicorn computes it from a timedelta: whole microseconds.
    let millis = (duration.as_secs() * 1000) as f64 + f64::from(duration.subsec_micros()) / 1000.0;
    timer("gunicorn.request.duration", millis);
    increment("gunicorn.requests", 1);
    increment(&format!("gunicorn.request.status.{status}"), 1);
}

/// `repr(float)`: the shortest round-trip digits, with `.0` on whole numbers.
pub fn python_float(x: f64) -> String {
    let s = format!("{x}");
    if s.contains(['.', 'e', 'i', 'N']) {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_as_gunicorn_reads_them() {
        assert_eq!(
            parse_target("localhost:9125"),
            Ok(Target::Udp {
                host: "localhost".into(),
                port: 9125
            })
        );
        assert_eq!(
            parse_target("Statsd"),
            Ok(Target::Udp {
                host: "statsd".into(),
                port: 8125
            })
        );
        assert_eq!(
            parse_target("[::1]:1"),
            Ok(Target::Udp {
                host: "::1".into(),
                port: 1
            })
        );
        assert_eq!(
            parse_target("unix:/run/s.sock"),
            Ok(Target::Unix("/run/s.sock".into()))
        );
        assert_eq!(
            parse_target("unix:///run/s.sock"),
            Ok(Target::Unix("/run/s.sock".into()))
        );
        assert_eq!(
            parse_target("unix:8125"),
            Ok(Target::Udp {
                host: "unix".into(),
                port: 8125
            })
        );
        for bad in ["", ":1", "h:x", "unix:", "[::1"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_and_floats_as_gunicorn_writes_them() {
        assert_eq!(normalise_prefix(""), "");
        assert_eq!(normalise_prefix("app"), "app.");
        assert_eq!(normalise_prefix("app..."), "app.");
        assert_eq!(normalise_prefix("a"), "a");
        assert_eq!(normalise_prefix("my.app"), "my.app.");
        assert_eq!(python_float(12.0), "12.0");
        assert_eq!(python_float(0.123), "0.123");
        assert_eq!(python_float(1234.567), "1234.567");
    }
}
