//! Appliance UUIDs: the 36-character lowercase form the FMC and FTD use in certificate names,
//! peer folder names and `sftunnel.conf`.
//!
//! Random ones are version-4 style from aws-lc-rs's RNG (the appliance uses time-based ones,
//! but only the textual shape matters to sftunnel). Parsing accepts any RFC 4122 textual
//! UUID, upper or lower case, and keeps it lowercase so folder names and DNs agree.

use std::fmt;
use std::str::FromStr;

use super::PkiError;

/// A UUID in its canonical lowercase textual form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid([u8; 16]);

impl Uuid {
    /// A fresh random (version 4, RFC 4122 variant) UUID.
    pub fn random() -> Result<Self, PkiError> {
        let mut b = [0u8; 16];
        aws_lc_rs::rand::fill(&mut b).map_err(|_| PkiError::Random)?;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Ok(Uuid(b))
    }

    /// The 16 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode(self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

impl FromStr for Uuid {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PkiError::InvalidUuid {
            value: s.to_string(),
        };
        let b = s.as_bytes();
        if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
            return Err(bad());
        }
        let compact: String = s.chars().filter(|&c| c != '-').collect();
        let bytes = hex::decode(&compact).map_err(|_| bad())?;
        let arr: [u8; 16] = bytes.try_into().map_err(|_| bad())?;
        Ok(Uuid(arr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_uuids_are_v4_and_round_trip() {
        let u = Uuid::random().unwrap();
        let s = u.to_string();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(s.parse::<Uuid>().unwrap(), u);
        assert_ne!(Uuid::random().unwrap(), u);
    }

    #[test]
    fn parses_appliance_uuids_and_lowercases() {
        let u: Uuid = "CDB123C8-4347-11EF-ACA1-F3AA241412A1".parse().unwrap();
        assert_eq!(u.to_string(), "cdb123c8-4347-11ef-aca1-f3aa241412a1");
        for bad in [
            "",
            "cdb123c8434711efaca1f3aa241412a1",
            "cdb123c8-4347-11ef-aca1-f3aa241412a",
            "gdb123c8-4347-11ef-aca1-f3aa241412a1",
            "cdb123c8-4347-11ef-aca1-f3aa241412a1x",
            "cdb123c8+4347-11ef-aca1-f3aa241412a1",
        ] {
            assert!(bad.parse::<Uuid>().is_err(), "{bad}");
        }
    }
}
