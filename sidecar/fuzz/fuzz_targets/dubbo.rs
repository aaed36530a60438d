//! Any bytes a client or an instance sends must decode into a frame or a clear
//! error — never a panic, an out-of-bounds body or a request for more than
//! MAX_FRAME bytes — and a decoded frame must survive an id rewrite and yield
//! a well-formed error reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_sidecar::proto::{dubbo::Dubbo, check_codec};

fuzz_target!(|data: &[u8]| check_codec(&Dubbo, data));
