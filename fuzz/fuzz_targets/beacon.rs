//! libFuzzer entry point of the `beacon` target; the checks live in
//! [`dkv_fuzz::beacon`] so that `cargo test` replays the corpus without libFuzzer.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dkv_fuzz::beacon(data));
