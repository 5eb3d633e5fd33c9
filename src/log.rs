//! Gunicorn-compatible logging: the error log (`[time] [pid] [LEVEL] message`) and the access log
//! (Gunicorn's `%(h)s`-style atoms). One process-wide logger, set up by the master before it
//! forks (workers inherit it) and reopened in place on SIGUSR1.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warning" | "warn" => Level::Warning,
            "error" => Level::Error,
            "critical" | "fatal" => Level::Critical,
            _ => return Err(format!("invalid log level {s:?}")),
        })
    }
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }
}

/// Where a log goes: `-` is the standard stream, anything else a file opened for append.
#[derive(Debug)]
enum Sink {
    Stdout,
    Stderr,
    File { path: String, file: File },
}

impl Sink {
    fn open(spec: &str, dash: Sink) -> io::Result<Sink> {
        if spec == "-" {
            return Ok(dash);
        }
        let file = OpenOptions::new().create(true).append(true).open(spec)?;
        Ok(Sink::File {
            path: spec.to_string(),
            file,
        })
    }

    fn reopen(&mut self) -> io::Result<()> {
        if let Sink::File { path, file } = self {
            *file = OpenOptions::new().create(true).append(true).open(&*path)?;
        }
        Ok(())
    }

    /// One `write` per line, so lines from many processes and threads never interleave.
    fn write_line(&self, line: &str) {
        let _ = match self {
            Sink::Stdout => io::stdout().lock().write_all(line.as_bytes()),
            Sink::Stderr => io::stderr().lock().write_all(line.as_bytes()),
            Sink::File { file, .. } => (&*file).write_all(line.as_bytes()),
        };
    }
}

struct Logger {
    level: Level,
    error: Sink,
    access: Option<(Sink, AccessFormat)>,
}

static LOGGER: RwLock<Option<Logger>> = RwLock::new(None);

/// Sets up (or replaces, on reload) the process's logs.
pub fn init(
    level: Level,
    error_log: &str,
    access_log: Option<&str>,
    access_format: &str,
) -> io::Result<()> {
    let access = match access_log {
        Some(spec) => {
            let format = AccessFormat::parse(access_format).map_err(io::Error::other)?;
            Some((Sink::open(spec, Sink::Stdout)?, format))
        }
        None => None,
    };
    // `%(t)s` and the error log's time are the server's local time, as Gunicorn's; read TZ now.
    // SAFETY: tzset only (re)reads the time zone settings.
    unsafe { tzset() };
    let logger = Logger {
        level,
        error: Sink::open(error_log, Sink::Stderr)?,
        access,
    };
    *LOGGER.write().unwrap_or_else(|e| e.into_inner()) = Some(logger);
    Ok(())
}

/// Reopens log files (SIGUSR1), so that log rotation can move the old ones away.
pub fn reopen() -> io::Result<()> {
    let mut guard = LOGGER.write().unwrap_or_else(|e| e.into_inner());
    if let Some(logger) = guard.as_mut() {
        logger.error.reopen()?;
        if let Some((sink, _)) = logger.access.as_mut() {
            sink.reopen()?;
        }
    }
    Ok(())
}

pub fn enabled(level: Level) -> bool {
    let guard = LOGGER.read().unwrap_or_else(|e| e.into_inner());
    guard
        .as_ref()
        .map_or(level >= Level::Info, |l| level >= l.level)
}

extern "C" {
    fn tzset();
}

/// Writes one error-log line. Before `init`, lines go to stderr at INFO and above.
pub fn log(level: Level, message: &str) {
    // Gunicorn's statsd logger counts these whatever the level lets through.
    match level {
        Level::Warning => crate::statsd::increment("gunicorn.log.warning", 1),
        Level::Error => crate::statsd::increment("gunicorn.log.error", 1),
        Level::Critical => crate::statsd::increment("gunicorn.log.critical", 1),
        _ => {}
    }
    let guard = LOGGER.read().unwrap_or_else(|e| e.into_inner());
    let threshold = guard.as_ref().map_or(Level::Info, |l| l.level);
    if level < threshold {
        return;
    }
    let line = format!(
        "[{}] [{}] [{}] {}\n",
        local_time("%Y-%m-%d %H:%M:%S %z", SystemTime::now()),
        std::process::id(),
        level.label(),
        message
    );
    match guard.as_ref() {
        Some(logger) => logger.error.write_line(&line),
        None => Sink::Stderr.write_line(&line),
    }
}

pub fn debug(message: &str) {
    log(Level::Debug, message)
}
pub fn info(message: &str) {
    log(Level::Info, message)
}
pub fn warning(message: &str) {
    log(Level::Warning, message)
}
pub fn error(message: &str) {
    log(Level::Error, message)
}
pub fn critical(message: &str) {
    log(Level::Critical, message)
}

/// `time` in UTC as RFC 3339 with milliseconds (2026-12-05T10:00:11.250Z), for JSON.
pub fn utc_rfc3339(time: SystemTime) -> String {
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs() as libc::time_t;
    // SAFETY: `tm` is fully written by gmtime_r before use.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::gmtime_r(&secs, &mut tm).is_null() {
            return String::new();
        }
        tm
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        since.subsec_millis()
    )
}

/// Formats `time` in local time with `strftime`.
pub fn local_time(format: &str, time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as libc::time_t;
    let fmt = std::ffi::CString::new(format).unwrap_or_default();
    let mut buf = [0u8; 128];
    // SAFETY: `tm` is fully written by localtime_r before use; strftime writes at most
    // `buf.len()` bytes and returns how many.
    let written = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return String::new();
        }
        libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm)
    };
    String::from_utf8_lossy(&buf[..written]).into_owned()
}

/// One served request, as the access log sees it.
pub struct AccessEntry<'a> {
    /// The client's IP address; empty for a Unix socket.
    pub peer: &'a str,
    pub peer_port: Option<u16>,
    pub method: &'a str,
    /// The request target as sent (path and query).
    pub target: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub protocol: &'a str,
    pub status: u16,
    pub body_bytes: usize,
    pub request_headers: &'a [(String, String)],
    /// The application's headers (Content-Type and Content-Length are the two below).
    pub response_headers: &'a [(&'a str, String)],
    pub content_type: &'a str,
    pub content_length: usize,
    pub duration: Duration,
}

/// Writes an access-log line, if an access log is configured. Called after the response is sent.
pub fn access(entry: &AccessEntry<'_>) {
    let guard = LOGGER.read().unwrap_or_else(|e| e.into_inner());
    if let Some((sink, format)) = guard.as_ref().and_then(|l| l.access.as_ref()) {
        let mut line = format.render(entry);
        line.push('\n');
        sink.write_line(&line);
    }
}

pub fn access_enabled() -> bool {
    let guard = LOGGER.read().unwrap_or_else(|e| e.into_inner());
    guard.as_ref().is_some_and(|l| l.access.is_some())
}

/// Whether the access-log format reads request header `name` (lower case): through
/// `%({name}i)s`, `%({HTTP_NAME}e)s`, or the atoms built on one (`%(f)s`, `%(a)s`, `%(u)s`).
pub fn access_reads_header(name: &str) -> bool {
    let guard = LOGGER.read().unwrap_or_else(|e| e.into_inner());
    let Some((_, format)) = guard.as_ref().and_then(|l| l.access.as_ref()) else {
        return false;
    };
    let environ = format!("http_{}", name.replace('-', "_"));
    format.0.iter().any(|piece| match piece {
        Piece::Atom(a) => match a.as_str() {
            "f" => name == "referer",
            "a" => name == "user-agent",
            "u" => name == "authorization",
            a => a
                .strip_prefix('{')
                .and_then(|inner| inner.rsplit_once('}'))
                .is_some_and(|(key, kind)| {
                    let key = key.to_ascii_lowercase();
                    (kind == "i" && key == name)
                        || (kind == "e" && key == environ)
                        || (kind == "e" && key == name.replace('-', "_"))
                }),
        },
        Piece::Text(_) => false,
    })
}

/// A parsed `--access-logformat`: literal text and `%(atom)s` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessFormat(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Atom(String),
}

impl AccessFormat {
    pub fn parse(format: &str) -> Result<AccessFormat, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        while let Some(i) = rest.find('%') {
            text.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            if let Some(after) = rest.strip_prefix('%') {
                text.push('%');
                rest = after;
            } else if let Some(after) = rest.strip_prefix('(') {
                let close = after.find(")s").ok_or_else(|| {
                    format!("invalid --access-logformat: unterminated atom in {format:?}")
                })?;
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Atom(after[..close].to_string()));
                rest = &after[close + 2..];
            } else {
                text.push('%');
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(AccessFormat(pieces))
    }

    pub fn render(&self, e: &AccessEntry<'_>) -> String {
        let mut out = String::with_capacity(160);
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Atom(a) => out.push_str(&escape_quotes(&atom(a, e))),
            }
        }
        out
    }
}

/// A request header as Gunicorn's `%({name}i)s` sees it: the last of repeated ones.
fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .rev()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A request header as the WSGI environment holds it: repeated ones joined with commas.
fn environ_header(headers: &[(String, String)], name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// `PATH_INFO`: the path percent-decoded, each byte one character (Latin-1), as Gunicorn's
/// `unquote_to_wsgi_str`.
fn path_info(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(char::from((h * 16 + l) as u8));
                i += 3;
                continue;
            }
        }
        out.push(char::from(bytes[i]));
        i += 1;
    }
    out
}

fn atom(name: &str, e: &AccessEntry<'_>) -> String {
    let dash = || "-".to_string();
    let or_dash = |v: Option<&str>| {
        v.filter(|s| !s.is_empty())
            .map_or_else(dash, str::to_string)
    };
    if let Some(inner) = name.strip_prefix('{') {
        if let Some((key, kind)) = inner.rsplit_once('}') {
            return match kind {
                "i" => or_dash(header(e.request_headers, key)),
                "o" => {
                    let length = e.content_length.to_string();
                    let all = [
                        ("Content-Type", e.content_type),
                        ("Content-Length", &length),
                    ];
                    let found = e
                        .response_headers
                        .iter()
                        .rev()
                        .find(|(n, _)| n.eq_ignore_ascii_case(key))
                        .map(|(_, v)| v.as_str())
                        .or_else(|| {
                            all.iter()
                                .find(|(n, _)| n.eq_ignore_ascii_case(key))
                                .map(|(_, v)| *v)
                        });
                    found.map_or_else(dash, str::to_string)
                }
                "e" => or_dash(request_environ(key, e).as_deref()),
                _ => dash(),
            };
        }
    }
    let micros = e.duration.as_micros();
    match name {
        // A Unix-socket peer has no address: empty, as Gunicorn's REMOTE_ADDR.
        "h" => e.peer.to_string(),
        "l" => dash(),
        "u" => basic_auth_user(header(e.request_headers, "authorization")).unwrap_or_else(dash),
        "t" => format!(
            "[{}]",
            local_time("%d/%b/%Y:%H:%M:%S %z", SystemTime::now())
        ),
        "r" => format!("{} {} {}", e.method, e.target, e.protocol),
        "s" => e.status.to_string(),
        "m" => e.method.to_string(),
        "U" => path_info(e.path),
        "q" => e.query.to_string(),
        "H" => e.protocol.to_string(),
        "b" | "B" => e.body_bytes.to_string(),
        // Present but empty is logged empty; absent is `-`.
        "f" => environ_header(e.request_headers, "referer").unwrap_or_else(dash),
        "a" => environ_header(e.request_headers, "user-agent").unwrap_or_else(dash),
        "T" => e.duration.as_secs().to_string(),
        "M" => e.duration.as_millis().to_string(),
        "D" => micros.to_string(),
        "L" => format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000),
        "p" => format!("<{}>", std::process::id()),
        _ => dash(),
    }
}

/// `%({NAME}e)s`: a variable of the request's WSGI environment, as Gunicorn renders it — never
/// the process's environment, which holds the container's secrets.
fn request_environ(key: &str, e: &AccessEntry<'_>) -> Option<String> {
    let header = |name: &str| environ_header(e.request_headers, name);
    Some(match key {
        "REMOTE_ADDR" => e.peer.to_string(),
        "REMOTE_PORT" => e.peer_port?.to_string(),
        "REQUEST_METHOD" => e.method.to_string(),
        "RAW_URI" => e.target.to_string(),
        "PATH_INFO" => path_info(e.path),
        "QUERY_STRING" => e.query.to_string(),
        "SERVER_PROTOCOL" => e.protocol.to_string(),
        "SCRIPT_NAME" => String::new(),
        "wsgi.url_scheme" => "http".to_string(),
        "CONTENT_TYPE" => header("content-type")?,
        "CONTENT_LENGTH" => header("content-length")?,
        _ => {
            let name = key.strip_prefix("HTTP_")?;
            if name == "CONTENT_TYPE" || name == "CONTENT_LENGTH" {
                return None;
            }
            let wanted = name.replace('_', "-");
            header(&wanted)?
        }
    })
}

fn basic_auth_user(value: Option<&str>) -> Option<String> {
    let encoded = value?
        .strip_prefix("Basic ")
        .or_else(|| value?.strip_prefix("basic "))?;
    let decoded = base64_decode(encoded.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    Some(
        text.split_once(':')
            .map_or(text.clone(), |(user, _)| user.to_string()),
    )
}

/// Standard base64 (for the `%(u)s` atom only; no crate is worth it for this).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn escape_quotes(value: &str) -> String {
    if !value.contains('"') {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        if c == '"' {
            out.push_str("\\\"");
        } else {
            let _ = out.write_char(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(headers: &'a [(String, String)], out: &'a [(&'a str, String)]) -> AccessEntry<'a> {
        AccessEntry {
            peer: "127.0.0.1",
            peer_port: Some(50123),
            method: "GET",
            target: "/heavy/health/?x=1",
            path: "/heavy/health/",
            query: "x=1",
            protocol: "HTTP/1.1",
            status: 200,
            body_bytes: 30,
            request_headers: headers,
            response_headers: out,
            content_type: "application/json",
            content_length: 30,
            duration: Duration::from_micros(1_234_567),
        }
    }

    #[test]
    fn the_default_format_matches_gunicorn() {
        let headers = vec![
            ("Referer".to_string(), "http://r/".to_string()),
            ("User-Agent".to_string(), "curl/7.88.1".to_string()),
        ];
        let format = AccessFormat::parse(crate::config::DEFAULT_ACCESS_LOG_FORMAT).unwrap();
        let line = format.render(&entry(&headers, &[]));
        let (before, after) = line.split_once(" [").unwrap();
        assert_eq!(before, "127.0.0.1 - -");
        let after = after.split_once("] ").unwrap().1;
        assert_eq!(
            after,
            r#""GET /heavy/health/?x=1 HTTP/1.1" 200 30 "http://r/" "curl/7.88.1""#
        );
    }

    #[test]
    fn every_atom_renders() {
        let headers = vec![
            ("X-Req".to_string(), "a\"b".to_string()),
            (
                "Authorization".to_string(),
                "Basic dXNlcjpwdw==".to_string(),
            ),
        ];
        let out = [("Content-Type", "application/json".to_string())];
        let format =
            AccessFormat::parse("%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(B)s|%(T)s|%(M)s|%(D)s|%(L)s|%({x-req}i)s|%({content-type}o)s|%(u)s|%(f)s|%(zz)s|100%%").unwrap();
        assert_eq!(
            format.render(&entry(&headers, &out)),
            r#"GET|/heavy/health/|x=1|HTTP/1.1|200|30|1|1234|1234567|1.234567|a\"b|application/json|user|-|-|100%"#
        );
        let p = AccessFormat::parse("%(p)s")
            .unwrap()
            .render(&entry(&[], &[]));
        assert_eq!(p, format!("<{}>", std::process::id()));
    }

    #[test]
    fn environ_atoms_read_the_request_never_the_process() {
        std::env::set_var("HEAVY_API_TEST_SECRET", "s3cret");
        let headers = vec![
            ("X-Forwarded-For".to_string(), "10.0.0.1".to_string()),
            ("X-Forwarded-For".to_string(), "10.0.0.2".to_string()),
        ];
        let format = AccessFormat::parse(
            "%({HOME}e)s|%({HEAVY_API_TEST_SECRET}e)s|%({REMOTE_ADDR}e)s|%({REMOTE_PORT}e)s|\
             %({wsgi.url_scheme}e)s|%({HTTP_X_FORWARDED_FOR}e)s|%({QUERY_STRING}e)s|\
             %({HTTP_NOPE}e)s",
        )
        .unwrap();
        assert_eq!(
            format.render(&entry(&headers, &[])),
            "-|-|127.0.0.1|50123|http|10.0.0.1,10.0.0.2|x=1|-"
        );
    }

    #[test]
    fn atoms_as_gunicorn_renders_them() {
        let headers = vec![
            ("X-Req".to_string(), "first".to_string()),
            ("x-req".to_string(), "last".to_string()),
            ("Referer".to_string(), String::new()),
            ("User-Agent".to_string(), String::new()),
        ];
        let out = [("Server-Timing", "total;dur=1".to_string())];
        let mut e = entry(&headers, &out);
        e.path = "/a%20b/%C3%A9%zz";
        e.peer = "";
        let format = AccessFormat::parse(
            "%(h)s|%(U)s|%({X-REQ}i)s|%(f)s|%(a)s|%({content-type}o)s|%({Content-Length}o)s|\
             %({server-timing}o)s|%({x-nope}o)s",
        )
        .unwrap();
        assert_eq!(
            format.render(&e),
            "|/a b/\u{c3}\u{a9}%zz|last|||application/json|30|total;dur=1|-"
        );
    }

    #[test]
    fn malformed_formats_are_rejected() {
        assert!(AccessFormat::parse("%(h").is_err());
        assert!(AccessFormat::parse("plain % text").is_ok());
    }

    #[test]
    fn utc_rfc3339_is_utc_with_milliseconds() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_796_378_411_250);
        assert_eq!(utc_rfc3339(t), "2026-12-04T10:00:11.250Z");
    }

    #[test]
    fn local_time_has_gunicorns_shape() {
        let t = local_time("%Y-%m-%d %H:%M:%S %z", SystemTime::now());
        assert_eq!(t.len(), 25, "{t}");
        assert!(t.as_bytes()[20] == b'+' || t.as_bytes()[20] == b'-', "{t}");
    }
}
