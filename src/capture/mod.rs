//! capture: not yet written.
