//! The quote's PCRs: the selection is the evidence's list, the digest
//! recomputes from the values with the quote's signing hash, and the values
//! equal the policy's reference values.

use crate::error::VerifyError;
use crate::policy::Policy;
use byok_protocol::attest::{Attested, TpmsAttest};
use byok_protocol::formats::Evidence;
use byok_protocol::hash::HashAlg;
use byok_protocol::tpm::alg;
use std::collections::BTreeMap;

/// The policy's reference values: each must be quoted and equal.
pub fn check_reference_pcrs(
    pcrs: &BTreeMap<u32, Vec<u8>>,
    policy: &Policy,
) -> Result<(), VerifyError> {
    for (bank, refs) in &policy.reference_pcrs {
        for (index, expected) in refs {
            // This build quotes the sha256 bank only.
            let found = if *bank == HashAlg::Sha256 {
                pcrs.get(index)
            } else {
                None
            };
            match found {
                None => {
                    return Err(VerifyError::PcrNotQuoted {
                        bank: *bank,
                        index: *index,
                    })
                }
                Some(v) if v != expected => {
                    return Err(VerifyError::PcrValueMismatch {
                        bank: *bank,
                        index: *index,
                        expected: hex::encode(expected),
                        found: hex::encode(v),
                    })
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

fn selection_text(pcrs: &[u32]) -> String {
    pcrs.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Quote: PCR selection equals the evidence's list; digest recomputes with the
/// quote's signing hash over the values in selection order.
pub fn check_pcrs(
    attest: &TpmsAttest,
    sig_hash: HashAlg,
    ev: &Evidence,
) -> Result<BTreeMap<u32, Vec<u8>>, VerifyError> {
    let Attested::Quote {
        selection,
        pcr_digest,
    } = &attest.attested
    else {
        return Err(VerifyError::AttestType {
            what: "quote",
            found: attest.attest_type.into(),
            expected: "TPM_ST_ATTEST_QUOTE",
        });
    };
    let quoted: Vec<(u16, &Vec<u32>)> = selection
        .iter()
        .filter(|s| !s.pcrs.is_empty())
        .map(|s| (s.hash, &s.pcrs))
        .collect();
    if quoted.is_empty() {
        return Err(VerifyError::PcrSelectionEmpty);
    }
    let listed: Vec<(HashAlg, Vec<u32>)> = ev
        .quote
        .pcrs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(b, v)| (*b, v.keys().copied().collect()))
        .collect();
    // The selections in words, for the error only.
    let mismatch = || VerifyError::PcrSelectionMismatch {
        quoted: quoted
            .iter()
            .map(|(h, p)| {
                format!(
                    "{}:{}",
                    HashAlg::from_tpm(*h).map(|h| h.name()).unwrap_or("?"),
                    selection_text(p)
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        listed: listed
            .iter()
            .map(|(b, p)| format!("{b}:{}", selection_text(p)))
            .collect::<Vec<_>>()
            .join(" "),
    };
    // This build checks the sha256 bank only.
    if quoted.len() != 1
        || listed.len() != 1
        || quoted[0].0 != alg::SHA256
        || listed[0].0 != HashAlg::Sha256
        || *quoted[0].1 != listed[0].1
    {
        return Err(mismatch());
    }
    let bank = &ev.quote.pcrs[&HashAlg::Sha256];
    let mut values = BTreeMap::new();
    let mut parts: Vec<&[u8]> = Vec::new();
    for i in quoted[0].1.iter() {
        let v = &bank[i];
        if v.len() != 32 {
            return Err(VerifyError::PcrValueLength {
                bank: HashAlg::Sha256,
                index: *i,
                len: v.len(),
            });
        }
        parts.push(v);
        values.insert(*i, v.to_vec());
    }
    if sig_hash.digest(&parts) != *pcr_digest {
        return Err(VerifyError::PcrDigestMismatch);
    }
    Ok(values)
}
