//! `heavy-api healthcheck [URL]`: the container's health probe. The runtime image has no shell
//! or curl, so the binary probes itself: GET /heavy/health/, exit 0 on a 200, 1 otherwise.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Probes `url` and returns the exit status. A URL without a path gets `/heavy/health/`.
pub fn run(url: &str, timeout: Duration) -> i32 {
    match probe(url, timeout) {
        Ok(()) => 0,
        Err(why) => {
            eprintln!("unhealthy: {why}");
            1
        }
    }
}

/// Splits `http://host[:port][/path]` into host, port and path.
pub fn parse_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    if rest.contains("://") {
        return Err(format!("only http:// URLs are supported: {url}"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let path = if path.is_empty() || path == "/" {
        crate::app::HEALTH_PATH
    } else {
        path
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("missing ']'")?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| format!("bad port in {url}"))?,
        None => 80,
    };
    if host.is_empty() {
        return Err(format!("no host in {url}"));
    }
    Ok((host.to_string(), port, path.to_string()))
}

fn probe(url: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let (host, port, path) = parse_url(url)?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {host}"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    stream
        .set_read_timeout(Some(left))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(left))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: heavy-api-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match stream.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let status_line = String::from_utf8_lossy(&head[..got]);
    let status = status_line.split(' ').nth(1).unwrap_or("");
    if status == "200" {
        Ok(())
    } else {
        Err(format!(
            "{url} answered {:?}",
            status_line.lines().next().unwrap_or("")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8000"),
            Ok(("127.0.0.1".into(), 8000, "/heavy/health/".into()))
        );
        assert_eq!(
            parse_url("localhost:9/x"),
            Ok(("localhost".into(), 9, "/x".into()))
        );
        assert_eq!(
            parse_url("http://[::1]:8000/"),
            Ok(("::1".into(), 8000, "/heavy/health/".into()))
        );
        assert!(parse_url("https://x").is_err());
        assert!(parse_url("http://:80").is_err());
    }

    #[test]
    fn a_closed_port_is_unhealthy() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        assert_eq!(
            run(&format!("http://127.0.0.1:{port}"), Duration::from_secs(1)),
            1
        );
    }
}
