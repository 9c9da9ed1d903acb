//! Fuzzes the one tar reader and the whole layer apply path on the same
//! bytes (plain, or gzip/zstd/bzip2/xz when the bytes start so). The only
//! rule: errors are fine, panics are bugs, and nothing lands outside the
//! layer directory (`strata::fuzz::layer_apply` checks a canary).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strata::fuzz::tar_reader(data);
    strata::fuzz::layer_apply(data);
});
