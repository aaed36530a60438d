//! Resource names, and the names weft derives from them (revisions, hosts).

/// Longest Function name: revision names append `-00001` and must stay a DNS label.
pub const MAX_FUNCTION_NAME: usize = 57;

/// Checks an RFC 1123 DNS label: lowercase alphanumerics and `-`, starting and
/// ending alphanumeric, at most `max` characters. Returns what is wrong.
pub fn check_dns_label(name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > max {
        return Err(format!("must be at most {max} characters (is {})", name.len()));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !name.chars().all(ok_char) {
        return Err("may contain only lowercase letters, digits and '-'".into());
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

/// Name of the `n`th revision of a function: `hello-00001`.
pub fn revision_name(function: &str, n: u64) -> String {
    format!("{function}-{n:05}")
}

/// Host of a function on the local gateway: `hello.default.localhost`.
pub fn function_host(function: &str, namespace: &str, domain: &str) -> String {
    format!("{function}.{namespace}.{domain}")
}

/// Host of a tagged revision: `canary-hello.default.localhost`.
pub fn tag_host(tag: &str, function: &str, namespace: &str, domain: &str) -> String {
    format!("{tag}-{function}.{namespace}.{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(check_dns_label("hello-2", 63).is_ok());
        assert!(check_dns_label("Hello", 63).is_err());
        assert!(check_dns_label("-a", 63).is_err());
        assert!(check_dns_label("", 63).is_err());
        assert!(check_dns_label(&"a".repeat(58), MAX_FUNCTION_NAME).is_err());
    }

    #[test]
    fn derived_names() {
        assert_eq!(revision_name("hello", 2), "hello-00002");
        assert_eq!(tag_host("canary", "hello", "default", "localhost"), "canary-hello.default.localhost");
    }
}
