//! One integration-test binary; each module tests one behaviour area end to end on real bytes.

mod common;
mod judge;
mod pki;
mod tunnel;
