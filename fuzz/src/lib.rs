//! Placeholder: filled by the fuzz issue.
