//! inventory: what a site's certificates say about its appliances, for the two jobs after
//! "is it expired?": watching them (`sfdiag check`, a monitoring plugin) and planning their
//! renewal (`sfdiag inventory`).
//!
//! It owns reading the inputs as a whole (`collect`: files, folders, appliance trees, PKCS#12
//! bundles, what was passed over), the verdicts and their ranking (`check`: expiry by
//! `pki::expiry`, chains by `judge`, the appliance's one-liner and health-alert decisions), the
//! cross-check of an appliance tree (`peers`: `ca_mismatch`, `chain`, `key_mismatch`), what
//! captures say about each appliance (`capture`, through `analysis`), and the renewal plan
//! (`plan`: one entry per FMC, device and HA secondary, and its action). Layout is `report`'s
//! (`report::check`, `report::inventory`); flags are `cli`'s.
//!
//! Why a module of its own, and not under `pki` or `analysis`: it needs both (the appliance
//! layout and the lab PKI's names from `pki`, verdicts from `judge`, captures from
//! `analysis`), and neither may depend on the other. So it sits above them, like `lab`:
//! `inventory -> pki, cert, judge, analysis`, and `report -> inventory` types. It reads the
//! files it is given and nothing else, writes nothing, and never reads the clock: `at` is an
//! argument.

#![warn(missing_docs)] // every pub item of inventory says what it holds (issue 10)

pub mod capture;
pub mod check;
pub mod collect;
pub mod peers;
pub mod plan;

pub use check::{CheckOptions, CheckReport, Checked, HealthAlert, Item, OneLiner, check};
pub use collect::{Collection, FileCert, SkipReason, Skipped, Unreadable, collect};
pub use peers::{Facts, PeerProblem, ProblemKind, cross_check};
pub use plan::{Action, Entry, Inventory, Reason, plan};
