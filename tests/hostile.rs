//! Hostile and odd HTTP against the real server (2 workers x 2 threads): each request gets the
//! right status (and, if it is an error, a closed connection), never a hang or a crash, and the
//! server stays healthy afterwards.

mod common;
use common::*;
use std::io::{BufReader, Read, Write};

enum Want {
    /// Answered with this status; error statuses also close the connection.
    Status(u16),
    /// An application answer (the request itself was well-formed): the connection may stay.
    App(u16),
    /// The client gives up mid-request: the server must simply carry on.
    Nothing,
}

fn corpus() -> Vec<(&'static str, Vec<u8>, Want)> {
    use Want::*;
    let h =
        |extra: &str| format!("GET /heavy/health/ HTTP/1.1\r\nHost: t\r\n{extra}\r\n").into_bytes();
    let line = |l: &str| format!("{l}\r\nHost: t\r\n\r\n").into_bytes();
    vec![
        // Framing that a proxy could read differently: refused.
        ("CL and TE", h("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"), Status(400)),
        ("TE and CL", h("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n"), Status(400)),
        ("CL twice, same", h("Content-Length: 1\r\nContent-Length: 1\r\n"), Status(400)),
        ("CL twice, different", h("Content-Length: 1\r\nContent-Length: 2\r\n"), Status(400)),
        ("CL list", h("Content-Length: 1, 1\r\n"), Status(400)),
        ("CL negative", h("Content-Length: -1\r\n"), Status(400)),
        ("CL plus sign", h("Content-Length: +1\r\n"), Status(400)),
        ("CL hex", h("Content-Length: 0x10\r\n"), Status(400)),
        ("CL inner space", h("Content-Length: 1 0\r\n"), Status(400)),
        ("CL empty", h("Content-Length:\r\n"), Status(400)),
        ("CL overflow", h("Content-Length: 184467440737095516160\r\n"), Status(400)),
        ("CL huge", h("Content-Length: 100000000000000\r\n"), Status(413)),
        ("TE gzip", h("Transfer-Encoding: gzip\r\n"), Status(501)),
        ("TE identity", h("Transfer-Encoding: identity\r\n"), Status(501)),
        ("TE chunked twice", h("Transfer-Encoding: chunked, chunked\r\n"), Status(400)),
        ("TE chunked not last", h("Transfer-Encoding: chunked, gzip\r\n"), Status(501)),
        ("TE space before colon", h("Transfer-Encoding : chunked\r\n"), Status(400)),
        ("TE in HTTP/1.0", b"GET /heavy/health/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), Status(400)),
        ("bad chunk size", [h("Transfer-Encoding: chunked\r\n"), b"zz\r\n".to_vec()].concat(), Status(400)),
        ("chunk size overflow", [h("Transfer-Encoding: chunked\r\n"), b"fffffffffffffffff\r\n".to_vec()].concat(), Status(400)),
        ("chunk longer than size", [h("Transfer-Encoding: chunked\r\n"), b"2\r\nabcd\r\n0\r\n\r\n".to_vec()].concat(), Status(400)),
        ("chunk negative", [h("Transfer-Encoding: chunked\r\n"), b"-2\r\nab\r\n".to_vec()].concat(), Status(400)),
        // Issue 22, defect 10: trailers bounded like a head (64 KiB, 100 fields), each case
        // ending exactly at the line that crosses the bound (20 MB were read before).
        ("trailers over 64 KiB", [h("Transfer-Encoding: chunked\r\n"), b"0\r\n".to_vec(), format!("X-T: {}\r\n", "v".repeat(1017)).repeat(65).into_bytes()].concat(), Status(431)),
        ("101 trailer fields", [h("Transfer-Encoding: chunked\r\n"), b"0\r\n".to_vec(), "A: b\r\n".repeat(101).into_bytes()].concat(), Status(431)),
        ("chunked too big", [h("Transfer-Encoding: chunked\r\n"), b"200000\r\n".to_vec()].concat(), Status(413)),
        // Limits.
        ("request line over 4094", line(&format!("GET /{} HTTP/1.1", "a".repeat(4100))), Status(400)),
        ("101 headers", h(&(0..101).map(|i| format!("X-{i}: v\r\n")).collect::<String>()), Status(431)),
        ("header over 8190", h(&format!("X: {}\r\n", "v".repeat(8200))), Status(431)),
        ("header name over 8190", h(&format!("{}: v\r\n", "X".repeat(8200))), Status(431)),
        ("100 headers is fine", h(&(0..99).map(|i| format!("X-{i}: v\r\n")).collect::<String>()), Status(200)),
        // Bytes that do not belong.
        ("NUL in target", line("GET /heavy/\0health/ HTTP/1.1"), Status(400)),
        ("NUL in header value", h("X: a\0b\r\n"), Status(400)),
        ("CR in header value", h("X: a\rb\r\n"), Status(400)),
        ("DEL in target", line("GET /heavy/\x7fhealth/ HTTP/1.1"), Status(400)),
        ("tab separators", line("GET\t/heavy/health/\tHTTP/1.1"), Status(400)),
        ("non-ASCII target", "GET /héavy/ HTTP/1.1\r\nHost: t\r\n\r\n".as_bytes().to_vec(), Status(400)),
        ("raw UTF-8 query", "GET /heavy/health/?q=ü HTTP/1.1\r\nHost: t\r\n\r\n".as_bytes().to_vec(), Status(400)),
        ("space in header name", h("Bad Name: v\r\n"), Status(400)),
        ("colonless header", h("JustText\r\n"), Status(400)),
        ("empty header name", h(": v\r\n"), Status(400)),
        ("obs-fold", h("X: a\r\n b\r\n"), Status(400)),
        ("bad method token", line("G@T /heavy/health/ HTTP/1.1"), Status(400)),
        // Versions and request lines.
        ("HTTP/2.0", line("GET /heavy/health/ HTTP/2.0"), Status(505)),
        ("HTTP/3.0", line("GET /heavy/health/ HTTP/3.0"), Status(505)),
        ("HTTP/0.9 with version", line("GET /heavy/health/ HTTP/0.9"), Status(505)),
        ("h2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), Status(505)),
        ("lower-case version", line("GET /heavy/health/ http/1.1"), Status(400)),
        ("garbage version", line("GET /heavy/health/ HTTP/x.y"), Status(400)),
        ("two-part line", b"GET /heavy/health/\r\n\r\n".to_vec(), Status(400)),
        ("four-part line", line("GET /heavy/health/ HTTP/1.1 extra"), Status(400)),
        ("double space", line("GET  /heavy/health/ HTTP/1.1"), Status(400)),
        ("leading space", line(" GET /heavy/health/ HTTP/1.1"), Status(400)),
        ("no Host in 1.1", b"GET /heavy/health/ HTTP/1.1\r\n\r\n".to_vec(), Status(400)),
        ("two Hosts", h("Host: u\r\n"), Status(400)),
        ("bad Host", b"GET /heavy/health/ HTTP/1.1\r\nHost: a b\r\n\r\n".to_vec(), Status(400)),
        ("authority-form", line("CONNECT example.com:443 HTTP/1.1"), Status(400)),
        ("relative target", line("GET heavy/health/ HTTP/1.1"), Status(400)),
        ("TLS hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x00\r\n\r\n".to_vec(), Status(400)),
        ("SSH banner", b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec(), Status(400)),
        ("binary garbage", (0u8..=255).cycle().take(600).collect(), Status(400)),
        ("Expect other", h("Content-Length: 1\r\nExpect: 200-ok\r\n"), Status(417)),
        // Valid, if unusual: answered.
        ("HTTP/1.0 no Host", b"GET /heavy/health/ HTTP/1.0\r\n\r\n".to_vec(), Status(200)),
        ("bare LF", b"GET /heavy/health/ HTTP/1.1\nHost: t\n\n".to_vec(), Status(200)),
        ("leading CRLF", b"\r\n\r\nGET /heavy/health/ HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), Status(200)),
        ("absolute-form", line("GET http://t/heavy/health/ HTTP/1.1"), Status(200)),
        ("absolute-form with port and query", line("GET http://t:8000/heavy/health/?x=1 HTTP/1.1"), Status(200)),
        ("fragment", line("GET /heavy/health/#top HTTP/1.1"), Status(200)),
        ("percent-encoded query", line("GET /heavy/cpu-io-no-db/?prime%5Flimit=%31%30&hash_rounds=1&io_kb=0 HTTP/1.1"), Status(200)),
        ("obs-text header value", [h(""), Vec::new()].concat().into_iter().take(0).chain(b"GET /heavy/health/ HTTP/1.1\r\nHost: t\r\nX: caf\xe9\r\n\r\n".iter().copied()).collect(), Status(200)),
        ("empty header value", h("X-Empty:\r\n"), Status(200)),
        ("Host with port", b"GET /heavy/health/ HTTP/1.1\r\nHost: example.com:8000\r\n\r\n".to_vec(), Status(200)),
        ("IPv6 Host", b"GET /heavy/health/ HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n".to_vec(), Status(200)),
        ("body on GET", [h("Content-Length: 5\r\n"), b"hello".to_vec()].concat(), Status(200)),
        ("chunked body with trailer", [h("Transfer-Encoding: chunked\r\n"), b"3;ext=1\r\nabc\r\n0\r\nT: v\r\n\r\n".to_vec()].concat(), Status(200)),
        ("CL zero", h("Content-Length: 0\r\n"), Status(200)),
        ("CL leading zeros", [h("Content-Length: 003\r\n"), b"abc".to_vec()].concat(), Status(200)),
        ("Upgrade h2c ignored", h("Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"), Status(200)),
        ("lower-case method", line("get /heavy/health/ HTTP/1.1"), App(405)),
        ("unknown method", line("BREW /heavy/health/ HTTP/1.1"), App(405)),
        ("OPTIONS *", line("OPTIONS * HTTP/1.1"), App(404)),
        ("double slash path", line("GET //heavy/health/ HTTP/1.1"), App(404)),
        ("dot segments", line("GET /heavy/../heavy/health/ HTTP/1.1"), App(404)),
        ("HEAD", line("HEAD /heavy/health/ HTTP/1.1"), Status(200)),
        ("POST heavy", [line("POST /heavy/cpu-io-no-db/ HTTP/1.1")].concat(), App(405)),
        ("bad param", line("GET /heavy/cpu-io-no-db/?io_kb=%00 HTTP/1.1"), App(400)),
        ("negative io", line("GET /heavy/cpu-io-no-db/?io_kb=-5 HTTP/1.1"), App(400)),
        ("huge prime_limit", line("GET /heavy/cpu-io-no-db/?prime_limit=999999999999 HTTP/1.1"), App(400)),
        // Clients that give up.
        ("disconnect mid-head", b"GET /heavy/health/ HTTP/1.1\r\nHo".to_vec(), Nothing),
        ("disconnect mid-body", [h("Content-Length: 100\r\n"), b"abc".to_vec()].concat(), Nothing),
        ("disconnect after heavy request", line(&format!("GET {LIGHT} HTTP/1.1")), Nothing),
    ]
}

#[test]
fn every_hostile_request_gets_the_right_answer_and_the_server_stays_healthy() {
    let server = Server::start(&["--workers", "2", "--threads", "2"]);
    let mut failures = Vec::new();
    let cases = corpus();
    assert!(cases.len() > 80);
    for (name, bytes, want) in &cases {
        let mut s = connect(server.port);
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        if s.write_all(bytes).is_err() {
            failures.push(format!("{name}: could not send"));
            continue;
        }
        match want {
            Want::Nothing => {
                drop(s);
            }
            Want::Status(status) | Want::App(status) => {
                let must_close = matches!(want, Want::Status(_)) && *status >= 400;
                let mut reader = BufReader::new(s.try_clone().unwrap());
                match read_response(&mut reader, name.starts_with("HEAD")) {
                    Ok(resp) if resp.status == *status => {
                        if must_close {
                            let mut rest = Vec::new();
                            s.set_read_timeout(Some(CLOSE_TIMEOUT)).unwrap();
                            // EOF or a reset: closed; a timeout: still open.
                            let closed = reader.read_to_end(&mut rest).map_or_else(
                                |e| {
                                    !matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    )
                                },
                                |_| true,
                            );
                            if !closed || resp.header("Connection") != Some("close") {
                                failures.push(format!(
                                    "{name}: {status} but the connection stayed open \
                                     (Connection: {:?}, closed within {CLOSE_TIMEOUT:?}: {closed})",
                                    resp.header("Connection")
                                ));
                            }
                        }
                    }
                    Ok(resp) => {
                        failures.push(format!("{name}: wanted {status}, got {}", resp.status))
                    }
                    Err(e) => failures.push(format!("{name}: wanted {status}, got {e}")),
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    for _ in 0..5 {
        assert_eq!(get(server.port, "/heavy/health/").status, 200);
    }
    assert_eq!(get(server.port, LIGHT).status, 200);
    let log = server.log_text();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        !log.contains("was sent SIG") && !log.contains("exited with code"),
        "no worker died:\n{log}"
    );
}

#[test]
fn a_flood_of_empty_lines_is_cut_off() {
    let server = Server::start(&["--workers", "1"]);
    let mut s = connect(server.port);
    let blank = vec![b'\n'; 64 * 1024];
    let mut sent = 0;
    while sent < 8 << 20 {
        if s.write_all(&blank).is_err() {
            break;
        }
        sent += blank.len();
    }
    assert!(
        sent < 8 << 20 || closed_within(&mut s, CLOSE_TIMEOUT),
        "the server kept reading 8 MiB of blank lines and did not close within {CLOSE_TIMEOUT:?}"
    );
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert_eq!(get(server.port, "/heavy/health/").status, 200);
}
