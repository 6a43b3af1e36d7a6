//! Fuzz target: see the property `config_toml` in src/properties.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| queuectl_fuzz::properties::config_toml(data));
