//! judge: not yet written.
