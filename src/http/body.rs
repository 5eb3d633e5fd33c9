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
                    let line = &rest[..end];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
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
            State::Trailers => Ok(State::Trailers),
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
    let ext_ok =
        ext.is_empty() || matches!(ext.iter().find(|&&b| b != b' ' && b != b'\t'), Some(b';'));
    if !ext_ok {
        return Err(HttpError::bad_request("invalid chunk size"));
    }
    let text = std::str::from_utf8(digits).expect("hex digits are ASCII");
    Ok(u64::from_str_radix(text, 16).expect("validated hex digits"))
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
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
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
}
