//! `queuectl bench`: runs in its own throwaway directory, leaves the user's
//! queue alone, and reports in the documented JSON shape. Figures are never
//! asserted (they depend on the machine); only the report's structure is.

use crate::support::TestEnv;

#[test]
fn bench_reports_json_in_a_throwaway_dir_and_leaves_the_queue_alone() {
    let env = TestEnv::new();
    let scratch = env.path("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let report = env.json(&[
        "bench",
        "--quick",
        "--scenario",
        "store",
        "--jobs",
        "40",
        "--dir",
        scratch.to_str().unwrap(),
    ]);
    assert_eq!(report["mode"], "quick");
    assert_eq!(report["durability"], "full");
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(report["date"].as_str().unwrap().ends_with('Z'));
    assert_eq!(report["failures"].as_array().unwrap().len(), 0);
    let rows = report["results"].as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        assert_eq!(row["scenario"], "store");
        for key in ["metric", "unit", "baseline_what", "target_text"] {
            assert!(row[key].is_string(), "{key} in {row}");
        }
        assert!(row["figure"].is_number(), "{row}");
        assert!(row["baseline"].is_number(), "{row}");
        assert!(row["met"].is_boolean(), "{row}");
    }
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "the bench removes its directory"
    );
    assert!(!env.db().exists(), "the configured queue was never created");
}

#[test]
fn bench_rejects_unknown_scenarios() {
    let env = TestEnv::new();
    let out = env.run(&["bench", "--scenario", "warp-speed"]);
    assert_eq!(out.status.code(), Some(2));
}
