//! One integration-test binary; each module tests one behaviour area end to end on real bytes.

mod analyze;
mod check;
mod cli_polish;
mod common;
mod differential;
mod faults;
mod hostile;
mod judge;
mod keylog;
mod lab;
mod net;
mod own_peers;
mod pki;
mod renew;
mod truth;
mod tunnel;
