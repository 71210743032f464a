//! net: not yet written.
