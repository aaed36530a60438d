//! Guest output is untrusted: whatever bytes a function writes, parsing them as
//! a CGI response must return a response or an error, never panic, and a
//! parsed status must be a valid HTTP status.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(resp) = weft_functions::cgi::parse_output(data) {
        assert!((100..=599).contains(&resp.status));
        assert!(resp.body.len() <= data.len());
    }
});
