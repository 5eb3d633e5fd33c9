//! A minimal HTTP/1.1 GET client, for the two places the binary is a client: the container
//! health check (`heavy-api healthcheck`) and, once at boot, the ECS task metadata endpoint.
//! One request per connection (`Connection: close`), the whole answer read to EOF, all of it
//! within one deadline.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// An answer: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Splits `http://host[:port][/path]` into host, port and path (`/` when there is none).
pub fn parse_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    if rest.contains("://") {
        return Err(format!("only http:// URLs are supported: {url}"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
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

/// GETs `url`, giving up after `timeout` in all.
pub fn get(url: &str, timeout: Duration) -> Result<Answer, String> {
    let deadline = Instant::now() + timeout;
    let (host, port, path) = parse_url(url)?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {host}"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    stream
        .set_write_timeout(Some(left()))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: heavy-api\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if Instant::now() >= deadline {
            return Err(format!("no complete answer from {url} within {timeout:?}"));
        }
        stream
            .set_read_timeout(Some(left()))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) if raw.len() + n <= 4 << 20 => raw.extend_from_slice(&chunk[..n]),
            Ok(_) => return Err(format!("answer from {url} is too large")),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{url} answered {status_line:?}"))?;
    Ok(Answer {
        status,
        body: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8000"),
            Ok(("127.0.0.1".into(), 8000, "/".into()))
        );
        assert_eq!(
            parse_url("localhost:9/x"),
            Ok(("localhost".into(), 9, "/x".into()))
        );
        assert_eq!(
            parse_url("http://[::1]:8000/v4/abc"),
            Ok(("::1".into(), 8000, "/v4/abc".into()))
        );
        assert!(parse_url("https://x").is_err());
        assert!(parse_url("http://:80").is_err());
    }

    #[test]
    fn an_answer_is_read_to_the_end() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}")
                .unwrap();
        });
        let answer = get(
            &format!("http://127.0.0.1:{port}/x"),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, "{\"a\":1}");
        server.join().unwrap();
    }
}
