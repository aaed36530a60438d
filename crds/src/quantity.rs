//! Kubernetes quantities for memory limits (`64Mi`, `1Gi`, `500M`, `1048576`).

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0:?} is not a memory quantity (use e.g. 64Mi, 1Gi or a number of bytes)")]
pub struct QuantityError(pub String);

/// Parses a memory quantity into bytes. Only the binary and decimal suffixes that
/// make sense for memory are accepted; fractions are not.
pub fn parse_memory(s: &str) -> Result<u64, QuantityError> {
    let err = || QuantityError(s.to_string());
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| err())?;
    let mult: u64 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return Err(err()),
    };
    n.checked_mul(mult).ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        assert_eq!(parse_memory("64Mi"), Ok(64 << 20));
        assert_eq!(parse_memory("1Gi"), Ok(1 << 30));
        assert_eq!(parse_memory("500M"), Ok(500_000_000));
        assert_eq!(parse_memory("4096"), Ok(4096));
        assert!(parse_memory("1.5Gi").is_err());
        assert!(parse_memory("Mi").is_err());
        assert!(parse_memory("12Xi").is_err());
    }
}
