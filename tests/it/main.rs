//! One integration-test binary; each module tests one behaviour area end to end on real bytes.

mod check;
mod cli_polish;
mod common;
mod hostile;
mod judge;
mod net;
mod pki;
mod truth;
mod tunnel;
