//! The `dkv-sim` command refuses bad arguments with a message and exit code 2,
//! before running anything, and never panics on them.

use std::process::Command;

/// Runs the binary with `args`; returns its exit code and standard error.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dkv-sim"))
        .args(args)
        .output()
        .expect("dkv-sim starts");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn assert_refused(args: &[&str], says: &str) {
    let (code, err) = run(args);
    assert_eq!(code, Some(2), "{args:?} exited {code:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(err.contains(says), "{args:?} should say {says:?}: {err}");
    assert!(err.contains("usage:"), "{args:?} prints no usage: {err}");
}

#[test]
fn node_counts_below_two_or_above_the_maximum_are_refused() {
    for n in ["0", "1", "10001", "99999999999"] {
        assert_refused(&["--seed", "1", "--nodes", n], "out of range");
    }
}

#[test]
fn durations_below_the_minimum_are_refused_not_silently_raised() {
    for d in ["0", "1", "34.9"] {
        assert_refused(&["--seed", "1", "--duration", d], "too short");
    }
}

#[test]
fn numbers_that_are_not_numbers_are_refused() {
    assert_refused(&["--seed", "-1"], "not a number");
    assert_refused(&["--nodes", "ten"], "not a number");
    assert_refused(&["--seeds", "1e3"], "not a number");
    assert_refused(&["--seed", "18446744073709551616"], "not a number");
    assert_refused(&["--duration", "nan"], "bad duration");
    assert_refused(&["--duration", "inf"], "bad duration");
    assert_refused(&["--duration", "-40"], "bad duration");
}

#[test]
fn counts_that_would_run_nothing_are_refused() {
    assert_refused(&["--seeds", "0"], "run nothing");
    assert_refused(&["--seeds-for-secs", "0"], "run nothing");
    assert_refused(&["--seeds", "3", "--seeds-for-secs", "5"], "exclude");
    assert_refused(&["--seeds-for-secs", "5", "--jobs", "0"], "out of range");
    assert_refused(
        &["--seed", "3", "--jobs", "2"],
        "goes with --seeds-for-secs",
    );
}

#[test]
fn a_flag_without_its_value_or_an_unknown_flag_is_refused() {
    assert_refused(&["--seed"], "needs a value");
    assert_refused(&["--nodes"], "needs a value");
    assert_refused(&["--bogus"], "unknown argument");
}

/// The `PASS seed … hash …` line of a run, which must exist.
fn pass_line(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dkv-sim"))
        .args(args)
        .output()
        .expect("dkv-sim starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{args:?} failed:\n{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("PASS seed"));
    let line = line.unwrap_or_else(|| panic!("no PASS line:\n{stdout}"));
    // The speed at the end of the line is wall-clock and may differ.
    line.split(',')
        .next()
        .expect("split yields one part")
        .to_owned()
}

#[test]
fn a_seed_gives_the_same_trace_hash_in_two_separate_processes() {
    let args = [
        "--seed",
        "5",
        "--nodes",
        "4",
        "--duration",
        "35",
        "--no-determinism-check",
        "--quiet",
    ];
    let first = pass_line(&args);
    assert!(first.contains(" hash "), "{first}");
    assert_eq!(first, pass_line(&args));
}

#[test]
fn seeds_run_on_several_threads_each_hash_as_when_run_alone() {
    let out = Command::new(env!("CARGO_BIN_EXE_dkv-sim"))
        .args(["--seeds-for-secs", "1", "--jobs", "2", "--seed", "9"])
        .args(["--nodes", "3", "--duration", "35", "--quiet"])
        .output()
        .expect("dkv-sim starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "failed:\n{stdout}");
    assert!(stdout.contains("on 2 threads"), "{stdout}");
    let passes: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("PASS seed"))
        .collect();
    assert!(passes.len() >= 2, "at least one seed per thread:\n{stdout}");
    for line in passes.iter().take(3) {
        let seed = line.split(' ').nth(2).expect("PASS seed <seed>");
        let alone = pass_line(&[
            "--seed",
            seed,
            "--nodes",
            "3",
            "--duration",
            "35",
            "--no-determinism-check",
            "--quiet",
        ]);
        assert!(line.starts_with(&alone), "{line} vs alone: {alone}");
    }
}
