//! Fuzz target: see the property `job_json` in src/properties.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| queuectl_fuzz::properties::job_json(data));
