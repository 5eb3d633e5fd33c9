//! Feeds arbitrary bytes through what the event loop does with a connection's input: scan for
//! the end of a head as its bytes arrive in pieces (which must agree with one scan of the
//! whole), parse it with small limits (so the limit paths are reached), consume its body,
//! repeat for pipelined requests, and encode an answer. Nothing may panic, and every consumed
//! length must stay inside the buffer.
#![no_main]

use heavy_api::http::{
    encode_response, parse_head, BodyReader, HeadScan, HttpLimits, ResponseMeta, Version,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits =
        HttpLimits { request_line: 256, fields: 8, field_size: 128, head: 1024, body: 4096 };
    let status = |r: Result<Option<usize>, heavy_api::http::HttpError>| r.map_err(|e| e.status);
    let whole = status(HeadScan::default().scan(data, &limits));
    let mut scan = HeadScan::default();
    let mut piecewise = Ok(None);
    for end in (1..data.len()).step_by(7).chain([data.len()]) {
        piecewise = status(scan.scan(&data[..end], &limits));
        if piecewise != Ok(None) {
            break;
        }
    }
    assert_eq!(whole, piecewise, "scanning in pieces must agree with one scan");
    let mut rest = data;
    for _ in 0..8 {
        match parse_head(rest, &limits) {
            Ok(None) => return,
            Err(err) => {
                let meta = ResponseMeta { version: Version::Http11, keep_alive: false, head_only: false };
                let _ = encode_response(&err.to_response(), meta);
                return;
            }
            Ok(Some(head)) => {
                assert!(head.head_len <= rest.len());
                assert!(head.path.starts_with('/') || head.path == "*");
                rest = &rest[head.head_len..];
                let mut body = BodyReader::new(head.body, limits.body);
                match body.consume(rest) {
                    Ok(used) => {
                        assert!(used <= rest.len());
                        rest = &rest[used..];
                        if !body.is_done() {
                            return;
                        }
                    }
                    Err(err) => {
                        assert!(err.status >= 400);
                        return;
                    }
                }
            }
        }
    }
});
