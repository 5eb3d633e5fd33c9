//! Feeds arbitrary bytes through what the event loop does with a connection's input: parse a
//! head with small limits (so the limit paths are reached), consume its body, repeat for
//! pipelined requests, and encode an answer. Nothing may panic, and every consumed length must
//! stay inside the buffer.
#![no_main]

use heavy_api::http::{encode_response, parse_head, BodyReader, HttpLimits, ResponseMeta, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = HttpLimits { request_line: 256, fields: 8, field_size: 128, body: 4096 };
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
