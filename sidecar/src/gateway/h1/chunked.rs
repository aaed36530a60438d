//! Finds where a chunked body ends (RFC 9112 §7.1) while its bytes are
//! forwarded unchanged: the fast path relays chunked messages as they are and
//! only needs to know where the next message starts.

/// Where the scanner is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a chunk-size line: the size so far, and whether a digit was seen.
    Size(u64, bool),
    /// In chunk extensions, up to the line's CR.
    Extension(u64),
    /// After the size line's CR.
    SizeLf(u64),
    /// Inside chunk data, with this many bytes left.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// After the final empty line's CR.
    FinalLf,
    Done,
}

/// A body whose framing is broken: the connection cannot be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub struct Malformed;

/// Chunk sizes above this are refused rather than counted (no overflow).
const MAX_CHUNK: u64 = 1 << 40;

#[derive(Debug, Clone, Copy)]
pub struct Chunked {
    state: State,
}

impl Default for Chunked {
    fn default() -> Self {
        Self { state: State::Size(0, false) }
    }
}

impl Chunked {
    /// Scans `bytes`, the body's next bytes; returns how many of them belong
    /// to the body once its end is among them.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, Malformed> {
        let mut i = 0;
        while i < bytes.len() {
            if let State::Data(left) = self.state {
                // Skip data in one step, not byte by byte.
                let take = left.min((bytes.len() - i) as u64);
                i += take as usize;
                self.state = if take == left { State::DataCr } else { State::Data(left - take) };
                continue;
            }
            self.state = step(self.state, bytes[i])?;
            i += 1;
            if self.state == State::Done {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }
}

fn step(state: State, b: u8) -> Result<State, Malformed> {
    Ok(match state {
        State::Size(n, digits) => match b {
            b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                let n = n * 16 + u64::from(hex(b));
                if n > MAX_CHUNK {
                    return Err(Malformed);
                }
                State::Size(n, true)
            }
            b';' | b' ' | b'\t' if digits => State::Extension(n),
            b'\r' if digits => State::SizeLf(n),
            _ => return Err(Malformed),
        },
        State::Extension(n) => match b {
            b'\r' => State::SizeLf(n),
            b'\n' => return Err(Malformed),
            _ => State::Extension(n),
        },
        State::SizeLf(0) if b == b'\n' => State::TrailerStart,
        State::SizeLf(n) if b == b'\n' => State::Data(n),
        State::DataCr if b == b'\r' => State::DataLf,
        State::DataLf if b == b'\n' => State::Size(0, false),
        State::TrailerStart if b == b'\r' => State::FinalLf,
        State::TrailerStart | State::Trailer if b == b'\n' => {
            if state == State::TrailerStart {
                return Err(Malformed); // a bare LF ends nothing
            }
            State::TrailerStart
        }
        State::TrailerStart | State::Trailer => State::Trailer,
        State::FinalLf if b == b'\n' => State::Done,
        _ => return Err(Malformed),
    })
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end_of(body: &[u8]) -> Result<Option<usize>, Malformed> {
        Chunked::default().feed(body)
    }

    #[test]
    fn finds_the_end_and_leaves_the_next_message() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        assert_eq!(end_of(body), Ok(Some(body.len() - 16)));
        let trailers = b"1\r\na\r\n0\r\nx-sum: 1\r\nx-more: 2\r\n\r\n";
        assert_eq!(end_of(trailers), Ok(Some(trailers.len())));
        assert_eq!(end_of(b"A\r\n0123456789\r\n0\r\n\r\n"), Ok(Some(20)));
    }

    #[test]
    fn any_split_of_the_bytes_gives_the_same_end() {
        let body = b"4\r\nwxyz\r\n10\r\n0123456789abcdef\r\n0\r\nt: v\r\n\r\nrest";
        let end = body.len() - 4;
        for cut in 0..body.len() {
            let mut c = Chunked::default();
            let first = c.feed(&body[..cut]).unwrap();
            let got = match first {
                Some(n) => n,
                None => cut + c.feed(&body[cut..]).unwrap().unwrap(),
            };
            assert_eq!(got, end, "cut at {cut}");
        }
    }

    #[test]
    fn broken_framing_is_refused() {
        for bad in [&b"x\r\n"[..], b"\r\n", b"5\r\nhelloX", b"5\nhello", b"fffffffffffffffff\r\n", b"0\r\n\n"] {
            assert_eq!(end_of(bad), Err(Malformed), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(end_of(b"5\r\nhel"), Ok(None), "incomplete is not broken");
    }
}
