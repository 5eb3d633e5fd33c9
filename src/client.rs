//! A minimal HTTP/1.1 GET client, for the two places the binary is a client: the container
//! health check (`heavy-api healthcheck`) and, once at boot, the ECS task metadata endpoint.
//! One request per connection (`Connection: close`), the whole answer read to EOF, all of it
//! within one deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Why a GET gave no answer: what the health check prints and the ECS read logs.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("only http:// URLs are supported: {0}")]
    Scheme(String),
    #[error("{why} in {url}")]
    Url { url: String, why: &'static str },
    #[error("cannot resolve {host}{}", .why.as_ref().map(|w| format!(": {w}")).unwrap_or_default())]
    Resolve {
        host: String,
        why: Option<std::io::Error>,
    },
    #[error("connect {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("no complete answer from {url} within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("answer from {0} is too large")]
    TooLarge(String),
    #[error("{url}: {why}")]
    Answer { url: String, why: String },
}

/// An answer: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Splits `http://host[:port][/path]` into host, port and path (`/` when there is none).
pub fn parse_url(url: &str) -> Result<(String, u16, String), ClientError> {
    let bad = |why| ClientError::Url {
        url: url.to_string(),
        why,
    };
    let rest = url.strip_prefix("http://").unwrap_or(url);
    if rest.contains("://") {
        return Err(ClientError::Scheme(url.to_string()));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("missing ']'"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| bad("bad port"))?,
        None => 80,
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok((host.to_string(), port, path.to_string()))
}

/// GETs `url`, giving up after `timeout` in all.
pub fn get(url: &str, timeout: Duration) -> Result<Answer, ClientError> {
    let deadline = Instant::now() + timeout;
    let (host, port, path) = parse_url(url)?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| ClientError::Resolve {
            host: host.clone(),
            why: Some(e),
        })?
        .next()
        .ok_or_else(|| ClientError::Resolve {
            host: host.clone(),
            why: None,
        })?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| ClientError::Connect { addr, source })?;
    let io = |what| move |source| ClientError::Io { what, source };
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    stream
        .set_write_timeout(Some(left()))
        .map_err(io("set the write timeout"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: heavy-api\r\nConnection: close\r\n\r\n",
        host_header(&host, port)
    );
    stream.write_all(request.as_bytes()).map_err(io("send"))?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if Instant::now() >= deadline {
            return Err(ClientError::Timeout {
                url: url.to_string(),
                timeout,
            });
        }
        stream
            .set_read_timeout(Some(left()))
            .map_err(io("set the read timeout"))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) if raw.len() + n <= 4 << 20 => raw.extend_from_slice(&chunk[..n]),
            Ok(_) => return Err(ClientError::TooLarge(url.to_string())),
            Err(e) => return Err(io("read")(e)),
        }
    }
    parse_answer(&raw).map_err(|why| ClientError::Answer {
        url: url.to_string(),
        why,
    })
}

/// The `Host` header for `host` and `port`: an IPv6 address in brackets (RFC 9110 7.2), the
/// port unless it is 80.
fn host_header(host: &str, port: u16) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if port == 80 {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// An answer read to EOF: its status, and its body as framed (chunked, Content-Length, or to
/// the end).
fn parse_answer(raw: &[u8]) -> Result<Answer, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer has no complete head")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("answered {status_line:?}"))?;
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let decoded;
    if header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().ends_with("chunked")) {
        decoded = dechunk(body)?;
        body = &decoded;
    } else if let Some(length) = header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("bad Content-Length {length:?}"))?;
        body = body
            .get(..length)
            .ok_or_else(|| format!("the body ended before its {length} bytes"))?;
    }
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

/// Decodes a chunked body (chunk extensions and trailers ignored).
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk size line is cut short")?;
        let line = std::str::from_utf8(&data[..line_end]).map_err(|_| "bad chunk size line")?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or("a chunk is cut short")?;
        out.extend_from_slice(chunk);
        data = data
            .get(size..)
            .and_then(|rest| rest.strip_prefix(b"\r\n"))
            .ok_or("a chunk does not end with CRLF")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8000").unwrap(),
            ("127.0.0.1".into(), 8000, "/".into())
        );
        assert_eq!(
            parse_url("localhost:9/x").unwrap(),
            ("localhost".into(), 9, "/x".into())
        );
        assert_eq!(
            parse_url("http://[::1]:8000/v4/abc").unwrap(),
            ("::1".into(), 8000, "/v4/abc".into())
        );
        assert_eq!(
            parse_url("https://x").unwrap_err().to_string(),
            "only http:// URLs are supported: https://x"
        );
        assert_eq!(
            parse_url("http://:80").unwrap_err().to_string(),
            "no host in http://:80"
        );
    }

    #[test]
    fn chunked_bodies_are_decoded_and_ipv6_hosts_bracketed() {
        let answer = parse_answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              8;ext=1\r\n{\"status\r\n0b\r\n\": \"ready\"}\r\n0\r\nX-T: 1\r\n\r\n",
        )
        .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, r#"{"status": "ready"}"#);
        assert!(
            parse_answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab").is_err()
        );
        let sized = parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA").unwrap();
        assert_eq!(sized.body, "ok");
        assert_eq!(host_header("::1", 8000), "[::1]:8000");
        assert_eq!(host_header("127.0.0.1", 8000), "127.0.0.1:8000");
        assert_eq!(host_header("example.com", 80), "example.com");
    }

    /// Serves one connection: returns what the client sent, after answering `answer`.
    fn serve_once(
        listener: std::net::TcpListener,
        answer: &'static [u8],
    ) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "the request ended early");
                request.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer).unwrap();
            String::from_utf8(request).unwrap()
        })
    }

    #[test]
    fn an_ipv6_server_gets_a_bracketed_host_and_a_chunked_answer_is_decoded() {
        let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
            return; // no IPv6 loopback here: the unit test above covers the header
        };
        let port = listener.local_addr().unwrap().port();
        let server = serve_once(
            listener,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nok!!\r\n0\r\n\r\n",
        );
        let answer = get(&format!("http://[::1]:{port}/h"), Duration::from_secs(30)).unwrap();
        assert_eq!(answer.body, "ok!!");
        let request = server.join().unwrap();
        assert!(
            request.contains(&format!("\r\nHost: [::1]:{port}\r\n")),
            "{request}"
        );
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
