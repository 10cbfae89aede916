//! The three targets; each module owns one target and the invariants it checks.

pub mod beacon;
pub mod decode;
pub mod node;

use dkv_proto::Stats;

/// Asserts that no counter went down between two snapshots (`Stats` promises every
/// field only grows).
pub(crate) fn assert_stats_monotonic(before: &Stats, after: &Stats) {
    for ((name, old), (_, new)) in before.iter().zip(after.iter()) {
        assert!(new >= old, "stats counter {name} went down: {old} -> {new}");
    }
}

/// The counters that moved between two snapshots, with how much.
pub(crate) fn stats_delta(before: &Stats, after: &Stats) -> Vec<(&'static str, u64)> {
    before
        .iter()
        .zip(after.iter())
        .filter(|((_, old), (_, new))| new != old)
        .map(|((name, old), (_, new))| (name, new.saturating_sub(old)))
        .collect()
}
