//! The part an appliance plays in sftunnel, and what a certificate's subject says about it.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// What part an appliance plays: in the lab PKI's layout and `sftunnel.conf`
/// (`APPLIANCE_ROLE`), and in the tunnel's HELLO.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The (primary) FMC: holds the InternalCA, serves 8305.
    Fmc,
    /// A managed FTD.
    Device,
    /// A secondary FMC in HA, managed by the primary like a device.
    HaSecondary,
}

impl Role {
    /// The role a certificate issued for this appliance shows ([`SubjectRole`]): an HA secondary
    /// gets a managed peer's certificate, like a device.
    pub fn subject_role(self) -> SubjectRole {
        match self {
            Role::Fmc => SubjectRole::Fmc,
            Role::Device | Role::HaSecondary => SubjectRole::Ftd,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Fmc => "fmc",
            Role::Device => "device",
            Role::HaSecondary => "ha-secondary",
        })
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fmc" => Ok(Role::Fmc),
            "device" => Ok(Role::Device),
            "ha-secondary" => Ok(Role::HaSecondary),
            _ => Err(format!(
                "unknown role {s:?} (expected fmc, device or ha-secondary)"
            )),
        }
    }
}

/// The part a certificate plays in an sftunnel PKI, read from its subject (`title`,
/// `generationQualifier`). A certificate cannot tell a device from an HA secondary (both get
/// `generationQualifier=sftunnel_<uuid>`), so both are [`SubjectRole::Ftd`]; the InternalCA and
/// certificates of no sftunnel shape have roles of their own. JSON: `internal_ca`, `fmc`,
/// `ftd`, `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectRole {
    /// `title=InternalCA`: the FMC's CA.
    InternalCa,
    /// `generationQualifier=sftunnel`: the FMC's own certificate.
    Fmc,
    /// `generationQualifier=sftunnel_<uuid>`: a managed peer's (device or HA secondary).
    Ftd,
    /// Anything else.
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for r in [Role::Fmc, Role::Device, Role::HaSecondary] {
            assert_eq!(r.to_string().parse::<Role>(), Ok(r));
        }
        assert!("ftd".parse::<Role>().unwrap_err().contains("ha-secondary"));
    }

    #[test]
    fn an_ha_secondary_holds_a_managed_peers_certificate() {
        assert_eq!(Role::Fmc.subject_role(), SubjectRole::Fmc);
        assert_eq!(Role::Device.subject_role(), SubjectRole::Ftd);
        assert_eq!(Role::HaSecondary.subject_role(), SubjectRole::Ftd);
        assert_eq!(
            serde_json::to_string(&SubjectRole::InternalCa).unwrap(),
            "\"internal_ca\""
        );
    }
}
