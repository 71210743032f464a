//! tunnel: not yet written.
