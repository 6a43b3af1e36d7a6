//! The properties the fuzz targets check, in one file that the main crate's
//! regression test (tests/it/fuzz_regressions.rs) also compiles, so every
//! input kept in fuzz/regressions/ is re-checked by the normal test suite.

pub mod properties;
