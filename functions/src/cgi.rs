//! The WAGI-style guest ABI: an HTTP request becomes CGI variables (RFC 3875) plus
//! the body on stdin; the guest's stdout is a CGI response (header lines, a blank
//! line, the body).

use bytes::Bytes;

/// What the host hands a guest for one request.
#[derive(Debug, Clone, Default)]
pub struct GuestRequest {
    pub method: String,
    /// Path below the function's route, e.g. `/items/7` (`PATH_INFO`).
    pub path: String,
    /// Raw query string without `?`.
    pub query: String,
    /// The route prefix the gateway stripped, e.g. `/default/hello` (`SCRIPT_NAME`).
    pub script_name: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub remote_addr: String,
    pub server_name: String,
    pub server_port: u16,
}

/// A parsed guest response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Headers a guest must not set: the host owns the connection framing.
const HOP_BY_HOP: [&str; 4] = ["connection", "transfer-encoding", "content-length", "keep-alive"];

impl GuestRequest {
    /// The CGI environment of this request. Header names become `HTTP_<NAME>`;
    /// `Content-Type`/`Content-Length` get their own CGI names, as RFC 3875 says.
    pub fn cgi_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
            ("SERVER_SOFTWARE".into(), "weft".into()),
            ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
            ("REQUEST_METHOD".into(), self.method.clone()),
            ("PATH_INFO".into(), self.path.clone()),
            ("SCRIPT_NAME".into(), self.script_name.clone()),
            ("QUERY_STRING".into(), self.query.clone()),
            ("REMOTE_ADDR".into(), self.remote_addr.clone()),
            ("SERVER_NAME".into(), self.server_name.clone()),
            ("SERVER_PORT".into(), self.server_port.to_string()),
            ("CONTENT_LENGTH".into(), self.body.len().to_string()),
            ("X_FULL_URL".into(), self.full_url()),
        ];
        for (name, value) in &self.headers {
            let upper = name.to_ascii_uppercase().replace('-', "_");
            match upper.as_str() {
                "CONTENT_TYPE" => env.push((upper, value.clone())),
                // CONTENT_LENGTH is set from the body the host actually read.
                "CONTENT_LENGTH" => {}
                _ => env.push((format!("HTTP_{upper}"), value.clone())),
            }
        }
        env
    }

    fn full_url(&self) -> String {
        let q = if self.query.is_empty() { String::new() } else { format!("?{}", self.query) };
        format!("http://{}:{}{}{}{}", self.server_name, self.server_port, self.script_name, self.path, q)
    }
}

/// Parses a CGI response. Accepts `\n` or `\r\n` line ends. A `Status` header sets
/// the status; a `Location` without one means 302; otherwise 200.
pub fn parse_output(out: &[u8]) -> Result<GuestResponse, String> {
    let (head, body) = split_head(out).ok_or("no blank line after the header lines")?;
    let head = std::str::from_utf8(head).map_err(|_| "header lines are not UTF-8".to_string())?;
    let mut status = None;
    let mut headers = Vec::new();
    for line in head.lines().map(|l| l.trim_end_matches('\r')) {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("header line {line:?} has no ':'"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(format!("{name:?} is not a header name"));
        }
        if name.eq_ignore_ascii_case("status") {
            status = Some(parse_status(value)?);
        } else if !HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            headers.push((name.to_string(), value.to_string()));
        }
    }
    let has_location = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("location"));
    let status = status.unwrap_or(if has_location { 302 } else { 200 });
    Ok(GuestResponse { status, headers, body: Bytes::copy_from_slice(body) })
}

fn split_head(out: &[u8]) -> Option<(&[u8], &[u8])> {
    // A response with no headers at all starts with the blank line.
    if let Some(rest) = out.strip_prefix(b"\r\n").or_else(|| out.strip_prefix(b"\n")) {
        return Some((&[], rest));
    }
    // The first blank line, whichever line end it uses.
    let lf = find(out, b"\n\n").map(|i| (i, 2));
    let crlf = find(out, b"\r\n\r\n").map(|i| (i, 4));
    let (i, len) = lf.into_iter().chain(crlf).min_by_key(|(i, _)| *i)?;
    Some((&out[..i], &out[i + len..]))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_status(value: &str) -> Result<u16, String> {
    let code = value.split_whitespace().next().unwrap_or("");
    match code.parse::<u16>() {
        Ok(c) if (100..=599).contains(&c) => Ok(c),
        _ => Err(format!("Status {value:?} is not an HTTP status")),
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_response() {
        let r = parse_output(b"Content-Type: text/plain\n\nhi\n").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.headers, vec![("Content-Type".into(), "text/plain".into())]);
        assert_eq!(&r.body[..], b"hi\n");
    }

    #[test]
    fn status_and_crlf() {
        let r = parse_output(b"Status: 404 Not Found\r\nX-A: b\r\n\r\nnope").unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.headers.len(), 1);
        assert_eq!(&r.body[..], b"nope");
    }

    #[test]
    fn location_means_redirect_and_framing_headers_are_dropped() {
        let r = parse_output(b"Location: /x\nContent-Length: 99\nConnection: close\n\n").unwrap();
        assert_eq!(r.status, 302);
        assert_eq!(r.headers, vec![("Location".into(), "/x".into())]);
    }

    #[test]
    fn body_may_contain_blank_lines() {
        let r = parse_output(b"A: 1\n\nx\n\ny").unwrap();
        assert_eq!(&r.body[..], b"x\n\ny");
        let r = parse_output(b"\nonly body").unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"only body"[..]));
    }

    #[test]
    fn malformed_output_is_refused_with_a_reason() {
        assert!(parse_output(b"hello world").unwrap_err().contains("blank line"));
        assert!(parse_output(b"no colon here\n\n").unwrap_err().contains("no ':'"));
        assert!(parse_output(b"Status: abc\n\n").unwrap_err().contains("not an HTTP status"));
        assert!(parse_output(b"Status: 99\n\n").is_err());
        assert!(parse_output(b"Bad Name: x\n\n").unwrap_err().contains("not a header name"));
    }

    #[test]
    fn cgi_env_maps_headers() {
        let req = GuestRequest {
            method: "POST".into(),
            path: "/a".into(),
            query: "x=1".into(),
            script_name: "/default/hello".into(),
            headers: vec![
                ("content-type".into(), "text/plain".into()),
                ("x-trace-id".into(), "abc".into()),
                ("authorization".into(), "secret".into()),
            ],
            body: Bytes::from_static(b"12345"),
            server_name: "127.0.0.1".into(),
            server_port: 8080,
            ..Default::default()
        };
        let env = req.cgi_env();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CONTENT_TYPE"), Some("text/plain"));
        assert_eq!(get("HTTP_X_TRACE_ID"), Some("abc"));
        assert_eq!(get("CONTENT_LENGTH"), Some("5"));
        assert_eq!(get("HTTP_AUTHORIZATION"), Some("secret"));
        assert_eq!(get("X_FULL_URL"), Some("http://127.0.0.1:8080/default/hello/a?x=1"));
    }
}
