//! Request-head parsing: Gunicorn's limits checked on the raw bytes first, then `httparse` for
//! the grammar, then the framing and semantic rules that keep a request unambiguous.

use super::HttpError;

/// Limits on what a client may send (Gunicorn's `--limit-request-*` plus a body bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Longest request line in bytes, without its CRLF (`--limit-request-line`).
    pub request_line: usize,
    /// Most header fields (`--limit-request-fields`).
    pub fields: usize,
    /// Longest header line in bytes, counting its CRLF as Gunicorn does
    /// (`--limit-request-field_size`).
    pub field_size: usize,
    /// Largest request body accepted (and discarded: no endpoint reads one).
    pub body: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            request_line: 4094,
            fields: 100,
            field_size: 8190,
            body: 1024 * 1024,
        }
    }
}

impl HttpLimits {
    /// Gunicorn's normalisation: 0 or out-of-range values mean its hard maximum.
    pub fn normalised(request_line: i64, fields: i64, field_size: i64, body: u64) -> Self {
        let clamp = |v: i64, max: usize| {
            if v <= 0 || v as usize > max {
                max
            } else {
                v as usize
            }
        };
        HttpLimits {
            request_line: clamp(request_line, 8190),
            fields: clamp(fields, 32768),
            field_size: if field_size <= 0 {
                65536
            } else {
                clamp(field_size, 65536)
            },
            body,
        }
    }

    /// The most bytes a complete head can take; reading stops here.
    pub fn max_head_bytes(&self) -> usize {
        (self.request_line + 2) + self.fields * (self.field_size + 2) + 2
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the body that follows the head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

/// A parsed, validated request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request target exactly as sent.
    pub target: String,
    /// The path of the target (for absolute-form targets, the part after the authority).
    pub path: String,
    /// What follows `?` in the target, without it; empty if none.
    pub query: String,
    pub version: Version,
    /// Whether the client allows the connection to stay open after this request.
    pub keep_alive: bool,
    pub body: BodyFraming,
    /// The client sent `Expect: 100-continue`.
    pub expect_continue: bool,
    /// Header fields as sent (names keep their case), for logging.
    pub headers: Vec<(String, String)>,
    /// Bytes of the head, including the blank line that ends it.
    pub head_len: usize,
}

impl RequestHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request line as the access log's `%(r)s` shows it.
    pub fn request_line(&self) -> String {
        format!("{} {} {}", self.method, self.target, self.version.as_str())
    }
}

/// Parses a request head from the start of `buf`. `Ok(None)`: the head is not complete yet (and
/// within limits, so reading may go on).
pub fn parse_head(buf: &[u8], limits: &HttpLimits) -> Result<Option<RequestHead>, HttpError> {
    parse_head_with(buf, limits, true)
}

/// As [`parse_head`]; `keep_headers: false` leaves [`RequestHead::headers`] empty, which saves
/// an allocation per header when nothing (the access log) will read them.
pub fn parse_head_with(
    buf: &[u8],
    limits: &HttpLimits,
    keep_headers: bool,
) -> Result<Option<RequestHead>, HttpError> {
    // Tolerate empty lines before a request (RFC 9112 2.2), as after a pipelined body.
    let skipped = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if skipped > limits.request_line {
        return Err(HttpError::bad_request(
            "too many empty lines before the request",
        ));
    }
    let buf = &buf[skipped..];
    let Some(line_end) = find_lf(buf) else {
        if buf.len() > limits.request_line + 1 {
            return Err(HttpError::bad_request("request line is too long"));
        }
        return Ok(None);
    };
    let line = trim_cr(&buf[..line_end]);
    if line.len() > limits.request_line {
        return Err(HttpError::bad_request("request line is too long"));
    }
    let version = check_request_line(line)?;

    // Walk the header lines on the raw bytes: Gunicorn's count and size limits answer 431.
    let mut pos = line_end + 1;
    let mut fields = 0usize;
    let head_end = loop {
        let Some(rel) = find_lf(&buf[pos..]) else {
            // The open line's content so far; a final CR may still be the start of its CRLF.
            let open = &buf[pos..];
            let content = open.len() - usize::from(open.ends_with(b"\r"));
            if content + 2 > limits.field_size {
                return Err(HttpError::header_too_large("a header field is too large"));
            }
            return Ok(None);
        };
        let field = trim_cr(&buf[pos..pos + rel]);
        pos += rel + 1;
        if field.is_empty() {
            break pos;
        }
        if field[0] == b' ' || field[0] == b'\t' {
            return Err(HttpError::bad_request(
                "obsolete header line folding is not accepted",
            ));
        }
        if field.len() + 2 > limits.field_size {
            return Err(HttpError::header_too_large("a header field is too large"));
        }
        fields += 1;
        if fields > limits.fields {
            return Err(HttpError::header_too_large("too many header fields"));
        }
    };

    let mut storage = vec![httparse::EMPTY_HEADER; fields];
    let mut req = httparse::Request::new(&mut storage);
    match req.parse(&buf[..head_end]) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(HttpError::bad_request("malformed request head"));
        }
        Err(err) => return Err(HttpError::bad_request(&format!("malformed request: {err}"))),
    }
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default().to_string();
    let framing = Framing::from_headers(req.headers, version, limits)?;
    let (path, query) = split_target(&method, &target)?;
    let headers = if keep_headers {
        // httparse admits obs-text (bytes >= 0x80) in values; keep it, lossily, for logging.
        req.headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Some(RequestHead {
        method,
        target,
        path,
        query,
        version,
        keep_alive: framing.keep_alive,
        body: framing.body,
        expect_continue: framing.expect_continue,
        headers,
        head_len: skipped + head_end,
    }))
}

fn find_lf(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Checks the request line's shape and version before `httparse` sees it, so that a
/// well-formed but unsupported version gets 505 and stray bytes get a clear 400.
fn check_request_line(line: &[u8]) -> Result<Version, HttpError> {
    if let Some(&b) = line
        .iter()
        .find(|&&b| !(0x21..0x7f).contains(&b) && b != b' ')
    {
        let what = if b >= 0x80 {
            "non-ASCII byte"
        } else {
            "control character"
        };
        return Err(HttpError::bad_request(&format!(
            "{what} in the request line"
        )));
    }
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(HttpError::bad_request("malformed request line"));
    }
    match parts[2] {
        b"HTTP/1.1" => Ok(Version::Http11),
        b"HTTP/1.0" => Ok(Version::Http10),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(HttpError::version_not_supported())
        }
        [b'H', b'T', b'T', b'P', b'/', major] if major.is_ascii_digit() => {
            Err(HttpError::version_not_supported())
        }
        _ => Err(HttpError::bad_request("invalid HTTP version")),
    }
}

/// Splits an origin-form (`/p?q`) or absolute-form (`http://h/p?q`) target into path and query.
fn split_target(method: &str, target: &str) -> Result<(String, String), HttpError> {
    let origin = if target.starts_with('/') {
        target.to_string()
    } else if let Some(after_scheme) = strip_scheme(target) {
        let rest = &after_scheme[after_scheme.find(['/', '?']).unwrap_or(after_scheme.len())..];
        if rest.starts_with('/') {
            rest.to_string()
        } else {
            format!("/{rest}")
        }
    } else if target == "*" && method == "OPTIONS" {
        target.to_string()
    } else {
        return Err(HttpError::bad_request("invalid request target"));
    };
    let origin = origin.split('#').next().unwrap_or_default();
    Ok(match origin.split_once('?') {
        Some((path, query)) => (path.to_string(), query.to_string()),
        None => (origin.to_string(), String::new()),
    })
}

fn strip_scheme(target: &str) -> Option<&str> {
    let lower = target
        .get(..8)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if lower.starts_with("http://") {
        Some(&target[7..])
    } else if lower.starts_with("https://") {
        Some(&target[8..])
    } else {
        None
    }
}

/// `uri-host [ ":" port ]` (RFC 9110 7.2): a reg-name, IPv4 address or bracketed IPv6 literal.
fn is_valid_host(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:%[]".contains(&b))
}

struct Framing {
    body: BodyFraming,
    keep_alive: bool,
    expect_continue: bool,
}

impl Framing {
    /// The message-framing rules of RFC 9112 section 6, strictly: anything a proxy in front
    /// could read differently (request smuggling) is refused.
    fn from_headers(
        headers: &[httparse::Header<'_>],
        version: Version,
        limits: &HttpLimits,
    ) -> Result<Framing, HttpError> {
        let mut content_length: Option<u64> = None;
        let mut transfer_codings: Vec<String> = Vec::new();
        let mut hosts = 0;
        let (mut close, mut keep_alive_token) = (false, false);
        let mut expect_continue = false;
        for header in headers {
            let name = header.name;
            let framing_header = [
                "content-length",
                "transfer-encoding",
                "host",
                "connection",
                "expect",
            ]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n));
            if !framing_header {
                continue;
            }
            let Ok(value) = std::str::from_utf8(header.value) else {
                return Err(HttpError::bad_request(&format!("invalid bytes in {name}")));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                if content_length.is_some() {
                    return Err(HttpError::bad_request("more than one Content-Length"));
                }
                if value.is_empty()
                    || value.len() > 18
                    || !value.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(HttpError::bad_request("invalid Content-Length"));
                }
                content_length = Some(value.parse().expect("validated digits"));
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_codings.extend(
                    value
                        .split(',')
                        .map(|c| c.trim().to_ascii_lowercase())
                        .filter(|c| !c.is_empty()),
                );
            } else if name.eq_ignore_ascii_case("host") {
                hosts += 1;
                if !is_valid_host(value) {
                    return Err(HttpError::bad_request("invalid Host header"));
                }
            } else if name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(str::trim) {
                    close |= token.eq_ignore_ascii_case("close");
                    keep_alive_token |= token.eq_ignore_ascii_case("keep-alive");
                }
            } else if name.eq_ignore_ascii_case("expect") {
                if !value.eq_ignore_ascii_case("100-continue") {
                    return Err(HttpError::new(417, "unsupported Expect value"));
                }
                expect_continue = version == Version::Http11;
            }
        }
        if version == Version::Http11 && hosts == 0 {
            return Err(HttpError::bad_request(
                "HTTP/1.1 request without a Host header",
            ));
        }
        if hosts > 1 {
            return Err(HttpError::bad_request("more than one Host header"));
        }
        let body = match (content_length, transfer_codings.is_empty()) {
            (Some(_), false) => {
                return Err(HttpError::bad_request(
                    "both Content-Length and Transfer-Encoding: ambiguous framing",
                ))
            }
            (None, false) => {
                if version == Version::Http10 {
                    return Err(HttpError::bad_request(
                        "Transfer-Encoding in an HTTP/1.0 request",
                    ));
                }
                let chunked = transfer_codings.iter().filter(|c| *c == "chunked").count();
                if transfer_codings.iter().any(|c| c != "chunked") {
                    return Err(HttpError::new(501, "unsupported transfer coding"));
                }
                if chunked != 1 {
                    return Err(HttpError::bad_request("chunked applied more than once"));
                }
                BodyFraming::Chunked
            }
            (Some(n), true) if n > limits.body => {
                return Err(HttpError::new(413, "request body is too large"))
            }
            (Some(0), true) | (None, true) => BodyFraming::None,
            (Some(n), true) => BodyFraming::Length(n),
        };
        let keep_alive = match version {
            Version::Http11 => !close,
            Version::Http10 => keep_alive_token && !close,
        };
        let expect_continue = expect_continue && body != BodyFraming::None;
        Ok(Framing {
            body,
            keep_alive,
            expect_continue,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<RequestHead>, HttpError> {
        parse_head(raw.as_bytes(), &HttpLimits::default())
    }

    fn status(raw: &str) -> u16 {
        parse(raw).expect_err("should be rejected").status
    }

    fn ok(raw: &str) -> RequestHead {
        parse(raw).unwrap().expect("complete head")
    }

    #[test]
    fn a_simple_get() {
        let h = ok("GET /heavy/health/?a=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: k6\r\n\r\nrest");
        assert_eq!(h.method, "GET");
        assert_eq!(h.path, "/heavy/health/");
        assert_eq!(h.query, "a=1");
        assert_eq!(h.version, Version::Http11);
        assert!(h.keep_alive);
        assert_eq!(h.body, BodyFraming::None);
        assert_eq!(h.header("user-agent"), Some("k6"));
        assert_eq!(
            h.head_len,
            "GET /heavy/health/?a=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: k6\r\n\r\n".len()
        );
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert_eq!(parse("GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        assert_eq!(parse("GET / HT"), Ok(None));
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("\r\n\r\n"), Ok(None));
    }

    #[test]
    fn bare_lf_and_leading_blank_lines_are_tolerated() {
        assert_eq!(ok("\r\nGET / HTTP/1.0\n\n").version, Version::Http10);
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(
            !ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n").keep_alive
        );
    }

    #[test]
    fn request_line_limit_is_exact() {
        let path = "/".to_string() + &"a".repeat(4094 - "GET  HTTP/1.1".len() - 1);
        let line = format!("GET {path} HTTP/1.1");
        assert_eq!(line.len(), 4094);
        ok(&format!("{line}\r\nHost: x\r\n\r\n"));
        assert_eq!(
            status(&format!("GET {path}a HTTP/1.1\r\nHost: x\r\n\r\n")),
            400
        );
        // Without its end, a line over the limit is refused as soon as it is over.
        assert_eq!(status(&format!("GET {path}{}", "a".repeat(20))), 400);
    }

    #[test]
    fn header_limits_answer_431() {
        let hundred: String = (0..99).map(|i| format!("X-{i}: v\r\n")).collect();
        ok(&format!("GET / HTTP/1.1\r\nHost: x\r\n{hundred}\r\n"));
        assert_eq!(
            status(&format!(
                "GET / HTTP/1.1\r\nHost: x\r\nX-a: b\r\n{hundred}\r\n"
            )),
            431
        );
        // 8190 bytes with the CRLF, as Gunicorn counts them.
        let big = format!("X-Big: {}", "v".repeat(8188 - 7));
        assert_eq!(big.len() + 2, 8190);
        ok(&format!("GET / HTTP/1.1\r\nHost: x\r\n{big}\r\n\r\n"));
        assert_eq!(
            status(&format!("GET / HTTP/1.1\r\nHost: x\r\n{big}v\r\n\r\n")),
            431
        );
        assert_eq!(
            status(&format!("GET / HTTP/1.1\r\nHost: x\r\n{big}vv")),
            431
        );
    }

    #[test]
    fn versions() {
        assert_eq!(status("GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(status("GET / HTTP/0.9\r\n\r\n"), 505);
        assert_eq!(status("GET / HTTP/3\r\n\r\n"), 505);
        assert_eq!(status("GET / HTTP/1.1.1\r\n\r\n"), 400);
        assert_eq!(status("GET / FOO\r\n\r\n"), 400);
        assert_eq!(status("GET /\r\n\r\n"), 400);
        assert_eq!(status("GET  / HTTP/1.1\r\n\r\n"), 400);
    }

    #[test]
    fn garbage_and_control_bytes() {
        assert_eq!(
            status("\x16\x03\x01\x02\x00\x01\x00\x01\x7f\x03\x03\r\n\r\n"),
            400
        );
        assert_eq!(status("GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status("GET /caf\u{e9} HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n"),
            400
        );
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n"),
            400
        );
        assert_eq!(status("GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n"), 400);
        assert_eq!(status("G(T / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    }

    #[test]
    fn obsolete_folding_is_refused() {
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  b\r\n\r\n"),
            400
        );
    }

    #[test]
    fn endless_empty_lines_are_bounded() {
        assert_eq!(status(&"\r\n".repeat(3000)), 400);
    }

    #[test]
    fn host_values_are_checked() {
        ok("GET / HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n");
        ok("GET / HTTP/1.1\r\nHost: \r\n\r\n");
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400);
    }

    #[test]
    fn host_is_required_once_in_http11() {
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        ok("GET / HTTP/1.0\r\n\r\n");
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        let h = "GET / HTTP/1.1\r\nHost: x\r\n";
        assert_eq!(
            status(&format!(
                "{h}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            )),
            400
        );
        assert_eq!(
            status(&format!(
                "{h}Content-Length: 5\r\nContent-Length: 5\r\n\r\n"
            )),
            400
        );
        assert_eq!(
            status(&format!(
                "{h}Content-Length: 5\r\nContent-Length: 6\r\n\r\n"
            )),
            400
        );
        assert_eq!(status(&format!("{h}Content-Length: 5, 5\r\n\r\n")), 400);
        assert_eq!(status(&format!("{h}Content-Length: +5\r\n\r\n")), 400);
        assert_eq!(status(&format!("{h}Content-Length: 0x5\r\n\r\n")), 400);
        assert_eq!(status(&format!("{h}Content-Length: \r\n\r\n")), 400);
        assert_eq!(
            status(&format!("{h}Transfer-Encoding: gzip, chunked\r\n\r\n")),
            501
        );
        assert_eq!(
            status(&format!("{h}Transfer-Encoding: chunked, identity\r\n\r\n")),
            501
        );
        assert_eq!(
            status(&format!(
                "{h}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
            )),
            400
        );
        assert_eq!(
            status("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(&format!("{h}Content-Length: 100000000000000\r\n\r\n")),
            413
        );
        assert_eq!(
            status(&format!(
                "{h}Content-Length: 99999999999999999999999\r\n\r\n"
            )),
            400
        );
        assert_eq!(
            ok(&format!("{h}Transfer-Encoding: Chunked\r\n\r\n")).body,
            BodyFraming::Chunked
        );
        assert_eq!(
            ok(&format!("{h}Content-Length: 12\r\n\r\n")).body,
            BodyFraming::Length(12)
        );
        assert_eq!(
            ok(&format!("{h}Content-Length: 0\r\n\r\n")).body,
            BodyFraming::None
        );
    }

    #[test]
    fn expect_header() {
        let h = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n";
        assert!(ok(&format!("{h}Expect: 100-continue\r\n\r\n")).expect_continue);
        assert_eq!(status(&format!("{h}Expect: something-else\r\n\r\n")), 417);
    }

    #[test]
    fn targets() {
        let h = ok("GET http://example.com:8000/heavy/health/?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            (h.path.as_str(), h.query.as_str()),
            ("/heavy/health/", "x=1")
        );
        let h = ok("GET HTTP://example.com HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(h.path, "/");
        let h = ok("GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(h.path, "/a");
        assert_eq!(ok("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").path, "*");
        assert_eq!(
            status("GET example.com:80 HTTP/1.1\r\nHost: x\r\n\r\n"),
            400
        );
        assert_eq!(status("GET * HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    }

    #[test]
    fn normalised_limits_follow_gunicorn() {
        let l = HttpLimits::normalised(0, 0, 0, 10);
        assert_eq!((l.request_line, l.fields), (8190, 32768));
        let l = HttpLimits::normalised(9000, 40000, 100, 10);
        assert_eq!((l.request_line, l.fields, l.field_size), (8190, 32768, 100));
    }
}
