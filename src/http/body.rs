//! Request bodies. No endpoint reads one, but a body must still be consumed to find where the
//! next pipelined request starts, and bounded so a client cannot make the server read forever.

use super::{BodyFraming, HttpError};

/// Consumes (and discards) one request body from successive buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyReader {
    state: State,
    /// Body bytes seen so far, against `limit`.
    total: u64,
    limit: u64,
    /// Trailer bytes and fields seen so far, against the trailer bounds.
    trailer_bytes: usize,
    trailer_fields: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A `Content-Length` body with this many bytes left.
    Remaining(u64),
    /// Chunked: expecting a chunk-size line.
    ChunkSize,
    /// Chunked: inside a chunk with this many data bytes left, then its CRLF.
    ChunkData(u64),
    /// Chunked: the CRLF after a chunk's data.
    ChunkEnd,
    /// Chunked: trailer fields after the last chunk, until an empty line.
    Trailers,
    Done,
}

/// The longest chunk-size line (size plus extensions) or trailer line accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// The trailer section of a chunked body is bounded like a head: at most this many bytes (the
/// default `--limit-request-head`) and fields (the default `--limit-request-fields`). Nothing
/// reads trailers; without a bound a client could stream them forever.
const MAX_TRAILER_BYTES: usize = 64 * 1024;
const MAX_TRAILER_FIELDS: usize = 100;

impl BodyReader {
    pub fn new(framing: BodyFraming, limit: u64) -> Self {
        let state = match framing {
            BodyFraming::None => State::Done,
            BodyFraming::Length(n) => State::Remaining(n),
            BodyFraming::Chunked => State::ChunkSize,
        };
        BodyReader {
            state,
            total: 0,
            limit,
            trailer_bytes: 0,
            trailer_fields: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes what it can from `buf`; returns how many bytes it used. Call again with more
    /// bytes until [`is_done`](Self::is_done).
    pub fn consume(&mut self, buf: &[u8]) -> Result<usize, HttpError> {
        let mut used = 0;
        while used < buf.len() && self.state != State::Done {
            let rest = &buf[used..];
            match self.state {
                State::Remaining(n) => {
                    let take = n.min(rest.len() as u64);
                    used += take as usize;
                    self.state = if take == n {
                        State::Done
                    } else {
                        State::Remaining(n - take)
                    };
                }
                State::ChunkData(n) => {
                    let take = n.min(rest.len() as u64);
                    used += take as usize;
                    self.state = if take == n {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(n - take)
                    };
                }
                State::ChunkSize | State::ChunkEnd | State::Trailers => {
                    let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                        if rest.len() > MAX_CHUNK_LINE {
                            return Err(HttpError::bad_request("chunk line is too long"));
                        }
                        return Ok(used);
                    };
                    // Chunk lines end in CRLF; a bare LF is refused (RFC 9112 7.1), as a
                    // front end could split the stream differently.
                    let Some(line) = rest[..end].strip_suffix(b"\r") else {
                        return Err(HttpError::bad_request("chunk line without CRLF"));
                    };
                    used += end + 1;
                    self.state = self.after_line(line)?;
                }
                State::Done => unreachable!(),
            }
        }
        if self.state == State::Remaining(0) {
            self.state = State::Done;
        }
        Ok(used)
    }

    fn after_line(&mut self, line: &[u8]) -> Result<State, HttpError> {
        match self.state {
            State::ChunkEnd if line.is_empty() => Ok(State::ChunkSize),
            State::ChunkEnd => Err(HttpError::bad_request("chunk data longer than its size")),
            State::Trailers if line.is_empty() => Ok(State::Done),
            State::Trailers if line.len() > MAX_CHUNK_LINE => {
                Err(HttpError::header_too_large("a trailer field is too large"))
            }
            State::Trailers if is_field_line(line) => {
                self.trailer_bytes += line.len() + 2;
                self.trailer_fields += 1;
                if self.trailer_bytes > MAX_TRAILER_BYTES {
                    Err(HttpError::header_too_large(
                        "the trailer section is too large",
                    ))
                } else if self.trailer_fields > MAX_TRAILER_FIELDS {
                    Err(HttpError::header_too_large("too many trailer fields"))
                } else {
                    Ok(State::Trailers)
                }
            }
            State::Trailers => Err(HttpError::bad_request("invalid trailer field")),
            State::ChunkSize => {
                let size = parse_chunk_size(line)?;
                self.total += size;
                if self.total > self.limit {
                    return Err(HttpError::new(413, "request body is too large"));
                }
                Ok(if size == 0 {
                    State::Trailers
                } else {
                    State::ChunkData(size)
                })
            }
            _ => unreachable!("only line states reach here"),
        }
    }
}

/// `1*HEXDIG [ chunk-ext ]`, bounded to 15 hex digits so it cannot overflow.
fn parse_chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    let digits_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let (digits, ext) = line.split_at(digits_end);
    if digits.is_empty() || digits.len() > 15 {
        return Err(HttpError::bad_request("invalid chunk size"));
    }
    if !is_chunk_ext(ext) {
        return Err(HttpError::bad_request("invalid chunk extension"));
    }
    let text = std::str::from_utf8(digits).expect("hex digits are ASCII");
    Ok(u64::from_str_radix(text, 16).expect("validated hex digits"))
}

/// `*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )` (RFC 9112 7.1.1).
fn is_chunk_ext(mut ext: &[u8]) -> bool {
    let skip_ws =
        |s: &[u8]| -> usize { s.iter().take_while(|&&b| b == b' ' || b == b'\t').count() };
    loop {
        ext = &ext[skip_ws(ext)..];
        let Some(rest) = ext.strip_prefix(b";") else {
            return ext.is_empty();
        };
        let rest = &rest[skip_ws(rest)..];
        let name = token_len(rest);
        if name == 0 {
            return false;
        }
        let rest = &rest[name..];
        let after_ws = &rest[skip_ws(rest)..];
        ext = match after_ws.strip_prefix(b"=") {
            None => rest,
            Some(value) => {
                let value = &value[skip_ws(value)..];
                let len = if value.first() == Some(&b'"') {
                    match quoted_string_len(value) {
                        Some(len) => len,
                        None => return false,
                    }
                } else {
                    token_len(value)
                };
                if len == 0 {
                    return false;
                }
                &value[len..]
            }
        };
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn token_len(s: &[u8]) -> usize {
    s.iter().take_while(|&&b| is_tchar(b)).count()
}

/// Length of the quoted-string at the start of `s` (which starts with `"`), or `None` if it
/// is unterminated or holds a control character.
fn quoted_string_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'"' => return Some(i + 1),
            b'\\' => {
                let escaped = *s.get(i + 1)?;
                if escaped != b'\t' && (escaped < 0x20 || escaped == 0x7f) {
                    return None;
                }
                i += 2;
            }
            b'\t' => i += 1,
            b if b < 0x20 || b == 0x7f => return None,
            _ => i += 1,
        }
    }
    None
}

/// `field-name ":" OWS field-value OWS`, with no control characters but HTAB in the value.
fn is_field_line(line: &[u8]) -> bool {
    let name = token_len(line);
    name > 0
        && line.get(name) == Some(&b':')
        && line[name + 1..]
            .iter()
            .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consume_all(
        framing: BodyFraming,
        input: &[u8],
        limit: u64,
    ) -> Result<(usize, bool), HttpError> {
        let mut reader = BodyReader::new(framing, limit);
        let used = reader.consume(input)?;
        Ok((used, reader.is_done()))
    }

    #[test]
    fn content_length_bodies() {
        assert_eq!(
            consume_all(BodyFraming::Length(3), b"abcGET", 10),
            Ok((3, true))
        );
        assert_eq!(
            consume_all(BodyFraming::Length(5), b"abc", 10),
            Ok((3, false))
        );
        assert_eq!(consume_all(BodyFraming::None, b"GET", 10), Ok((0, true)));
    }

    #[test]
    fn chunked_bodies_in_one_piece_and_byte_by_byte() {
        let body = b"4\r\nWiki\r\n5;ext=1 ; q=\"a \\\" b\"; flag\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        assert_eq!(
            consume_all(BodyFraming::Chunked, body, 100),
            Ok((body.len() - 4, true))
        );
        let mut reader = BodyReader::new(BodyFraming::Chunked, 100);
        let mut pending: Vec<u8> = Vec::new();
        for &b in &body[..body.len() - 4] {
            pending.push(b);
            let used = reader.consume(&pending).unwrap();
            pending.drain(..used);
        }
        assert!(reader.is_done());
        assert!(pending.is_empty());
    }

    #[test]
    fn bad_chunks_are_refused() {
        for bad in [
            &b"zz\r\n"[..],
            b"-1\r\n",
            b"4 x\r\n",
            b"\r\n",
            b"ffffffffffffffff\r\n",
            b"2\r\nabc\r\n",
            b"4\nWiki\r\n0\r\n\r\n",
            b"4\r\nWiki\n0\r\n\r\n",
            b"4;a=\"open\r\nWiki\r\n",
            b"4;a\x01b\r\nWiki\r\n",
            b"4;=v\r\nWiki\r\n",
            b"4;a=\r\nWiki\r\n",
            b"0\r\nGET / HTTP/1.1\r\n\r\n",
            b"0\r\nX-T: a\x00b\r\n\r\n",
            b"0\r\n: v\r\n\r\n",
        ] {
            let err = consume_all(BodyFraming::Chunked, bad, u64::MAX).unwrap_err();
            assert_eq!(err.status, 400, "{:?}", String::from_utf8_lossy(bad));
        }
        let err = consume_all(BodyFraming::Chunked, b"ff\r\n", 10).unwrap_err();
        assert_eq!(err.status, 413);
        let endless = vec![b'1'; MAX_CHUNK_LINE + 1];
        assert_eq!(
            consume_all(BodyFraming::Chunked, &endless, 10)
                .unwrap_err()
                .status,
            400
        );
    }

    /// Issue 22, defect 10: a trailer section is bounded (20 MB of trailers were read before).
    #[test]
    fn trailers_are_bounded_in_bytes_and_fields() {
        let mut r = BodyReader::new(BodyFraming::Chunked, 1 << 20);
        assert_eq!(r.consume(b"0\r\n").unwrap(), 3);
        let field = format!("X-T: {}\r\n", "v".repeat(1000));
        let mut err = None;
        for _ in 0..1000 {
            match r.consume(field.as_bytes()) {
                Ok(used) => assert_eq!(used, field.len()),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        let err = err.expect("refused before 1 MB of trailers");
        assert_eq!(err.status, 431, "{err}");
        let mut many = BodyReader::new(BodyFraming::Chunked, 1 << 20);
        many.consume(b"0\r\n").unwrap();
        let refused = (0..200).find_map(|_| many.consume(b"A: b\r\n").err());
        assert_eq!(refused.map(|e| e.status), Some(431), "too many fields");
    }
}
