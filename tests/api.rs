//! The whole API contract against the real binary on a loopback port.

mod common;
use common::*;
use std::io::{BufReader, Write};
use std::time::{Duration, Instant};

fn vectors() -> serde_json::Value {
    serde_json::from_str(include_str!("data/test-vectors.json")).unwrap()
}

#[test]
fn health_answers_json() {
    let server = Server::start(&["--workers", "1"]);
    let resp = get(server.port, "/heavy/health/");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Content-Type"), Some("application/json"));
    assert_eq!(resp.header("Server"), Some("heavy-api"));
    assert!(resp.header("Date").is_some_and(|d| d.ends_with("GMT")));
    let v = resp.json();
    assert_eq!(v["status"], "healthy");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((v["timestamp"].as_f64().unwrap() - now).abs() < 60.0);
}

#[test]
fn heavy_endpoint_matches_the_vectors_and_key_order() {
    let server = Server::start(&["--workers", "2"]);
    let vectors = vectors();
    let pairs = [
        ("1000", "1000"),
        ("10000", "10000"),
        ("100000", "10"),
        ("2", "0"),
        ("-5", "1"),
        ("100", "3"),
    ];
    for (limit, rounds) in pairs {
        let resp = get(
            server.port,
            &format!("/heavy/cpu-io-no-db/?prime_limit={limit}&hash_rounds={rounds}&io_kb=2"),
        );
        assert_eq!(resp.status, 200);
        let raw = String::from_utf8(resp.body.clone()).unwrap();
        let keys = [
            "primes_found",
            "prime_limit",
            "hash_rounds",
            "io_kb",
            "cpu_time_sec",
            "total_time_sec",
            "io_time_sec",
        ];
        let positions: Vec<usize> = keys
            .iter()
            .map(|k| raw.find(&format!("\"{k}\"")).expect(k))
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "key order in {raw}"
        );
        let v = resp.json();
        assert_eq!(
            v["primes_found"], vectors["primes_below"][limit],
            "primes below {limit}"
        );
        assert_eq!(
            v["digest"], vectors["sha256_chain"][rounds],
            "{rounds} rounds"
        );
        assert_eq!(v["prime_limit"].as_i64().unwrap().to_string(), limit);
        assert_eq!(v["io_kb"], 2);
        for k in ["cpu_time_sec", "total_time_sec", "io_time_sec"] {
            let t = v[k].as_f64().unwrap();
            assert!(
                (t * 100.0 - (t * 100.0).round()).abs() < 1e-9,
                "{k}={t} has more than 2 decimals"
            );
        }
        let timing = resp.header("Server-Timing").expect("Server-Timing");
        for part in ["queue;dur=", "cpu;dur=", "io;dur=", "total;dur="] {
            assert!(timing.contains(part), "{timing}");
        }
    }
}

#[test]
fn the_default_request_computes_the_defaults() {
    let server = Server::start(&["--workers", "1"]);
    let v = get(server.port, "/heavy/cpu-io-no-db/").json();
    assert_eq!(v["primes_found"], 41538);
    assert_eq!(v["prime_limit"], 500000);
    assert_eq!(v["hash_rounds"], 1000000);
    assert_eq!(v["io_kb"], 128);
    assert_eq!(v["digest"], vectors()["sha256_chain"]["1000000"]);
    let size = std::fs::metadata(&server.io_file).unwrap().len();
    assert_eq!(
        size,
        (1024 + 128) * 1024,
        "1 MiB seed plus one 128 KiB append"
    );
}

#[test]
fn bad_input_gets_400_404_405_json() {
    let server = Server::start(&["--workers", "1", "--max-io-kb", "64"]);
    let p = server.port;
    for (query, param, msg) in [
        (
            "prime_limit=abc",
            "prime_limit",
            "prime_limit must be an integer",
        ),
        (
            "hash_rounds=1.5",
            "hash_rounds",
            "hash_rounds must be an integer",
        ),
        ("io_kb=1e6", "io_kb", "io_kb must be an integer"),
        (
            "prime_limit=",
            "prime_limit",
            "prime_limit must be an integer",
        ),
        ("io_kb=-1", "io_kb", "io_kb must not be negative"),
        ("io_kb=65", "io_kb", "io_kb must be at most 64"),
        (
            "hash_rounds=99999999999999999999999",
            "hash_rounds",
            "hash_rounds is too large",
        ),
    ] {
        let resp = get(p, &format!("/heavy/cpu-io-no-db/?{query}"));
        assert_eq!(resp.status, 400, "{query}");
        let v = resp.json();
        assert_eq!(v["param"], param, "{query}");
        assert_eq!(v["error"], msg, "{query}");
    }
    let resp = get(p, "/nope/");
    assert_eq!(resp.status, 404);
    assert_eq!(resp.json()["error"], "not found");
    let resp = raw(
        p,
        b"POST /heavy/cpu-io-no-db/ HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
    )
    .unwrap();
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("Allow"), Some("GET, HEAD"));
    assert_eq!(resp.json()["error"], "method not allowed");
    // The worker is still serving.
    assert_eq!(get(p, LIGHT).status, 200);
}

#[test]
fn repeated_parameters_take_the_last_value() {
    let server = Server::start(&["--workers", "1"]);
    let v = get(
        server.port,
        "/heavy/cpu-io-no-db/?prime_limit=5&prime_limit=100&hash_rounds=0&io_kb=0",
    )
    .json();
    assert_eq!(v["primes_found"], 25);
}

#[test]
fn head_is_get_without_a_body() {
    let server = Server::start(&["--workers", "1"]);
    let mut s = connect(server.port);
    s.write_all(format!("HEAD {LIGHT} HTTP/1.1\r\nHost: t\r\n\r\nGET /heavy/health/ HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).unwrap();
    let mut reader = BufReader::new(s);
    let head = read_response(&mut reader, true).unwrap();
    assert_eq!(head.status, 200);
    assert!(
        head.header("Content-Length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 100
    );
    // The next response starts right after the head: no body bytes in between.
    let next = read_response(&mut reader, false).unwrap();
    assert_eq!(next.json()["status"], "healthy");
}

#[test]
fn keep_alive_pipelining_and_connection_close() {
    let server = Server::start(&["--workers", "2", "--keep-alive", "5"]);
    let mut s = connect(server.port);
    // Heavy and cheap requests pipelined on one connection are answered in order.
    let reqs = format!(
        "GET {LIGHT}&x=1 HTTP/1.1\r\nHost: t\r\n\r\nGET /heavy/health/ HTTP/1.1\r\nHost: t\r\n\r\n\
         GET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET {LIGHT}&x=2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    );
    s.write_all(reqs.as_bytes()).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let a = read_response(&mut reader, false).unwrap();
    assert_eq!(
        (a.status, a.header("Connection")),
        (200, Some("keep-alive"))
    );
    assert!(a.json()["primes_found"].is_number());
    assert_eq!(
        read_response(&mut reader, false).unwrap().json()["status"],
        "healthy"
    );
    assert_eq!(read_response(&mut reader, false).unwrap().status, 404);
    let d = read_response(&mut reader, false).unwrap();
    assert_eq!((d.status, d.header("Connection")), (200, Some("close")));
    assert!(
        closed_within(&mut s, CLOSE_TIMEOUT),
        "Connection: close not honoured within {CLOSE_TIMEOUT:?}"
    );
}

/// A keep-alive client that sends its last request and closes its side in the same breath (or
/// closes halfway through a head) is answered, then let go at once: the close comes in one
/// edge-triggered event with the last bytes, and the loop reads on to it instead of waiting out
/// keep-alive (60 s here) or the head timeout.
#[test]
fn a_client_closing_its_side_with_its_last_bytes_is_let_go_at_once() {
    const REQUEST: &[u8] = b"GET /heavy/health/ HTTP/1.1\r\nHost: t\r\n\r\n";
    let server = Server::start(&["--workers", "1", "--keep-alive", "60"]);
    // A connection that has been served once: its close is not seen when it is taken in.
    let served_once = || {
        let s = connect(server.port);
        let mut reader = BufReader::new(s.try_clone().unwrap());
        (&s).write_all(REQUEST).unwrap();
        assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
        (s, reader)
    };
    for round in 0..10 {
        let (mut s, mut reader) = served_once();
        s.write_all(REQUEST).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
        assert!(
            closed_within(&mut s, CLOSE_TIMEOUT),
            "round {round}: still open {CLOSE_TIMEOUT:?} after the client closed its side"
        );
        // A half head: closed without an answer (waiting out the head timeout would end in a
        // 408 first).
        let (mut s, _) = served_once();
        s.write_all(b"GET /heavy/health/ HTTP/1.1\r\nHo").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut answer).unwrap_or_else(|e| {
            panic!("round {round}: a half head not closed within the read timeout: {e}")
        });
        assert_eq!(
            String::from_utf8_lossy(&answer),
            "",
            "round {round}: a half head then the client's close"
        );
    }
}

#[test]
fn http10_closes_unless_it_asks_to_keep_alive() {
    let server = Server::start(&["--workers", "1"]);
    let mut s = connect(server.port);
    s.write_all(b"GET /heavy/health/ HTTP/1.0\r\n\r\n").unwrap();
    let resp = read_response(&mut BufReader::new(s.try_clone().unwrap()), false).unwrap();
    assert_eq!(
        (resp.version.as_str(), resp.header("Connection")),
        ("HTTP/1.0", Some("close"))
    );
    assert!(
        closed_within(&mut s, CLOSE_TIMEOUT),
        "HTTP/1.0 connection still open after {CLOSE_TIMEOUT:?}"
    );

    let mut s = connect(server.port);
    s.write_all(b"GET /heavy/health/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    assert_eq!(
        read_response(&mut reader, false)
            .unwrap()
            .header("Connection"),
        Some("keep-alive")
    );
    s.write_all(b"GET /heavy/health/ HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
}

#[test]
fn idle_keep_alive_connections_are_closed_after_the_keep_alive_time() {
    let server = Server::start(&["--workers", "1", "--keep-alive", "1"]);
    let mut s = connect(server.port);
    // The server's idle time starts after this instant, and we see the close after it happens:
    // a correct server can only look later than the keep-alive time, never earlier.
    let sent = Instant::now();
    s.write_all(b"GET /heavy/health/ HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    read_response(&mut BufReader::new(s.try_clone().unwrap()), false).unwrap();
    assert!(
        closed_within(&mut s, CLOSE_TIMEOUT),
        "not closed within {CLOSE_TIMEOUT:?} after the 1 s keep-alive"
    );
    let idle = sent.elapsed();
    assert!(
        idle >= Duration::from_millis(950),
        "closed after {idle:?}, before the 1 s keep-alive"
    );
}

#[test]
fn protocol_errors_answer_and_close() {
    let server = Server::start(&["--workers", "1"]);
    let p = server.port;
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(5000));
    let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    let big_field = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n",
        "v".repeat(9000)
    );
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (long_line.into_bytes(), 400),
        (
            format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n").into_bytes(),
            431,
        ),
        (big_field.into_bytes(), 431),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n".to_vec(), 505),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n".to_vec(),
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n".to_vec(),
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
            501,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000000000\r\n\r\n".to_vec(),
            413,
        ),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400),
        (
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n".to_vec(),
            400,
        ),
        (
            b"GET /heavy/health/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
                .to_vec(),
            400,
        ),
    ];
    for (request, status) in cases {
        let mut s = connect(p);
        s.write_all(&request).unwrap();
        let resp = read_response(&mut BufReader::new(s.try_clone().unwrap()), false)
            .unwrap_or_else(|e| {
                panic!(
                    "{:?}: {e}",
                    String::from_utf8_lossy(&request[..40.min(request.len())])
                )
            });
        assert_eq!(
            resp.status,
            status,
            "{:?}",
            String::from_utf8_lossy(&request[..40.min(request.len())])
        );
        assert_eq!(resp.header("Connection"), Some("close"));
        assert!(resp.json()["error"].is_string());
        assert!(
            closed_within(&mut s, CLOSE_TIMEOUT),
            "{status}: still open after {CLOSE_TIMEOUT:?}"
        );
    }
    assert_eq!(get(p, "/heavy/health/").status, 200);
}

#[test]
fn bodies_are_consumed_so_the_next_request_parses() {
    let server = Server::start(&["--workers", "1"]);
    let mut s = connect(server.port);
    s.write_all(
        b"GET /heavy/health/ HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
          GET /heavy/health/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
          GET /nope HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    assert_eq!(read_response(&mut reader, false).unwrap().status, 404);
}

#[test]
fn expect_100_continue_gets_an_interim_answer() {
    let server = Server::start(&["--workers", "1"]);
    let mut s = connect(server.port);
    s.write_all(b"GET /heavy/health/ HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n").unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    assert_eq!(read_response(&mut reader, false).unwrap().status, 100);
    s.write_all(b"ok").unwrap();
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
}

#[test]
fn absolute_form_and_redirects() {
    let server = Server::start(&["--workers", "1"]);
    let resp = raw(
        server.port,
        b"GET http://example.com/heavy/health/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    let resp = get(server.port, "/heavy/health");
    assert_eq!(
        (resp.status, resp.header("Location")),
        (301, Some("/heavy/health/"))
    );
}

#[test]
fn a_slow_head_is_cut_off() {
    let server = Server::start(&["--workers", "1"]);
    let mut s = connect(server.port);
    s.write_all(b"GET /heavy/health/ HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .unwrap();
    // The head timeout is 10 s; the connection must not stay open forever.
    let limit = Duration::from_secs(10) + CLOSE_TIMEOUT;
    assert!(
        closed_within(&mut s, limit),
        "a head unfinished for {limit:?} is still open"
    );
    assert_eq!(get(server.port, "/heavy/health/").status, 200);
}

#[test]
fn a_heavy_request_with_huge_legal_headers_is_served_with_an_access_log() {
    // 90 fields of 8 KB are within Gunicorn's limits but over the default head cap (64 KiB):
    // refused by default, served with the cap raised.
    let server = Server::start(&["--workers", "1", "--access-logfile", "-"]);
    let big: String = (0..90)
        .map(|i| format!("X-Big-{i}: {}\r\n", "v".repeat(8000)))
        .collect();
    let request = format!("GET {LIGHT} HTTP/1.1\r\nHost: t\r\nUser-Agent: big/1\r\n{big}\r\n");
    let resp = raw(server.port, request.as_bytes()).unwrap();
    assert_eq!(
        resp.status,
        431,
        "{:?}",
        String::from_utf8_lossy(&resp.body)
    );
    assert_eq!(resp.json()["error"], "request head is too large");
    drop(server);

    let server = Server::start(&[
        "--workers",
        "1",
        "--access-logfile",
        "-",
        "--limit-request-head",
        "1048576",
    ]);
    let big: String = (0..90)
        .map(|i| format!("X-Big-{i}: {}\r\n", "v".repeat(8000)))
        .collect();
    let request = format!("GET {LIGHT} HTTP/1.1\r\nHost: t\r\nUser-Agent: big/1\r\n{big}\r\n");
    let resp = raw(server.port, request.as_bytes()).unwrap();
    assert_eq!(
        resp.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&resp.body)
    );
    let line = server.wait_for_log("\"big/1\"", START_TIMEOUT);
    assert!(line.contains(" 200 "), "{line}");
}
