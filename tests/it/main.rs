//! One integration-test binary; each module tests one behaviour area end to end on real bytes.

mod analyze;
mod check;
mod cli_polish;
mod common;
mod crash;
mod differential;
mod encap;
mod faults;
mod ha;
mod hostile;
mod judge;
mod keylog;
mod lab;
mod local_trust;
mod monitor;
mod net;
mod own_peers;
mod peers;
mod pki;
mod renew;
mod reports;
mod resent;
mod truth;
mod tunnel;
mod tunnel_ways;
mod words;
