//! libFuzzer entry point of the `seal` target; the checks live in
//! [`dkv_fuzz::seal`] so that `cargo test` replays the corpus without libFuzzer.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dkv_fuzz::seal(data));
