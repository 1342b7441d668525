//! The CBOR documents (evidence, transfer package, receipt, challenge,
//! activation, registry host record) and `inspect`, which decodes any of them for display.
#![no_main]
use byok_protocol::formats::{
    Activation, Challenge, Document, Evidence, HostRecord, Receipt, TransferPackage,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Evidence::from_cbor(data);
    let _ = TransferPackage::from_cbor(data);
    let _ = Receipt::from_cbor(data);
    let _ = Challenge::from_cbor(data);
    let _ = Activation::from_cbor(data);
    let _ = HostRecord::from_cbor(data);
    let _ = byok_protocol::formats::document_type(data);
    let _ = byok_verifier::inspect::describe(data);
});
