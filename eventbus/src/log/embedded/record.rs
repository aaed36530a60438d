//! The on-disk record format of the embedded log.
//!
//! ```text
//! len u32 | crc32c u32 | offset u64 | timestamp_ms i64 | payload (len bytes)
//! ```
//! little-endian; the checksum covers offset, timestamp and payload. A record
//! whose length runs past the end of the file, or whose checksum fails, is a
//! torn write: recovery truncates the file there, and a reader never returns it.

use crate::log::Record;
use bytes::Bytes;
use std::io::{self, Read};

pub const HEADER: usize = 24;
/// The largest payload a record may carry.
pub const MAX_PAYLOAD: usize = 16 << 20;

/// Appends one encoded record to `buf`.
pub fn encode(buf: &mut Vec<u8>, offset: u64, timestamp_ms: i64, payload: &[u8]) {
    let start = buf.len();
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&timestamp_ms.to_le_bytes());
    buf.extend_from_slice(payload);
    let crc = crc32c::crc32c(&buf[start + 8..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What reading one record from a stream found.
#[derive(Debug)]
pub enum Read1 {
    Record(Record, u64),
    /// A clean end of the stream, on a record boundary.
    End,
    /// A torn or corrupt record starts here.
    Torn(&'static str),
}

/// Reads the next record; the `u64` is the bytes it took.
pub fn read_one(r: &mut impl Read) -> io::Result<Read1> {
    let mut header = [0u8; HEADER];
    match read_full(r, &mut header)? {
        0 => return Ok(Read1::End),
        n if n < HEADER => return Ok(Read1::Torn("header cut short")),
        _ => {}
    }
    let len = u32::from_le_bytes(word(&header[0..4])) as usize;
    if len > MAX_PAYLOAD {
        return Ok(Read1::Torn("length over the limit"));
    }
    let crc = u32::from_le_bytes(word(&header[4..8]));
    let mut payload = vec![0u8; len];
    if read_full(r, &mut payload)? < len {
        return Ok(Read1::Torn("payload cut short"));
    }
    let sum = crc32c::crc32c_append(crc32c::crc32c(&header[8..]), &payload);
    if sum != crc {
        return Ok(Read1::Torn("checksum mismatch"));
    }
    let offset = u64::from_le_bytes(dword(&header[8..16]));
    let timestamp_ms = i64::from_le_bytes(dword(&header[16..24]));
    let record = Record { offset, timestamp_ms, payload: Bytes::from(payload) };
    Ok(Read1::Record(record, (HEADER + len) as u64))
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn word(b: &[u8]) -> [u8; 4] {
    let mut w = [0; 4];
    w.copy_from_slice(b);
    w
}

fn dword(b: &[u8]) -> [u8; 8] {
    let mut w = [0; 8];
    w.copy_from_slice(b);
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Read1 {
        read_one(&mut &bytes[..]).unwrap()
    }

    #[test]
    fn a_record_round_trips_and_any_cut_or_flip_is_torn() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, 1234, b"hello");
        match one(&buf) {
            Read1::Record(r, n) => {
                assert_eq!((r.offset, r.timestamp_ms, &r.payload[..], n), (7, 1234, &b"hello"[..], 29));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(one(&[]), Read1::End));
        for cut in 1..buf.len() {
            assert!(matches!(one(&buf[..cut]), Read1::Torn(_)), "cut at {cut}");
        }
        for i in 4..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(matches!(one(&bad), Read1::Torn(_)), "flip at {i}");
        }
    }
}
