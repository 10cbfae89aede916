//! Replays every checked-in input — the seeds, the fuzzed corpus and the regression
//! inputs of past crashes — through its target on stable Rust, without libFuzzer.
//!
//! An input is `<dir>/<target>/<file>` for `<dir>` in [`INPUT_DIRS`]. Anything else
//! under those directories (a crash copied to `regressions/` instead of
//! `regressions/node/`, a misspelt target directory, a nested folder) is an error,
//! not silently skipped; only a `README.md` at the top of a directory is allowed.

use dkv_fuzz::Target;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The directories of inputs, each with one subdirectory per target.
const INPUT_DIRS: [&str; 3] = ["seeds", "corpus", "regressions"];
/// The directories that must hold at least one input for every target.
const NON_EMPTY: [&str; 2] = ["seeds", "corpus"];

/// The inputs under `root`, by target name, in sorted order; or the paths that are
/// not a target's input, and the (directory, target) pairs of [`NON_EMPTY`] with no
/// input.
fn collect(
    root: &Path,
    targets: &[(&str, Target)],
) -> (BTreeMap<String, Vec<PathBuf>>, Vec<String>) {
    let mut inputs: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut problems = Vec::new();
    for dir in INPUT_DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            problems.push(format!("{dir}/ is missing"));
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable directory entry").path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let is_target = targets.iter().any(|(t, _)| *t == name);
            if path.is_dir() && is_target {
                for file in std::fs::read_dir(&path).expect("readable target directory") {
                    let file = file.expect("readable directory entry").path();
                    if file.is_file() {
                        inputs.entry(name.to_string()).or_default().push(file);
                    } else {
                        problems.push(format!("not an input file: {}", file.display()));
                    }
                }
            } else if !(path.is_file() && name == "README.md") {
                problems.push(format!("not under a target directory: {}", path.display()));
            }
        }
        for (target, _) in targets {
            let dir_path = root.join(dir).join(target);
            let empty = std::fs::read_dir(&dir_path).map_or(true, |mut e| e.next().is_none());
            if NON_EMPTY.contains(&dir) && empty {
                problems.push(format!("no inputs in {}", dir_path.display()));
            }
        }
    }
    for files in inputs.values_mut() {
        files.sort();
    }
    (inputs, problems)
}

/// Runs every input through its target; returns the inputs that made it panic, and
/// how many inputs each target replayed.
fn replay(
    inputs: &BTreeMap<String, Vec<PathBuf>>,
    targets: &[(&str, Target)],
) -> (Vec<String>, BTreeMap<String, usize>) {
    let mut failures = Vec::new();
    let mut counts = BTreeMap::new();
    for (target, run) in targets {
        let files = inputs.get(*target).map_or(&[][..], Vec::as_slice);
        for file in files {
            let data = std::fs::read(file).expect("readable corpus file");
            if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
                failures.push(file.display().to_string());
            }
        }
        counts.insert(target.to_string(), files.len());
    }
    (failures, counts)
}

#[test]
fn corpus_replay_every_checked_in_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (inputs, problems) = collect(root, &dkv_fuzz::TARGETS);
    assert!(
        problems.is_empty(),
        "the corpus has inputs that would not be replayed: {problems:#?}"
    );
    let (failures, counts) = replay(&inputs, &dkv_fuzz::TARGETS);
    for (target, n) in &counts {
        println!("{target}: replayed {n} inputs");
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

/// A scratch corpus tree under the system's temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("dkv-fuzz-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in INPUT_DIRS {
            std::fs::create_dir_all(dir.join(d).join("t")).expect("mkdir");
            if NON_EMPTY.contains(&d) {
                std::fs::write(dir.join(d).join("t").join("ok"), b"fine").expect("write");
            }
        }
        Scratch(dir)
    }

    fn write(&self, rel: &str, data: &[u8]) {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(path, data).expect("write");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A stand-in target that fails on exactly the input `boom`.
fn fails_on_boom(data: &[u8]) {
    assert_ne!(data, b"boom", "the stand-in target fails on boom");
}

#[test]
fn replay_reports_inputs_outside_a_target_directory_instead_of_skipping_them() {
    let scratch = Scratch::new("stray");
    let targets: [(&str, Target); 1] = [("t", fails_on_boom)];
    scratch.write("regressions/README.md", b"docs are fine");
    scratch.write("regressions/crash-1234", b"boom");
    scratch.write("corpus/tt/misspelt", b"boom");
    scratch.write("seeds/t/nested/deeper", b"boom");
    let (inputs, problems) = collect(&scratch.0, &targets);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems.iter().any(|p| p.ends_with("crash-1234")));
    assert!(problems.iter().any(|p| p.ends_with("tt")));
    assert!(problems.iter().any(|p| p.ends_with("nested")));
    assert_eq!(inputs["t"].len(), 2, "the well-placed inputs still count");
}

#[test]
fn replay_reports_a_target_with_no_seeds_or_no_corpus() {
    let scratch = Scratch::new("empty");
    let targets: [(&str, Target); 1] = [("t", fails_on_boom)];
    std::fs::remove_file(scratch.0.join("corpus/t/ok")).expect("rm");
    std::fs::remove_dir_all(scratch.0.join("regressions")).expect("rm");
    let (_, problems) = collect(&scratch.0, &targets);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("no inputs in")));
    assert!(problems
        .iter()
        .any(|p| p.contains("regressions/ is missing")));
}

#[test]
fn replay_reports_every_input_its_target_fails_on_in_any_directory() {
    let scratch = Scratch::new("fail");
    let targets: [(&str, Target); 1] = [("t", fails_on_boom)];
    scratch.write("regressions/t/crash-1", b"boom");
    scratch.write("corpus/t/found", b"boom");
    let (inputs, problems) = collect(&scratch.0, &targets);
    assert!(problems.is_empty(), "{problems:#?}");
    let (failures, counts) = replay(&inputs, &targets);
    assert_eq!(counts["t"], 4);
    assert_eq!(failures.len(), 2, "{failures:#?}");
    assert!(failures
        .iter()
        .any(|f| f.ends_with("regressions/t/crash-1")));
    assert!(failures.iter().any(|f| f.ends_with("corpus/t/found")));
}
