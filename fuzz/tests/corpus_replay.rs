//! Replays every checked-in input — the seeds, the fuzzed corpus and the regression
//! inputs of past crashes — through its target on stable Rust, without libFuzzer.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The directories whose files are inputs for `target`.
fn input_dirs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    ["seeds", "corpus", "regressions"]
        .iter()
        .map(|dir| root.join(dir).join(target))
        .collect()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn corpus_replay_every_checked_in_input_passes_its_target() {
    let mut failures = Vec::new();
    for (target, run) in dkv_fuzz::TARGETS {
        let mut replayed = 0;
        for dir in input_dirs(target) {
            for file in files(&dir) {
                let data = std::fs::read(&file).expect("readable corpus file");
                if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
                    failures.push(file.display().to_string());
                }
                replayed += 1;
            }
        }
        println!("{target}: replayed {replayed} inputs");
        assert!(replayed > 0, "no inputs at all for target {target}");
    }
    assert!(
        failures.is_empty(),
        "inputs that fail their target: {failures:#?}"
    );
}

#[test]
fn every_seed_passes_its_target() {
    for seed in dkv_fuzz::seeds::all() {
        let (_, run) = dkv_fuzz::TARGETS
            .into_iter()
            .find(|(name, _)| *name == seed.target)
            .expect("seed for a known target");
        run(&seed.data);
    }
}
