//! Protocol detection on the shared port sees a connection's first bytes,
//! whatever they are: it must decide or ask for more, never panic, and never
//! ask for more past its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_sidecar::proto::{codecs, detect, detect::MAX_HEAD};

fuzz_target!(|data: &[u8]| {
    let all = codecs();
    let head = &data[..data.len().min(MAX_HEAD)];
    if detect(head, all).is_none() {
        assert!(head.len() < MAX_HEAD, "undecided after {MAX_HEAD} bytes");
    }
});
