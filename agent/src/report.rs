//! The agent's JSON shapes shared by several commands (docs/json.md lists
//! every JSON output of both binaries): a stored key as `keys list`,
//! `keys show` and `import` report it.

use crate::error::{AgentError, Result};
use crate::state::KeyState;
use byok_protocol::text::inert;
use serde::Serialize;

#[derive(Serialize)]
pub struct KeyReport {
    pub name: String,
    pub world: String,
    pub algorithm: String,
    /// The TPM object's key type ("ECC NIST P-256", "RSA-2048", …).
    #[serde(rename = "type")]
    pub kind: String,
    pub origin: String,
    /// The TPM object's Name (hex).
    pub tpm_name: String,
    pub attributes: Vec<&'static str>,
    /// Hex; empty when the key is used with its auth value.
    pub auth_policy: String,
    pub pcrs: Option<String>,
    pub label: Option<String>,
    /// The retired KEK it lives under, if not the world's current one.
    pub kek_handle: Option<String>,
}

impl KeyReport {
    pub fn of(k: &KeyState) -> KeyReport {
        let p = &k.public;
        KeyReport {
            name: k.name.clone(),
            world: k.world.to_string(),
            algorithm: inert(&k.alg).to_string(),
            kind: p.describe_key(),
            origin: k.origin.to_string(),
            tpm_name: hex::encode(p.name()),
            attributes: byok_protocol::tpm::attr::names(p.attributes),
            auth_policy: hex::encode(&p.auth_policy),
            pcrs: k.policy_pcrs.as_ref().map(|s| s.describe()),
            label: k.label.as_deref().map(|l| inert(l).to_string()),
            kek_handle: k.kek_handle.map(|h| format!("{h:#010x}")),
        }
    }
}

/// One JSON document on standard output (printed even with -q: it is the
/// result asked for).
pub fn print_json<T: Serialize>(v: &T) -> Result<()> {
    let text = serde_json::to_string(v).map_err(|e| AgentError::Protocol(e.to_string()))?;
    println!("{text}");
    Ok(())
}
