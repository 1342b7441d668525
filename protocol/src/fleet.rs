//! The files of a fleet run (docs/fleet.md): the nonce set
//! `byok-verifier nonces` writes, one fresh nonce per host of a world,
//! which every host answers in its evidence and its receipt. JSON, because
//! a fleet engine (Ansible) reads it to hand each host its own nonce.
//!
//! ```json
//! {"type": "tpm-byok/nonces", "version": 1, "world": "eu",
//!  "created": 1796515200, "hosts": {"web-1": "hex…", "web-2": "hex…"}}
//! ```

use crate::nonce::Nonce;
use crate::world::{valid_id, WorldId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const NONCES_TYPE: &str = "tpm-byok/nonces";
/// The most hosts one nonce set names (a bound on what is read).
pub const MAX_HOSTS: usize = 1_000_000;
/// The largest nonce file read (about 200 bytes a host).
pub const MAX_NONCES_SIZE: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum NonceSetError {
    #[error("not a tpm-byok nonce file (JSON): {0}")]
    Json(String),
    #[error("the file's type is {0:?}, not \"tpm-byok/nonces\" (from `byok-verifier nonces`)")]
    WrongType(String),
    #[error("nonce file version {0} is not supported (this build reads version 1)")]
    Version(u64),
    #[error("host name {0:?} is not valid: 1-64 characters of A-Z a-z 0-9 . _ -")]
    BadHost(String),
    #[error("the nonce of host {host:?}: {source}")]
    BadNonce {
        host: String,
        #[source]
        source: crate::nonce::NonceError,
    },
    #[error("the nonce of host {0:?} is also the nonce of host {1:?}: each host needs its own")]
    Shared(String, String),
    #[error("{0} hosts: at most {MAX_HOSTS} in one nonce file")]
    TooMany(usize),
}

#[derive(Serialize, Deserialize)]
struct NonceFile {
    #[serde(rename = "type")]
    kind: String,
    version: u64,
    world: String,
    created: u64,
    hosts: BTreeMap<String, String>,
}

/// One fresh nonce per host of one world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceSet {
    pub world: WorldId,
    /// Unix time (seconds, UTC) it was made.
    pub created: u64,
    pub hosts: BTreeMap<String, Nonce>,
}

impl NonceSet {
    /// A fresh random 32-byte nonce for each of `hosts`.
    pub fn fresh(
        world: WorldId,
        hosts: impl IntoIterator<Item = String>,
        created: u64,
    ) -> NonceSet {
        let hosts = hosts
            .into_iter()
            .map(|h| {
                let mut b = vec![0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
                (
                    h,
                    Nonce::from_bytes(b).expect("32 bytes is a valid nonce length"),
                )
            })
            .collect();
        NonceSet {
            world,
            created,
            hosts,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let file = NonceFile {
            kind: NONCES_TYPE.into(),
            version: 1,
            world: self.world.to_string(),
            created: self.created,
            hosts: self
                .hosts
                .iter()
                .map(|(h, n)| (h.clone(), hex::encode(n.as_bytes())))
                .collect(),
        };
        let mut out = serde_json::to_vec_pretty(&file).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parse strictly: type, version, world and host names, every nonce
    /// valid and none shared by two hosts (a shared nonce would let one
    /// host's evidence stand in for another's).
    pub fn from_json(bytes: &[u8]) -> Result<NonceSet, NonceSetError> {
        let file: NonceFile =
            serde_json::from_slice(bytes).map_err(|e| NonceSetError::Json(e.to_string()))?;
        if file.kind != NONCES_TYPE {
            return Err(NonceSetError::WrongType(
                crate::text::inert(&file.kind).into(),
            ));
        }
        if file.version != 1 {
            return Err(NonceSetError::Version(file.version));
        }
        let world =
            WorldId::try_from(file.world).map_err(|e| NonceSetError::Json(e.to_string()))?;
        if file.hosts.len() > MAX_HOSTS {
            return Err(NonceSetError::TooMany(file.hosts.len()));
        }
        let mut hosts = BTreeMap::new();
        let mut seen: std::collections::HashMap<Vec<u8>, String> = Default::default();
        for (host, text) in file.hosts {
            if !valid_id(&host) {
                return Err(NonceSetError::BadHost(crate::text::inert(&host).into()));
            }
            let nonce = Nonce::parse_hex(&text).map_err(|source| NonceSetError::BadNonce {
                host: host.clone(),
                source,
            })?;
            if let Some(other) = seen.insert(nonce.as_bytes().to_vec(), host.clone()) {
                return Err(NonceSetError::Shared(host, other));
            }
            hosts.insert(host, nonce);
        }
        Ok(NonceSet {
            world,
            created: file.created,
            hosts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let w: WorldId = "eu".parse().unwrap();
        let set = NonceSet::fresh(w, ["a".to_string(), "b".to_string()], 7);
        let back = NonceSet::from_json(&set.to_json()).unwrap();
        assert_eq!(back, set);
        assert_ne!(set.hosts["a"], set.hosts["b"]);

        let doc = |hosts: &str| {
            format!(
                r#"{{"type":"tpm-byok/nonces","version":1,"world":"eu","created":1,"hosts":{hosts}}}"#
            )
        };
        let n = "00112233445566778899aabbccddeeff";
        assert!(NonceSet::from_json(doc(&format!(r#"{{"a":"{n}"}}"#)).as_bytes()).is_ok());
        for (bad, what) in [
            (
                doc(&format!(r#"{{"a":"{n}","b":"{n}"}}"#)),
                "also the nonce of host",
            ),
            (doc(r#"{"a":"0011"}"#), "2 bytes"),
            (doc(&format!(r#"{{"../x":"{n}"}}"#)), "not valid"),
            (doc(r#"{"a":"zz"}"#), "not hex"),
            (doc("[]"), "not a tpm-byok nonce file"),
            (
                r#"{"type":"tpm-byok/evidence","version":1,"world":"eu","created":1,"hosts":{}}"#
                    .into(),
                "not \"tpm-byok/nonces\"",
            ),
            (
                r#"{"type":"tpm-byok/nonces","version":2,"world":"eu","created":1,"hosts":{}}"#
                    .into(),
                "version 2",
            ),
        ] {
            let e = NonceSet::from_json(bad.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(what), "{bad}: {e}");
        }
    }
}
