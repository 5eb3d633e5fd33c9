//! Response serialisation: status line, the standard headers, the application's headers, body.

use super::Version;
use crate::response::Response;
use nix::time::{clock_gettime, ClockId};
use std::cell::RefCell;
use std::time::{Duration, UNIX_EPOCH};

/// How a response goes out: in which version, whether the connection stays open, and whether
/// the body is left off (`HEAD`).
#[derive(Debug, Clone, Copy)]
pub struct ResponseMeta {
    pub version: Version,
    pub keep_alive: bool,
    pub head_only: bool,
}

/// Serialises `resp` into the bytes to send.
pub fn encode_response(resp: &Response, meta: ResponseMeta) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + resp.body.len());
    encode_response_into(&mut out, resp, meta);
    out
}

/// As [`encode_response`], appending to `out` (a connection's output buffer: no copy). Built
/// from slices, not `write!`: formatting was a visible share of a health answer's CPU.
pub fn encode_response_into(out: &mut Vec<u8>, resp: &Response, meta: ResponseMeta) {
    let mut number = itoa::Buffer::new();
    out.reserve(256 + resp.body.len());
    out.extend_from_slice(meta.version.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(number.format(resp.status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason_phrase(resp.status).as_bytes());
    out.extend_from_slice(b"\r\nServer: heavy-api\r\nDate: ");
    with_http_date(|date| out.extend_from_slice(date.as_bytes()));
    out.extend_from_slice(if meta.keep_alive {
        b"\r\nConnection: keep-alive\r\nContent-Type: "
    } else {
        b"\r\nConnection: close\r\nContent-Type: "
    });
    out.extend_from_slice(resp.content_type.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(number.format(resp.body.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &resp.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !meta.head_only {
        out.extend_from_slice(&resp.body);
    }
}

/// The interim answer to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The current time in RFC 9110 IMF-fixdate form, formatted at most once a second per thread.
pub fn http_date() -> String {
    with_http_date(str::to_string)
}

/// Calls `f` with the current HTTP date, without copying it (the hot path).
fn with_http_date<T>(f: impl FnOnce(&str) -> T) -> T {
    thread_local!(static CACHE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) });
    // The date has whole seconds: the coarse clock (the kernel's last tick, a few ms behind at
    // most) tells the second without reading the hardware clock on every response.
    let secs = clock_gettime(ClockId::CLOCK_REALTIME_COARSE)
        .map(|t| t.tv_sec().max(0) as u64)
        .unwrap_or(0);
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != secs || cache.1.is_empty() {
            let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
            *cache = (secs, date);
        }
        f(&cache.1)
    })
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_response_carries_the_standard_headers() {
        let resp = Response::json(200, &json!({"a": 1})).with_header("X-Extra", "1");
        let meta = ResponseMeta {
            version: Version::Http11,
            keep_alive: true,
            head_only: false,
        };
        let text = String::from_utf8(encode_response(&resp, meta)).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\nServer: heavy-api\r\nDate: "),
            "{text}"
        );
        assert!(text.contains("\r\nConnection: keep-alive\r\n"));
        assert!(text.contains("\r\nContent-Type: application/json\r\n"));
        assert!(text.contains("\r\nContent-Length: 8\r\n"));
        assert!(text.contains("\r\nX-Extra: 1\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"a\":1}\n"));
    }

    #[test]
    fn head_keeps_the_length_but_not_the_body() {
        let resp = Response::json(404, &json!({"error": "not found"}));
        let meta = ResponseMeta {
            version: Version::Http10,
            keep_alive: false,
            head_only: true,
        };
        let text = String::from_utf8(encode_response(&resp, meta)).unwrap();
        assert!(text.starts_with("HTTP/1.0 404 Not Found\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.contains(&format!("Content-Length: {}\r\n", resp.body.len())));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn the_date_is_an_http_date() {
        let date = http_date();
        assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    }
}
