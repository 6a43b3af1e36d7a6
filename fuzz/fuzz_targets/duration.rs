//! Fuzz target: see the property `duration` in src/properties.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| queuectl_fuzz::properties::duration(data));
