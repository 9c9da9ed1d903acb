//! Fuzzes image reference and digest parsing: errors are fine, panics are
//! bugs, and whatever parses prints back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        strata::fuzz::reference_and_digest(text);
    }
});
