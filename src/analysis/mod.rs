//! analysis: not yet written.
