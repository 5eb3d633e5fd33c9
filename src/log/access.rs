//! The access log's format: Gunicorn's `%(h)s`-style atoms rendered from one served request.

use super::{escape_into, local_time};
use std::time::{Duration, SystemTime};

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

    /// Whether the format reads request header `name` (lower case): through `%({name}i)s`,
    /// `%({HTTP_NAME}e)s`, or the atoms built on one (`%(f)s`, `%(a)s`, `%(u)s`).
    pub fn reads_header(&self, name: &str) -> bool {
        let environ = format!("http_{}", name.replace('-', "_"));
        self.0.iter().any(|piece| match piece {
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

    pub fn render(&self, e: &AccessEntry<'_>) -> String {
        let mut out = String::with_capacity(160);
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Atom(a) => escape_field(&atom(a, e), &mut out),
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

/// An atom's value as it enters the line: `"` as `\"` (Gunicorn's), and control characters
/// escaped as every log line's are ([`super::escape`]), so a header cannot forge a line.
fn escape_field(value: &str, out: &mut String) {
    for piece in value.split_inclusive('"') {
        match piece.strip_suffix('"') {
            Some(before) => {
                escape_into(before, out);
                out.push_str("\\\"");
            }
            None => escape_into(piece, out),
        }
    }
}

/// A request for other modules' tests.
#[cfg(test)]
pub(super) fn tests_entry(headers: &[(String, String)]) -> AccessEntry<'_> {
    tests::entry(headers, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn entry<'a>(
        headers: &'a [(String, String)],
        out: &'a [(&'a str, String)],
    ) -> AccessEntry<'a> {
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
}
