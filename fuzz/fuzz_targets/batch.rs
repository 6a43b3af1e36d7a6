//! Fuzz target: see the property `batch` in src/properties.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| queuectl_fuzz::properties::batch(data));
