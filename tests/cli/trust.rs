//! Placeholder: filled in by the owner and folder checks work.
