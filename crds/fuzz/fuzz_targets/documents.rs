//! What users apply (and what the control API receives) is untrusted: any text
//! must parse into validated resources or a clear error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(docs) = weft_crds::parse_documents(text) {
            assert!(!docs.is_empty());
        }
    }
});
