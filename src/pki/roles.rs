//! roles: later
