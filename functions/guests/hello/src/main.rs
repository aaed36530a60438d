//! The smallest useful weft function: a WAGI-style guest with no dependencies.
//!
//! The request arrives as CGI variables in the environment and the body on stdin;
//! the response is written to stdout as CGI headers, a blank line and the body.

use std::env;
use std::io::{self, Read, Write};

fn main() {
    // GREETING comes from the Function's `spec.template.spec.env`, so changing it
    // and applying again gives a new revision that answers differently.
    let greeting = env::var("GREETING").unwrap_or_else(|_| "Hello".to_string());
    let method = env::var("REQUEST_METHOD").unwrap_or_default();
    let path = env::var("PATH_INFO").unwrap_or_default();
    let mut body = String::new();
    // A body that is not UTF-8 is counted, not echoed.
    let read = io::stdin().read_to_string(&mut body).map(|_| body.len()).unwrap_or(0);

    let mut out = io::stdout().lock();
    let _ = write!(
        out,
        "Content-Type: text/plain; charset=utf-8\n\n{greeting} from weft! ({method} {path}, {read} bytes)\n"
    );
}
