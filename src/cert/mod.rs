//! cert: not yet written.
