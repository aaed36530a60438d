//! Moving bytes on the fast path: a request to an instance (over a pooled
//! connection, retried once on a fresh one when a reused connection turns out
//! closed), and its response back, bodies relayed as they come.

use super::chunked::{Chunked, Malformed};
use super::head::{self, BadResponse, Framing, ResponseHead};
use super::pool::Pool;
use bytes::{Buf, BytesMut};
use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads grow the buffer by this much when it is full.
const READ_CHUNK: usize = 16 * 1024;

/// What is left of a body.
#[derive(Debug, Clone, Copy)]
pub enum Left {
    Done,
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

impl Left {
    pub fn of(framing: Framing) -> Self {
        match framing {
            Framing::Empty => Self::Done,
            Framing::Length(n) => Self::Length(n),
            Framing::Chunked => Self::Chunked(Chunked::default()),
            Framing::UntilClose => Self::UntilClose,
        }
    }

    /// How many of `avail` (the body's next bytes) belong to it, and whether
    /// the body ends with them.
    fn take(&mut self, avail: &[u8]) -> Result<(usize, bool), Malformed> {
        match self {
            Self::Done => Ok((0, true)),
            Self::Length(left) => {
                let n = (*left).min(avail.len() as u64);
                *left -= n;
                Ok((n as usize, *left == 0))
            }
            Self::Chunked(c) => Ok(c.feed(avail)?.map_or((avail.len(), false), |end| (end, true))),
            Self::UntilClose => Ok((avail.len(), false)),
        }
    }

    /// Moves the body bytes at the front of `buf` to `out`; true when that
    /// was the whole body (what follows in `buf` is the next message).
    pub fn take_into(&mut self, buf: &mut BytesMut, out: &mut Vec<u8>) -> Result<bool, Malformed> {
        let (n, done) = self.take(buf)?;
        out.extend_from_slice(&buf[..n]);
        buf.advance(n);
        Ok(done)
    }
}

/// Why a request got no response head.
#[derive(Debug)]
pub struct SendError {
    pub error: String,
    /// The client's request was read whole, so its connection can go on.
    pub body_read: bool,
}

impl SendError {
    fn new(error: impl ToString, body_read: bool) -> Self {
        Self { error: error.to_string(), body_read }
    }
}

/// Sends `request` (the head, and the body bytes already read) to `addr`,
/// then the rest of the body from `client` unless `whole`; returns the
/// connection with the response head parsed at the front of `response`.
#[allow(clippy::too_many_arguments)]
pub async fn send(
    pool: &Pool,
    addr: SocketAddr,
    request: &[u8],
    client: &mut TcpStream,
    buf: &mut BytesMut,
    left: Left,
    whole: bool,
    response: &mut BytesMut,
    head_request: bool,
) -> Result<(TcpStream, ResponseHead), SendError> {
    let mut retried = false;
    loop {
        let (mut up, reused) = match pool.take(addr) {
            Some(s) => (s, true),
            None => (connect(addr).await.map_err(|e| SendError::new(e, whole))?, false),
        };
        // Only a reused connection may have been closed under us, and only a
        // request held whole can be sent again.
        let may_retry = reused && whole && !retried;
        response.clear();
        if let Err(e) = up.write_all(request).await {
            if may_retry {
                retried = true;
                continue;
            }
            return Err(SendError::new(e, whole));
        }
        if !whole {
            relay(client, &mut up, buf, left).await.map_err(|e| SendError::new(e, false))?;
        }
        match read_head(&mut up, response, head_request).await {
            Ok(head) => return Ok((up, head)),
            Err(ReadError::Closed) if may_retry => retried = true,
            Err(e) => return Err(SendError::new(e, true)),
        }
    }
}

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("connection closed before a response")]
    Closed,
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Bad(#[from] BadResponse),
}

async fn read_head(up: &mut TcpStream, response: &mut BytesMut, head_request: bool) -> Result<ResponseHead, ReadError> {
    loop {
        if let Some(head) = head::response(response, head_request)? {
            return Ok(head);
        }
        if response.capacity() - response.len() < READ_CHUNK / 2 {
            response.reserve(READ_CHUNK);
        }
        match up.read_buf(response).await {
            Ok(0) if response.is_empty() => return Err(ReadError::Closed),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(_) => {}
            Err(e) if response.is_empty() && e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(ReadError::Closed);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes the response to the client (head and the body bytes at hand in one
/// write), relays the rest of the body, and pools the instance connection
/// when it can carry another request.
pub async fn respond(
    client: &mut TcpStream,
    mut up: TcpStream,
    response: &mut BytesMut,
    head: ResponseHead,
    close: bool,
    pool: &Pool,
    addr: SocketAddr,
) -> io::Result<()> {
    let mut left = Left::of(head.framing);
    let done = if head.rewrite || close {
        let mut out = Vec::with_capacity(response.len() + 32);
        head::client_head(&mut out, &response[..head.len], close).map_err(io::Error::other)?;
        response.advance(head.len);
        let done = left.take_into(response, &mut out).map_err(io::Error::other)?;
        client.write_all(&out).await?;
        done
    } else {
        // The common case: the head goes as it came, so the head and the body
        // bytes at hand are written straight from the read buffer, uncopied.
        let (n, done) = left.take(&response[head.len..]).map_err(io::Error::other)?;
        client.write_all(&response[..head.len + n]).await?;
        response.advance(head.len + n);
        done
    };
    if !done {
        relay(&mut up, client, response, left).await?;
    }
    // Bytes past the response mean the instance broke framing: not reused.
    if !head.close && response.is_empty() {
        pool.put(addr, up);
    }
    Ok(())
}

/// Relays the rest of a body from `from` to `to`, reading into `buf`; bytes
/// read past the body's end stay in `buf`.
async fn relay(from: &mut TcpStream, to: &mut TcpStream, buf: &mut BytesMut, mut left: Left) -> io::Result<()> {
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 2 {
            buf.reserve(READ_CHUNK);
        }
        if from.read_buf(buf).await? == 0 {
            return match left {
                Left::UntilClose => Ok(()),
                _ => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            };
        }
        let (n, done) = left.take(buf).map_err(io::Error::other)?;
        to.write_all(&buf[..n]).await?;
        buf.advance(n);
        if done {
            return Ok(());
        }
    }
}
