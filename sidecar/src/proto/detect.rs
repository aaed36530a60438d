//! Protocol detection on a shared listener: the first bytes a client sends
//! pick HTTP (served by hyper) or one of the RPC codecs, so one port serves
//! every protocol.

use super::{Codec, Detect};

/// What a connection speaks.
pub enum Detected {
    /// HTTP/1.x (a request line) or HTTP/2 (the `PRI * HTTP/2.0` preface).
    Http,
    Rpc(&'static dyn Codec),
    /// Nothing weft speaks.
    Unknown,
}

/// Bytes needed at most to decide (the longest a codec asks for).
pub const MAX_HEAD: usize = 8;

/// Decides from the connection's first bytes; `None` means read more.
pub fn detect(head: &[u8], codecs: &[&'static dyn Codec]) -> Option<Detected> {
    let mut undecided = false;
    for c in codecs {
        match c.detect(head) {
            Detect::Match => return Some(Detected::Rpc(*c)),
            Detect::NeedMore => undecided = true,
            Detect::NoMatch => {}
        }
    }
    match head.first() {
        // HTTP methods (and the HTTP/2 preface) start with an ASCII letter.
        Some(b) if b.is_ascii_uppercase() => Some(Detected::Http),
        _ if undecided && head.len() < MAX_HEAD => None,
        Some(_) => Some(Detected::Unknown),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codecs;

    fn name(head: &[u8]) -> Option<&'static str> {
        detect(head, codecs()).map(|d| match d {
            Detected::Http => "http",
            Detected::Rpc(c) => c.name(),
            Detected::Unknown => "unknown",
        })
    }

    #[test]
    fn each_protocol_is_told_from_its_first_bytes() {
        assert_eq!(name(b"GET / HTTP/1.1\r\n"), Some("http"));
        assert_eq!(name(b"PRI * HTTP/2.0\r\n"), Some("http"));
        assert_eq!(name(&[0xda, 0xbb, 0xc2, 0]), Some("dubbo"));
        assert_eq!(name(&[0x01, 0x01, 0x00, 0x01]), Some("bolt"));
        assert_eq!(name(&[0x02, 0x02, 0x01, 0x00, 0x01]), Some("bolt"));
        assert_eq!(name(&[0xf7, 0x01]), Some("wrpc"));
        assert_eq!(name(&[0x16, 0x03, 0x01]), Some("unknown")); // a TLS ClientHello
    }

    #[test]
    fn too_few_bytes_wait_for_more() {
        assert_eq!(name(&[]), None);
        assert_eq!(name(&[0xda]), None);
        assert_eq!(name(&[0x01, 0x01]), None);
    }
}
