//! Placeholder: filled by the dkv-mio issue.
