//! `inspect`: decode any tpm-byok file for people (text) and programs (JSON).
//! Nothing here is verified; `verify` and `check-receipt` do that.

use byok_protocol::attest::{Attested, TpmsAttest};
use byok_protocol::formats::{document_type, Document, Evidence, Receipt, TransferPackage};
use byok_protocol::public::TpmtPublic;
use byok_protocol::tpm::attr;
use serde_json::{json, Value};

fn public_json(bytes: &[u8]) -> Value {
    match TpmtPublic::parse_tpm2b(bytes) {
        Ok(p) => json!({
            "key": p.describe_key(),
            "name": hex::encode(p.name()),
            "attributes": attr::names(p.attributes),
            "auth_policy": hex::encode(&p.auth_policy),
        }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

fn attest_json(bytes: &[u8]) -> Value {
    match TpmsAttest::parse(bytes) {
        Ok(a) => {
            let body = match &a.attested {
                Attested::Certify {
                    name,
                    qualified_name,
                } => json!({
                    "certified_name": hex::encode(name),
                    "qualified_name": hex::encode(qualified_name),
                }),
                Attested::Quote {
                    selection,
                    pcr_digest,
                } => json!({
                    "selection": selection.iter().map(|s| json!({"hash": format!("{:#06x}", s.hash), "pcrs": s.pcrs})).collect::<Vec<_>>(),
                    "pcr_digest": hex::encode(pcr_digest),
                }),
            };
            json!({
                "type": format!("{:#06x}", a.attest_type),
                "extra_data": hex::encode(&a.extra_data),
                "qualified_signer": hex::encode(&a.qualified_signer),
                "clock": a.clock_info.clock,
                "reset_count": a.clock_info.reset_count,
                "restart_count": a.clock_info.restart_count,
                "safe": a.clock_info.safe,
                "firmware_version": format!("{:#018x}", a.firmware_version),
                "attested": body,
            })
        }
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// An Azure-style `.byok` document (JSON): its header and ciphertext size.
fn byok_json(bytes: &[u8]) -> Result<Value, String> {
    let doc = byok_protocol::byok::ByokFile::from_json(bytes).map_err(|e| e.to_string())?;
    let ct = doc.ciphertext_bytes().map_err(|e| e.to_string())?;
    Ok(json!({
        "type": "byok",
        "schema_version": doc.schema_version,
        "kid": doc.header.kid,
        "alg": doc.header.alg,
        "enc": doc.header.enc.name(),
        "ciphertext_bytes": ct.len(),
        "generator": doc.generator,
    }))
}

/// Decode `bytes` into a JSON description, or an error line.
pub fn describe(bytes: &[u8]) -> Result<Value, String> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return byok_json(bytes);
    }
    match document_type(bytes).as_deref() {
        Some(byok_protocol::formats::EVIDENCE_TYPE) => {
            let ev = Evidence::from_cbor(bytes).map_err(|e| e.to_string())?;
            let pcrs: serde_json::Map<String, Value> = ev
                .quote
                .pcrs
                .iter()
                .map(|(bank, v)| {
                    (
                        bank.to_string(),
                        json!(v
                            .iter()
                            .map(|(i, d)| (i.to_string(), json!(hex::encode(d))))
                            .collect::<serde_json::Map<_, _>>()),
                    )
                })
                .collect();
            Ok(json!({
                "type": ev.kind, "version": ev.version, "world": ev.world, "nonce": hex::encode(&ev.nonce),
                "tpm": {"manufacturer": ev.tpm.manufacturer, "vendor": ev.tpm.vendor, "firmware": format!("{:#018x}", ev.tpm.firmware)},
                "ek": {"public": public_json(&ev.ek.public), "certificate_subject": crate::verify::ek_subject(&ev), "chain_length": ev.ek.chain.len()},
                "ak": {"public": public_json(&ev.ak.public)},
                "kek": {"public": public_json(&ev.kek.public), "certify": attest_json(&ev.kek.certify.attest)},
                "quote": {"attest": attest_json(&ev.quote.attest), "pcrs": pcrs},
                "agent": ev.agent,
                "checks": {
                    "ek_certificate_chain": "not checked here: inspect has no roots; run verify",
                    "tpm_signed_claims": match crate::verify::check_signed_claims(&ev) {
                        Ok(_) => "pass: EK public = certificate key; AK, certify, KEK name/hierarchy/attributes/world binding, quote and PCR digest consistent with the file's own nonce".to_string(),
                        Err(e) => format!("FAIL: {e}"),
                    },
                },
            }))
        }
        Some(byok_protocol::formats::TRANSFER_TYPE) => {
            let t = TransferPackage::from_cbor(bytes).map_err(|e| e.to_string())?;
            Ok(json!({
                "type": t.kind, "version": t.version, "world": t.world,
                "kek_name": hex::encode(&t.kek_name), "ak_name": hex::encode(&t.ak_name),
                "key": {"alg": t.key.alg, "label": t.key.label, "public": public_json(&t.object.public)},
                "inner": t.object.inner,
                "sizes": {"duplicate": t.object.duplicate.len(), "seed": t.object.seed.len(), "id_object": t.credential.id_object.len(), "encrypted_secret": t.credential.encrypted_secret.len()},
            }))
        }
        Some(byok_protocol::formats::RECEIPT_TYPE) => {
            let r = Receipt::from_cbor(bytes).map_err(|e| e.to_string())?;
            Ok(json!({
                "type": r.kind, "version": r.version, "world": r.world, "nonce": hex::encode(&r.nonce),
                "ak": {"public": public_json(&r.ak.public)},
                "key": {"public": public_json(&r.key.public)},
                "certify": attest_json(&r.certify.attest),
            }))
        }
        Some(byok_protocol::formats::HOST_TYPE) => {
            let h =
                byok_protocol::formats::HostRecord::from_cbor(bytes).map_err(|e| e.to_string())?;
            Ok(json!({
                "type": h.kind, "version": h.version, "host": h.host,
                "enrolled": crate::verified::utc(h.enrolled),
                "ek": {"certificate_sha256": hex::encode(&h.ek.certificate_sha256), "name": hex::encode(&h.ek.name), "public": public_json(&h.ek.public)},
                "worlds": h.worlds.iter().map(|(w, e)| (w.to_string(), json!({
                    "ak": public_json(&e.ak_public),
                    "kek_name": hex::encode(&e.kek_name),
                    "enrolled": crate::verified::utc(e.enrolled),
                }))).collect::<serde_json::Map<_, _>>(),
            }))
        }
        Some(other) => Err(format!("unknown document type {other:?}")),
        None if bytes.is_empty() => Err("the file is empty".into()),
        None => Err("not a tpm-byok file (evidence, transfer package, challenge, activation, receipt, host record: CBOR with a \"type\" field) nor a .byok file (JSON)".into()),
    }
}

/// Indented text form of the JSON description.
pub fn to_text(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                match val {
                    Value::Object(_) => {
                        out.push_str(&format!("{:indent$}{k}:\n", ""));
                        to_text(val, indent + 2, out);
                    }
                    Value::Array(a) if a.iter().any(|x| x.is_object()) => {
                        out.push_str(&format!("{:indent$}{k}:\n", ""));
                        for x in a {
                            to_text(x, indent + 2, out);
                        }
                    }
                    _ => out.push_str(&format!("{:indent$}{k}: {}\n", "", scalar(val))),
                }
            }
        }
        other => out.push_str(&format!("{:indent$}{}\n", "", scalar(other))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(scalar).collect::<Vec<_>>().join("|"),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}
