//! pki: not yet written.
