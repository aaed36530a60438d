//! W3C Trace Context: pass `traceparent` through, or start a trace when a request
//! arrives without a valid one, so every hop logs the same trace id.

/// Returns a valid `traceparent` for the request (its [`trace_id`] is in it).
pub fn ensure_traceparent(incoming: Option<&str>) -> String {
    if let Some(tp) = incoming.filter(|t| is_valid(t)) {
        return tp.to_string();
    }
    // Per request without a traceparent: hex by hand, not through `format!`.
    let mut tp = String::with_capacity(55);
    tp.push_str("00-");
    push_hex(&mut tp, fastrand::u64(1..));
    push_hex(&mut tp, fastrand::u64(..));
    tp.push('-');
    push_hex(&mut tp, fastrand::u64(1..));
    tp.push_str("-01");
    tp
}

/// The trace id of a `traceparent` from [`ensure_traceparent`] (only such a
/// one is valid, and so long enough).
pub fn trace_id(traceparent: &str) -> &str {
    traceparent.get(3..35).unwrap_or_default()
}

/// Appends `v` as 16 lowercase hex digits.
fn push_hex(out: &mut String, v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(char::from(DIGITS[(v >> (shift * 4)) as usize & 0xf]));
    }
}

/// `version-traceid-parentid-flags`, lowercase hex, non-zero ids.
fn is_valid(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    parts.len() >= 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && nonzero(parts[1])
        && hex(parts[2], 16)
        && nonzero(parts[2])
        && hex(parts[3], 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_valid_and_replaces_invalid() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(ensure_traceparent(Some(tp)), tp);
        assert_eq!(trace_id(tp), "4bf92f3577b34da6a3ce929d0e0e4736");
        let new = ensure_traceparent(Some("00-0000-bad"));
        assert!(is_valid(&new) && trace_id(&new).len() == 32 && trace_id(&new) != "0".repeat(32));
        assert!(!is_valid("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
        assert!(is_valid(&ensure_traceparent(None)));
    }
}
