//! Placeholder: filled by the dkv-sim issue.
