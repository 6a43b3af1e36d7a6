//! The fuzz targets' properties (fuzz/src/properties.rs, compiled here as
//! it is) on every input kept in fuzz/inputs/<target>/: the fuzzers' seeds
//! and each input that once broke a property. The fuzzers themselves need
//! nightly features and minutes (`.ci/run` runs them); this runs in the
//! normal suite.

#[path = "../../fuzz/src/properties.rs"]
mod properties;

use std::path::Path;

fn replay(target: &str, property: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/inputs")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no inputs in {}", dir.display());
    for input in inputs {
        // Named before the check, so a failure says which input broke it.
        eprintln!("{target}: {}", input.display());
        property(&std::fs::read(&input).unwrap());
    }
}

#[test]
fn job_json_inputs_keep_the_fuzzed_properties() {
    replay("job_json", properties::job_json);
}

#[test]
fn batch_inputs_keep_the_fuzzed_properties() {
    replay("batch", properties::batch);
}

#[test]
fn config_toml_inputs_keep_the_fuzzed_properties() {
    replay("config_toml", properties::config_toml);
}

#[test]
fn duration_inputs_keep_the_fuzzed_properties() {
    replay("duration", properties::duration);
}
