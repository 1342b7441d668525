//! The document decoder (minicbor, the batch's hot path) is strict and says
//! what is wrong: each kind of malformed file gets its own words, the
//! encodings ciborium writes are the only ones read, and a hostile file
//! cannot exhaust the stack.

use byok_protocol::error::FormatError;
use byok_protocol::formats::{Challenge, Document, Evidence};

fn evidence() -> Vec<u8> {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/a-eu.evidence"
    );
    std::fs::read(p).unwrap()
}

fn cbor_error(bytes: &[u8]) -> String {
    match Evidence::from_cbor(bytes) {
        Err(FormatError::Cbor(msg)) => msg,
        other => panic!("expected a CBOR error, got {other:?}"),
    }
}

/// A CBOR map with text keys, ciborium-encoded, from (key, value) pairs.
fn map<K: AsRef<str>>(entries: &[(K, ciborium::Value)]) -> Vec<u8> {
    let v = ciborium::Value::Map(
        entries
            .iter()
            .map(|(k, v)| (ciborium::Value::Text(k.as_ref().into()), v.clone()))
            .collect(),
    );
    encode(&v)
}

fn encode(v: &ciborium::Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

/// `fields` with the value of `key` replaced.
fn with(
    mut fields: Vec<(String, ciborium::Value)>,
    key: &str,
    value: ciborium::Value,
) -> Vec<(String, ciborium::Value)> {
    let field = fields
        .iter_mut()
        .find(|(k, _)| k == key)
        .expect("the field");
    field.1 = value;
    fields
}

fn as_value(bytes: &[u8]) -> Vec<(String, ciborium::Value)> {
    let v: ciborium::Value = ciborium::from_reader(bytes).unwrap();
    v.into_map()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.into_text().unwrap(), v))
        .collect()
}

#[test]
fn a_sound_document_decodes_and_round_trips() {
    let bytes = evidence();
    let ev = Evidence::from_cbor(&bytes).unwrap();
    assert_eq!(ev.to_cbor(), bytes);
}

#[test]
fn each_kind_of_damage_is_named() {
    let bytes = evidence();
    assert!(matches!(
        Evidence::from_cbor(&[]),
        Err(FormatError::Empty { .. })
    ));
    let cut = &bytes[..bytes.len() - 5];
    assert_eq!(
        cbor_error(cut),
        format!("the file ends early: truncated after {} bytes", cut.len())
    );
    // 0x1c (additional information 28 is reserved) is not CBOR; a break
    // byte is CBOR, but not a map.
    assert_eq!(
        cbor_error(&[0x1c, 0, 0]),
        "not CBOR (syntax error at byte 0)"
    );
    assert_eq!(
        cbor_error(&[0xff, 0, 0]),
        "unexpected type break at position 0: expected map"
    );
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(
        cbor_error(&trailing),
        "trailing bytes after the CBOR document"
    );
    // A field of the wrong type, and a field missing: serde's words.
    let mut fields = as_value(&bytes);
    fields.retain(|(k, _)| k != "nonce");
    assert!(cbor_error(&map(&fields)).contains("missing field `nonce`"));
    let wrong = map(&with(fields, "world", ciborium::Value::Integer(7.into())));
    // The world is a text: its position is the fixture's.
    let e = cbor_error(&wrong);
    assert!(
        e.starts_with("unexpected type u8 at position ")
            && e.ends_with(": expected text (definite length)"),
        "{e}"
    );
}

#[test]
fn another_type_or_version_is_named_before_the_fields() {
    let challenge = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/a-eu.challenge"
    ))
    .unwrap();
    assert!(Challenge::from_cbor(&challenge).is_ok());
    assert!(matches!(
        Evidence::from_cbor(&challenge),
        Err(FormatError::WrongType { found, .. }) if found == "tpm-byok/challenge"
    ));
    let v9 = map(&with(
        as_value(&evidence()),
        "version",
        ciborium::Value::Integer(9.into()),
    ));
    assert!(matches!(
        Evidence::from_cbor(&v9),
        Err(FormatError::UnsupportedVersion { found: 9, .. })
    ));
}

#[test]
fn only_the_encoding_we_write_is_read() {
    let fields = as_value(&evidence());
    // The same document as an array of values (ciborium would read it as the struct).
    let array = ciborium::Value::Array(fields.iter().map(|(_, v)| v.clone()).collect());
    assert_eq!(
        cbor_error(&encode(&array)),
        "unexpected type array at position 0: expected map"
    );
    // Integer keys in place of the field names.
    let int_keys = ciborium::Value::Map(
        fields
            .iter()
            .enumerate()
            .map(|(i, (_, v))| (ciborium::Value::Integer(i.into()), v.clone()))
            .collect(),
    );
    assert_eq!(
        cbor_error(&encode(&int_keys)),
        "unexpected type u8 at position 1: expected text (definite length)"
    );
    // A field given twice.
    let nonce = fields.iter().find(|(k, _)| k == "nonce").unwrap().1.clone();
    let mut twice = fields;
    twice.push(("nonce".into(), nonce));
    assert!(cbor_error(&map(&twice)).contains("duplicate field `nonce`"));
}

#[test]
fn deep_nesting_in_an_unknown_field_is_no_stack_overflow() {
    // Within the 1 MiB cap: an unknown field holding 500,000 nested arrays,
    // and the same cut short. Either is an error or skipped, never a crash.
    let mut fields: Vec<(String, ciborium::Value)> = as_value(&evidence());
    fields.push(("x".into(), ciborium::Value::Null));
    let mut bytes = map(&fields);
    bytes.pop(); // the null
    let depth = 500_000;
    bytes.extend(std::iter::repeat_n(0x81u8, depth));
    bytes.push(0);
    assert!(bytes.len() < Evidence::MAX_SIZE);
    let _ = Evidence::from_cbor(&bytes);
    bytes.pop();
    assert_eq!(
        cbor_error(&bytes),
        format!("the file ends early: truncated after {} bytes", bytes.len())
    );
    // Indefinite-length arrays inside definite ones (the skipper's stack).
    let mut bytes = map(&fields);
    bytes.pop();
    for _ in 0..depth / 2 {
        bytes.extend([0x82, 0x9f]);
    }
    assert_eq!(
        cbor_error(&bytes),
        format!("the file ends early: truncated after {} bytes", bytes.len())
    );
}
