//! What `verify` and the commands built on it print: one text block or one
//! JSON line per evidence file. Every string that did not come from this
//! program (TPM vendor strings, the world id, file and host names, labels)
//! passes through `byok_protocol::text::inert` first, so printing a hostile
//! file cannot move the cursor, recolour the terminal or fake a line.

use crate::verify::Verified;
use byok_protocol::text::inert;
use byok_protocol::world::WorldId;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// Every string (and map key) of `v` made inert, recursively. Strings that
/// need nothing are left in place (the common case costs one scan).
pub fn inert_json(mut v: Value) -> Value {
    make_inert(&mut v);
    v
}

fn make_inert(v: &mut Value) {
    match v {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(clean) = inert(s) {
                *s = clean;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(make_inert),
        Value::Object(m) => {
            if m.keys()
                .any(|k| matches!(inert(k), std::borrow::Cow::Owned(_)))
            {
                let taken = std::mem::take(m);
                *m = taken
                    .into_iter()
                    .map(|(k, v)| (inert(&k).into_owned(), v))
                    .collect();
            }
            m.values_mut().for_each(make_inert);
        }
        _ => {}
    }
}

/// The EK and host a result is about: the fields every JSON result of a
/// verified file carries.
#[derive(Serialize)]
pub struct Identity<'a> {
    host: Option<&'a str>,
    ek_certificate_sha256: String,
    ek_name: String,
}

impl<'a> Identity<'a> {
    pub fn of(v: &'a Verified) -> Identity<'a> {
        Identity {
            host: v.host.as_deref(),
            ek_certificate_sha256: byok_protocol::text::hex(v.ek_certificate_sha256),
            ek_name: byok_protocol::text::hex(&v.ek_name),
        }
    }
}

/// One JSON line: `report` as JSON (fields in their declared order: the
/// workspace's serde_json preserves order), every string made inert.
pub fn json_line<T: Serialize>(report: &T) -> String {
    // The common case first, serialised directly: a line of printable ASCII
    // without a backslash had no string that `inert` would change (a
    // backslash, a control character or a non-ASCII one shows as a backslash
    // escape or a non-ASCII byte), so it is the line the JSON tree below
    // would give, without building the tree.
    // A verify report is about 1.5 KiB: one buffer, no regrowth.
    let mut line = Vec::with_capacity(2048);
    if serde_json::to_writer(&mut line, report).is_ok()
        // Every byte, no early exit: the compiler makes it a vector loop.
        && line
            .iter()
            .fold(true, |ok, b| ok & (0x20..0x7f).contains(b) & (*b != b'\\'))
    {
        // Printable ASCII is UTF-8.
        if let Ok(line) = String::from_utf8(line) {
            return line;
        }
    }
    match serde_json::to_value(report) {
        Ok(v) => inert_json(v).to_string(),
        // Only a map with non-string keys fails, and no report has one.
        Err(e) => unreachable!("report serialises: {e}"),
    }
}

/// The EK and host a result is about, as one line.
pub fn identity_text(v: &Verified) -> String {
    format!(
        "host {}, EK certificate SHA-256 {}, EK name {}",
        v.host
            .as_deref()
            .map(|h| inert(h).into_owned())
            .unwrap_or_else(|| "(not enrolled)".into()),
        byok_protocol::text::hex(v.ek_certificate_sha256),
        byok_protocol::text::hex(&v.ek_name)
    )
}

/// `verify --json`: one line per verified file.
#[derive(Serialize)]
pub struct VerifiedReport<'a> {
    file: String,
    ok: bool,
    world: &'a WorldId,
    ek_chain: &'a [String],
    ak_name: String,
    kek_name: String,
    kek: String,
    tpm: TpmReport<'a>,
    reset_count: u32,
    restart_count: u32,
    clock: u64,
    /// "sha256:INDEX" → hex value.
    pcrs: PcrValues<'a>,
    ak_proven: bool,
    ak_ek_binding: String,
    kek_pcr_binding: Option<KekPcrBindingReport<'a>>,
    compat_kek: Option<CompatKekReport>,
    #[serde(flatten)]
    identity: Identity<'a>,
}

#[derive(Serialize)]
struct TpmReport<'a> {
    manufacturer: &'a str,
    vendor: &'a str,
    firmware: String,
}

#[derive(Serialize)]
struct KekPcrBindingReport<'a> {
    pcrs: String,
    /// "BANK:INDEX" → hex value.
    values: PcrValues<'a>,
}

/// PCR values as a JSON object, "BANK:INDEX" → lower-case hex, keys in the
/// order of their text (as a map of strings sorts them: "sha256:10" before
/// "sha256:2"), one entry per index (the last value given). Written without
/// a map or a string per entry: a batch prints one per evidence file.
struct PcrValues<'a> {
    values: Vec<(PcrKey, &'a [u8])>,
}

impl<'a> PcrValues<'a> {
    fn new(bank: &'static str, values: impl IntoIterator<Item = (u32, &'a [u8])>) -> Self {
        let mut values: Vec<(PcrKey, &[u8])> = values
            .into_iter()
            .map(|(i, v)| (PcrKey::new(bank, i), v))
            .collect();
        // Stable: of equal keys the last given stays last, and is kept.
        values.sort_by_key(|(k, _)| *k);
        let mut kept: Vec<(PcrKey, &[u8])> = Vec::with_capacity(values.len());
        for v in values {
            match kept.last_mut() {
                Some(last) if last.0 == v.0 => *last = v,
                _ => kept.push(v),
            }
        }
        PcrValues { values: kept }
    }
}

/// "BANK:INDEX" on the stack (a bank name has at most 6 letters, an index
/// 10 digits). Zero bytes pad the text, so keys compare as their text does.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct PcrKey([u8; 24]);

impl PcrKey {
    fn new(bank: &str, index: u32) -> PcrKey {
        use std::io::Write as _;
        let mut text = [0u8; 24];
        // 17 bytes at most: writing cannot run out of room.
        let _ = write!(&mut text[..], "{bank}:{index}");
        PcrKey(text)
    }

    fn as_str(&self) -> &str {
        let len = self.0.iter().position(|b| *b == 0).unwrap_or(self.0.len());
        // Written from a &str and a number above.
        std::str::from_utf8(&self.0[..len]).unwrap_or_default()
    }
}

impl Serialize for PcrValues<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.values.len()))?;
        for (key, value) in &self.values {
            map.serialize_entry(key.as_str(), &Hex(value))?;
        }
        map.end()
    }
}

/// Bytes as lower-case hex in a JSON string, without a string on the heap
/// for digests (up to 64 bytes).
struct Hex<'a>(&'a [u8]);

impl Serialize for Hex<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 128];
        match buf.get_mut(..self.0.len() * 2) {
            Some(out) => {
                // The buffer is exactly twice the input: encoding cannot fail.
                let _ = hex::encode_to_slice(self.0, out);
                s.serialize_str(
                    std::str::from_utf8(out).map_err(<S::Error as serde::ser::Error>::custom)?,
                )
            }
            None => s.serialize_str(&byok_protocol::text::hex(self.0)),
        }
    }
}

#[derive(Serialize)]
struct CompatKekReport {
    key: String,
    kid: String,
}

impl<'a> VerifiedReport<'a> {
    pub fn new(path: &Path, v: &'a Verified) -> VerifiedReport<'a> {
        VerifiedReport {
            file: path.display().to_string(),
            ok: true,
            world: &v.world,
            ek_chain: &v.ek_chain,
            ak_name: byok_protocol::text::hex(&v.ak_name),
            kek_name: byok_protocol::text::hex(&v.kek_name),
            kek: v.kek_public.describe_key(),
            tpm: TpmReport {
                manufacturer: &v.tpm_manufacturer,
                vendor: &v.tpm_vendor,
                firmware: format!("{:#018x}", v.firmware_version),
            },
            reset_count: v.quote_clock.reset_count,
            restart_count: v.quote_clock.restart_count,
            clock: v.quote_clock.clock,
            pcrs: PcrValues::new("sha256", v.pcrs.iter().map(|(i, d)| (*i, d.as_slice()))),
            ak_proven: v.ak_binding.proven(),
            ak_ek_binding: v.ak_binding.describe(),
            kek_pcr_binding: v.kek_pcr_binding.as_ref().map(|b| KekPcrBindingReport {
                pcrs: b.pcrs.describe(),
                values: PcrValues::new(
                    b.pcrs.bank.name(),
                    b.pcrs
                        .pcrs
                        .iter()
                        .zip(&b.values)
                        .map(|(i, d)| (*i, d.as_slice())),
                ),
            }),
            compat_kek: v.compat_kek.as_ref().map(|c| CompatKekReport {
                key: c.describe_key(),
                kid: byok_protocol::world::compat_kid(&v.world, &c.name()),
            }),
            identity: Identity::of(v),
        }
    }
}

/// `verify --json` for a file that failed.
#[derive(Serialize)]
pub struct FailedReport {
    pub file: String,
    pub ok: bool,
    pub error: String,
}

/// `enroll --json`.
#[derive(Serialize)]
pub struct EnrolReport<'a> {
    pub ok: bool,
    pub outcome: &'static str,
    pub world: &'a WorldId,
    pub ak_name: String,
    pub kek_name: String,
    pub record: String,
    #[serde(flatten)]
    pub identity: Identity<'a>,
}

/// `check-receipt --json`.
#[derive(Serialize)]
pub struct ReceiptJson<'a> {
    pub ok: bool,
    pub world: &'a WorldId,
    pub key_name: String,
    pub key: &'a str,
    pub attributes: &'a [&'static str],
    pub origin: &'static str,
    pub duplicable: Option<bool>,
    pub matches_transfer: Option<bool>,
    pub kek_name: String,
    pub ak_ek_binding: String,
    #[serde(flatten)]
    pub identity: Identity<'a>,
}

/// `wrap --json`.
#[derive(Serialize)]
pub struct WrapReport<'a> {
    pub ok: bool,
    /// tpm, azure, gcp or aws.
    pub format: &'static str,
    /// The wrapped key's type ("ECC NIST P-256", "AES-256", …).
    pub key: String,
    /// The output file.
    pub out: String,
    /// The cloud method used (cloud formats).
    pub method: Option<String>,
    /// The command that takes the output to its destination (capitals:
    /// names to fill in).
    pub upload: Option<String>,
    /// For evidence-based wraps: the world, the KEK's Name and the TPM.
    pub world: Option<&'a WorldId>,
    pub kek_name: Option<String>,
    #[serde(flatten)]
    pub identity: Option<Identity<'a>>,
}

/// `ek-cert --json`.
#[derive(Serialize)]
pub struct EkCertReport<'a> {
    pub ok: bool,
    pub path: &'a [String],
    pub key: String,
    pub certificate_sha256: String,
    pub tpm_manufacturer: Option<String>,
    pub tpm_model: Option<String>,
    pub tpm_version: Option<String>,
    pub tcg_ek_eku: bool,
}

// Long on purpose: one line per fact, in the order an operator reads them.
pub fn verified_text(path: &Path, v: &Verified) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "OK {}: world {:?}",
        inert(&path.display().to_string()),
        inert(&v.world)
    );
    let _ = writeln!(
        o,
        "  host:       {}",
        v.host
            .as_deref()
            .map(|h| inert(h).into_owned())
            .unwrap_or_else(|| "(not enrolled)".into())
    );
    let _ = writeln!(
        o,
        "  EK:         certificate SHA-256 {}, name {}",
        byok_protocol::text::hex(v.ek_certificate_sha256),
        byok_protocol::text::hex(&v.ek_name)
    );
    let _ = writeln!(
        o,
        "  EK chain:   {}",
        v.ek_chain
            .iter()
            .map(|s| inert(s).into_owned())
            .collect::<Vec<_>>()
            .join(" -> ")
    );
    let _ = writeln!(
        o,
        "  TPM:        {} {} firmware {:#018x}",
        inert(&v.tpm_manufacturer),
        inert(&v.tpm_vendor),
        v.firmware_version
    );
    let _ = writeln!(
        o,
        "  KEK:        {} name {}",
        v.kek_public.describe_key(),
        byok_protocol::text::hex(&v.kek_name)
    );
    let _ = writeln!(
        o,
        "  AK:         {} name {}",
        v.ak_public.describe_key(),
        byok_protocol::text::hex(&v.ak_name)
    );
    let _ = writeln!(
        o,
        "  clock:      {} ms, resetCount {}, restartCount {}",
        v.quote_clock.clock, v.quote_clock.reset_count, v.quote_clock.restart_count
    );
    let _ = writeln!(
        o,
        "  PCRs:       sha256:{}",
        v.pcrs
            .keys()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let _ = writeln!(o, "  AK-EK link: {}", v.ak_binding.describe());
    match &v.kek_pcr_binding {
        Some(b) => {
            let _ = writeln!(
                o,
                "  KEK use:    only while PCRs {} hold these values (TPM-enforced policy):",
                b.pcrs.describe()
            );
            for (i, d) in b.pcrs.pcrs.iter().zip(&b.values) {
                let _ = writeln!(
                    o,
                    "              {}:{i} = {}",
                    b.pcrs.bank.name(),
                    byok_protocol::text::hex(d)
                );
            }
        }
        None => {
            let _ = writeln!(o, "  KEK use:    not bound to PCRs");
        }
    }
    if let Some(c) = &v.compat_kek {
        let _ = writeln!(
            o,
            "  compat KEK: {} kid {} (unrestricted decryption, child of the KEK)",
            c.describe_key(),
            inert(&byok_protocol::world::compat_kid(&v.world, &c.name()))
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::json_line;
    use serde::Serialize;

    #[derive(Serialize)]
    struct R {
        zeta: &'static str,
        alpha: &'static str,
    }

    /// The direct line and the made-inert tree give the same shape: fields
    /// in declared order, and only the hostile string changed.
    #[test]
    fn json_lines_keep_their_field_order_whether_or_not_a_string_is_made_inert() {
        assert_eq!(
            json_line(&R {
                zeta: "a",
                alpha: "b"
            }),
            r#"{"zeta":"a","alpha":"b"}"#
        );
        assert_eq!(
            json_line(&R {
                zeta: "a\u{1b}[2J",
                alpha: "b\\"
            }),
            r#"{"zeta":"a\\u{1b}[2J","alpha":"b\\\\"}"#
        );
        // Strings in arrays (an EK chain's subjects) and map keys too.
        let chain = ["CN=ok", "CN=\u{1b}[31mred"];
        let mut keyed = std::collections::BTreeMap::new();
        keyed.insert("k\u{7}", 1);
        assert_eq!(
            json_line(&(chain, keyed)),
            r#"[["CN=ok","CN=\\u{1b}[31mred"],{"k\\u{7}":1}]"#
        );
    }

    #[test]
    fn pcr_values_are_the_map_of_strings_they_replace() {
        // Indices past 9 sort as text, a repeated index keeps its last value.
        let d: Vec<Vec<u8>> = (0u8..6).map(|b| vec![b; 32]).collect();
        let given = [
            (2, &d[0]),
            (10, &d[1]),
            (1, &d[2]),
            (23, &d[3]),
            (10, &d[4]),
            (0, &d[5]),
        ];
        let expected: std::collections::BTreeMap<String, String> = given
            .iter()
            .map(|(i, v)| (format!("sha384:{i}"), hex::encode(v)))
            .collect();
        let ours = super::PcrValues::new("sha384", given.iter().map(|(i, v)| (*i, v.as_slice())));
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
        // A value longer than a digest is hex too.
        let long = [7u8; 100];
        assert_eq!(
            serde_json::to_string(&super::Hex(&long)).unwrap(),
            format!("\"{}\"", hex::encode(long))
        );
        for i in [0, 9, 10, 99, 100, u32::MAX] {
            assert_eq!(
                super::PcrKey::new("sha512", i).as_str(),
                format!("sha512:{i}")
            );
        }
    }
}
