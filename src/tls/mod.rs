//! tls: not yet written.
