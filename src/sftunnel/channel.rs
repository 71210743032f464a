//! The two channels of an sftunnel peer: each its own TLS connection to the same peer.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A channel of the tunnel to one peer, as `sftunnel-status-brief` names them: control
/// (`Channel-A`, `CONTROL`: registration, policy, pushes) and events (`Channel-B`, `EVENT`:
/// the device's events). The device opens both; a peer is down when both are. JSON:
/// `control`, `events`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// `Channel-A`: registration, policy, pushes.
    Control,
    /// `Channel-B`: the device's events.
    Events,
}

impl Channel {
    /// Both, in the order the device opens them.
    pub const ALL: [Channel; 2] = [Channel::Control, Channel::Events];

    /// `Channel-A`, `Channel-B`.
    pub fn label(self) -> &'static str {
        match self {
            Channel::Control => "Channel-A",
            Channel::Events => "Channel-B",
        }
    }

    /// The type `sftunnel-status-brief` prints: `CONTROL`, `EVENT`.
    pub fn kind(self) -> &'static str {
        match self {
            Channel::Control => "CONTROL",
            Channel::Events => "EVENT",
        }
    }

    /// `control`, `events`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Control => "control",
            Channel::Events => "events",
        }
    }

    /// 0 for control, 1 for events (an index into per-channel arrays).
    pub fn index(self) -> usize {
        match self {
            Channel::Control => 0,
            Channel::Events => 1,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
