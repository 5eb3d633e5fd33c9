//! Request-head parsing in two steps. [`HeadScan`] finds where a head ends as its bytes arrive,
//! checking Gunicorn's per-line limits and the total head cap on each byte once, so a head that
//! trickles in costs time linear in its size. [`parse_head`] then parses the complete head once:
//! `httparse` for the grammar, then the framing and semantic rules that keep it unambiguous.

use super::HttpError;
use serde::{Deserialize, Serialize};

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
    /// Largest whole head, request line and fields together (`--limit-request-head`). Gunicorn
    /// has no such cap; without it a legal head could be `fields x field_size` (800 KiB by
    /// default), held in memory per connection.
    pub head: usize,
    /// Largest request body accepted (and discarded: no endpoint reads one).
    pub body: u64,
}

/// Default of `--limit-request-head`: twice nginx's default header buffers (4 x 8 KiB).
pub const DEFAULT_HEAD_LIMIT: usize = 64 * 1024;

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            request_line: 4094,
            fields: 100,
            field_size: 8190,
            head: DEFAULT_HEAD_LIMIT,
            body: 1024 * 1024,
        }
    }
}

impl HttpLimits {
    /// Gunicorn's normalisation: 0 or out-of-range values mean its hard maximum.
    pub fn normalised(
        request_line: i64,
        fields: i64,
        field_size: i64,
        head: usize,
        body: u64,
    ) -> Self {
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
            head,
            body,
        }
    }
}

/// Where a request head ends, found incrementally: each call looks only at the bytes that came
/// since the last one, and keeps its place (and the line and field counts) in between.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeadScan {
    /// Bytes of the buffer already looked at.
    pos: usize,
    /// Where the line being read starts.
    line_start: usize,
    /// Complete lines so far, the request line included.
    lines: usize,
    /// Past the empty lines tolerated before a request.
    started: bool,
}

impl HeadScan {
    /// Looks at `buf[self.pos..]` (the head so far starts at `buf[0]`). `Ok(Some(n))`: the head
    /// is the first `n` bytes. `Ok(None)`: not complete yet, and within every limit.
    pub fn scan(&mut self, buf: &[u8], limits: &HttpLimits) -> Result<Option<usize>, HttpError> {
        // Bytes past the cap are never looked at: the head must end within it.
        let buf = &buf[..buf.len().min(limits.head + 1)];
        while self.pos < buf.len() {
            if !self.started {
                // Tolerate empty lines before a request (RFC 9112 2.2), as after a pipelined
                // body, but not without bound.
                let blanks = buf[self.pos..]
                    .iter()
                    .take_while(|&&b| b == b'\r' || b == b'\n')
                    .count();
                self.pos += blanks;
                if self.pos > limits.request_line {
                    return Err(HttpError::bad_request(
                        "too many empty lines before the request",
                    ));
                }
                if self.pos == buf.len() {
                    break;
                }
                self.started = true;
                self.line_start = self.pos;
            }
            let Some(lf) = memchr::memchr(b'\n', &buf[self.pos..]) else {
                self.pos = buf.len();
                break;
            };
            let end = self.pos + lf;
            self.pos = end + 1;
            let line = trim_cr(&buf[self.line_start..end]);
            self.line_start = self.pos;
            self.lines += 1;
            if self.lines == 1 {
                // A bad request line is refused as soon as it is complete.
                check_line_length(line.len(), true, limits)?;
                check_request_line(line)?;
            } else if line.is_empty() {
                return Ok(Some(self.pos));
            } else {
                check_line_length(line.len(), false, limits)?;
                if self.lines - 1 > limits.fields {
                    return Err(HttpError::header_too_large("too many header fields")
                        .logged_as("limit request headers fields".into()));
                }
            }
        }
        if self.started {
            // The open line's content so far; a final CR may still be the start of its CRLF.
            let open = &buf[self.line_start..];
            let content = open.len() - usize::from(open.ends_with(b"\r"));
            check_line_length(content, self.lines == 0, limits)?;
        }
        if buf.len() > limits.head {
            return Err(HttpError::header_too_large("request head is too large"));
        }
        Ok(None)
    }
}

/// Gunicorn's line limits: the request line without its CRLF, a header line with it.
fn check_line_length(len: usize, request_line: bool, limits: &HttpLimits) -> Result<(), HttpError> {
    if request_line && len > limits.request_line {
        return Err(
            HttpError::bad_request("request line is too long").logged_as(format!(
                "Request Line is too large ({len} > {})",
                limits.request_line
            )),
        );
    }
    if !request_line && len + 2 > limits.field_size {
        return Err(HttpError::header_too_large("a header field is too large")
            .logged_as("limit request headers fields size".into()));
    }
    Ok(())
}

/// Python's `repr` of a byte string decoded as Latin-1, as Gunicorn's messages quote lines.
fn py_repr(bytes: &[u8]) -> String {
    let text: String = bytes.iter().map(|&b| char::from(b)).collect();
    let mut out = String::from("'");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

/// A parsed, validated request head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The `Accept` header (the last one), kept even when `headers` is not: `/metrics`
    /// negotiates its format with it.
    pub accept: Option<String>,
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
}

/// Parses a request head from the start of `buf`. `Ok(None)`: the head is not complete yet (and
/// within limits, so reading may go on).
pub fn parse_head(buf: &[u8], limits: &HttpLimits) -> Result<Option<RequestHead>, HttpError> {
    match HeadScan::default().scan(buf, limits)? {
        Some(len) => parse_complete_head(&buf[..len], limits, true).map(Some),
        None => Ok(None),
    }
}

/// Parses a head that [`HeadScan`] found complete (`head` ends with its blank line, and the
/// scan has checked the line limits). `keep_headers: false` leaves [`RequestHead::headers`]
/// empty, which saves an allocation per header when nothing (the access log) will read them.
pub fn parse_complete_head(
    head: &[u8],
    limits: &HttpLimits,
    keep_headers: bool,
) -> Result<RequestHead, HttpError> {
    let skipped = head
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let buf = &head[skipped..];
    let line_end = find_lf(buf).ok_or_else(|| HttpError::bad_request("malformed request head"))?;
    let version = check_request_line(trim_cr(&buf[..line_end]))?;
    let mut fields = 0usize;
    let mut line_start = line_end + 1;
    for lf in memchr::memchr_iter(b'\n', buf).skip(1) {
        let field = &buf[line_start..lf];
        if matches!(field.first(), Some(b' ' | b'\t')) {
            return Err(HttpError::bad_request(
                "obsolete header line folding is not accepted",
            ));
        }
        if !trim_cr(field).is_empty() {
            fields += 1;
        }
        line_start = lf + 1;
    }
    let head_end = buf.len();

    // A request has a few fields as a rule: their slots live on the stack then.
    let mut on_stack = [httparse::EMPTY_HEADER; 16];
    let mut on_heap;
    let storage = if fields <= on_stack.len() {
        &mut on_stack[..fields]
    } else {
        on_heap = vec![httparse::EMPTY_HEADER; fields];
        &mut on_heap[..]
    };
    let mut req = httparse::Request::new(storage);
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
    Ok(RequestHead {
        method,
        target,
        path,
        query,
        version,
        keep_alive: framing.keep_alive,
        body: framing.body,
        expect_continue: framing.expect_continue,
        accept: req
            .headers
            .iter()
            .rev()
            .find(|h| h.name.eq_ignore_ascii_case("accept"))
            .map(|h| String::from_utf8_lossy(h.value).into_owned()),
        headers,
        head_len: skipped + head_end,
    })
}

fn find_lf(buf: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', buf)
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
        return Err(
            HttpError::bad_request(&format!("{what} in the request line"))
                .logged_as(format!("Invalid HTTP request line: {}", py_repr(line))),
        );
    }
    let mut parts = line.split(|&b| b == b' ');
    let version = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None)
            if !method.is_empty() && !target.is_empty() && !version.is_empty() =>
        {
            version
        }
        _ => {
            return Err(HttpError::bad_request("malformed request line")
                .logged_as(format!("Invalid HTTP request line: {}", py_repr(line))))
        }
    };
    match version {
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
        _ => Err(HttpError::bad_request("invalid HTTP version")
            .logged_as(format!("Invalid HTTP Version: {}", py_repr(version)))),
    }
}

/// Splits an origin-form (`/p?q`) or absolute-form (`http://h/p?q`) target into path and query.
fn split_target(method: &str, target: &str) -> Result<(String, String), HttpError> {
    let rooted;
    let origin = if target.starts_with('/') || (target == "*" && method == "OPTIONS") {
        target
    } else if let Some(after_scheme) = strip_scheme(target) {
        let rest = &after_scheme[after_scheme.find(['/', '?']).unwrap_or(after_scheme.len())..];
        if rest.starts_with('/') {
            rest
        } else {
            rooted = format!("/{rest}");
            &rooted
        }
    } else {
        return Err(HttpError::bad_request("invalid request target"));
    };
    // memchr, not `str` patterns: this runs for every request.
    let origin = &origin[..memchr::memchr(b'#', origin.as_bytes()).unwrap_or(origin.len())];
    Ok(match memchr::memchr(b'?', origin.as_bytes()) {
        Some(at) => (origin[..at].to_string(), origin[at + 1..].to_string()),
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
        let mut saw_transfer_encoding = false;
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
                saw_transfer_encoding = true;
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
        if saw_transfer_encoding && transfer_codings.is_empty() {
            // RFC 9112 6.1: a Transfer-Encoding without codings is invalid, not absent.
            return Err(HttpError::bad_request("empty Transfer-Encoding"));
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
        let l = HttpLimits::normalised(0, 0, 0, 4096, 10);
        assert_eq!((l.request_line, l.fields), (8190, 32768));
        let l = HttpLimits::normalised(9000, 40000, 100, 4096, 10);
        assert_eq!((l.request_line, l.fields, l.field_size), (8190, 32768, 100));
    }

    #[test]
    fn an_empty_transfer_encoding_is_refused() {
        let h = "POST / HTTP/1.1\r\nHost: x\r\n";
        assert_eq!(status(&format!("{h}Transfer-Encoding:\r\n\r\n")), 400);
        assert_eq!(status(&format!("{h}Transfer-Encoding: ,\r\n\r\n")), 400);
    }

    /// A head arriving a few bytes at a time is looked at once per byte in all, and found
    /// complete exactly when its blank line arrives.
    #[test]
    fn the_scan_looks_at_each_byte_once() {
        let mut head = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..90 {
            head.push_str(&format!("X-Field-{i}: {}\r\n", "v".repeat(600)));
        }
        head.push_str("\r\n");
        let limits = HttpLimits::default();
        let bytes = head.as_bytes();
        let mut scan = HeadScan::default();
        let mut looked_at = 0;
        for end in (7..bytes.len()).step_by(7).chain([bytes.len()]) {
            let before = scan.pos;
            let found = scan.scan(&bytes[..end], &limits).unwrap();
            assert_eq!(before, looked_at, "the scan resumes where it stopped");
            looked_at = scan.pos;
            assert_eq!(looked_at, end, "and stops at what it was given");
            assert_eq!(found, (end == bytes.len()).then_some(bytes.len()));
        }
        let parsed = parse_complete_head(bytes, &limits, true).unwrap();
        assert_eq!(parsed.headers.len(), 91);
    }

    #[test]
    fn the_head_cap_is_checked_as_bytes_arrive() {
        let limits = HttpLimits {
            head: 1024,
            ..HttpLimits::default()
        };
        let mut head = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        while head.len() <= 1024 {
            head.push_str("X-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let err = HeadScan::default()
            .scan(head.as_bytes(), &limits)
            .unwrap_err();
        assert_eq!(err.status, 431);
        // Just under the cap, complete: accepted.
        let ok_head = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(parse(ok_head).unwrap().is_some());
    }

    #[test]
    fn empty_lines_before_a_request_are_bounded_while_scanning() {
        let limits = HttpLimits::default();
        let mut scan = HeadScan::default();
        let blanks = vec![b'\n'; 3000];
        assert_eq!(scan.scan(&blanks, &limits), Ok(None));
        let more = vec![b'\n'; 5000];
        assert_eq!(scan.scan(&more, &limits).unwrap_err().status, 400);
    }

    #[test]
    fn log_lines_use_gunicorns_wording() {
        let err = parse("GARBAGE\r\n\r\n").unwrap_err();
        assert_eq!(err.log_text(), "Invalid HTTP request line: 'GARBAGE'");
        assert_eq!(
            err.message, "malformed request line",
            "the client's answer is unchanged"
        );
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(5014));
        let err = parse(&long).unwrap_err();
        assert_eq!(err.log_text(), "Request Line is too large (5028 > 4094)");
        let err = parse("GET / HTTP/x\r\n\r\n").unwrap_err();
        assert_eq!(err.log_text(), "Invalid HTTP Version: 'HTTP/x'");
    }
}
