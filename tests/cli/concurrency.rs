//! Placeholder: filled in by the concurrency work.
