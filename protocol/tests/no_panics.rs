//! Every parser returns an error on bad input and never panics: random bytes
//! and random mutations of valid structures (a deterministic generator, so a
//! failure reproduces). Not a substitute for coverage-guided fuzzing.

use byok_protocol::formats::{
    Activation, Challenge, Document, Evidence, HostRecord, Receipt, TransferPackage,
};
use byok_protocol::keys::{KeyAlg, TargetKey};
use byok_protocol::{TpmsAttest, TpmtPublic, TpmtSignature};

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn all_parsers(b: &[u8]) {
    let _ = TpmtPublic::parse(b);
    let _ = TpmtPublic::parse_tpm2b(b);
    let _ = TpmsAttest::parse(b);
    let _ = TpmtSignature::parse(b);
    let _ = Evidence::from_cbor(b);
    if let Ok(t) = TransferPackage::from_cbor(b) {
        if let Ok(p) = TpmtPublic::parse_tpm2b(&t.object.public) {
            let _ = byok_protocol::transfer::check_transfer_object(&p, &t.key);
        }
    }
    let _ = HostRecord::from_cbor(b);
    let _ = Challenge::from_cbor(b);
    let _ = Activation::from_cbor(b);
    let _ = byok_protocol::formats::document_type(b);
    let _ = Receipt::from_cbor(b);
    let _ = TargetKey::from_bytes(b);
    let _ = byok_protocol::ckm::kwp_unwrap(&[7u8; 32], b);
    let _ = byok_protocol::keyfile::TpmKeyFile::from_der(b);
    if let Ok(text) = std::str::from_utf8(b) {
        let _ = byok_protocol::keyfile::TpmKeyFile::from_pem(text);
        let _ = byok_protocol::policy::PcrSpec::parse(text);
        let _ = byok_protocol::text::inert(text);
    }
}

#[test]
fn random_inputs_never_panic() {
    let mut r = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let n = (r.next() % 300) as usize;
        all_parsers(&r.bytes(n));
    }
}

// Long on purpose: one table of cases, each checked the same way.
#[test]
fn mutated_valid_structures_never_panic() {
    let mut r = XorShift(0x1234_5678_9abc_def1);
    let key = TargetKey::generate(KeyAlg::P256).unwrap();
    let public = key.tpm_public();
    use byok_protocol::formats::{CredentialBlob, KeyInfo, ObjectBlob};
    use serde_bytes::ByteBuf;
    let b = |v: &[u8]| ByteBuf::from(v.to_vec());
    let package = TransferPackage {
        kind: byok_protocol::formats::TRANSFER_TYPE.into(),
        version: 1,
        world: "eu".parse().unwrap(),
        kek_name: b(&public.name()),
        ak_name: b(&public.name()),
        credential: CredentialBlob {
            id_object: b(&[0, 2, 1, 2]),
            encrypted_secret: b(&[0, 1, 9]),
        },
        object: ObjectBlob {
            public: b(&public.to_tpm2b()),
            duplicate: b(&[0, 0]),
            seed: b(&[0, 0]),
            inner: byok_protocol::formats::InnerWrap::Aes128Cfb,
        },
        key: KeyInfo {
            alg: "p256".into(),
            label: Some("l".into()),
            pcrs: Some(byok_protocol::policy::PcrSpec::parse("sha256:0").unwrap()),
            pcr_values: Some([(0, b(&[0; 32]))].into_iter().collect()),
        },
    };
    let host = HostRecord {
        kind: byok_protocol::formats::HOST_TYPE.into(),
        version: 1,
        host: "h1".into(),
        ek: byok_protocol::formats::EnrolledEk {
            certificate_sha256: b(&[1; 32]),
            name: b(&public.name()),
            public: b(&public.to_tpm2b()),
        },
        worlds: [(
            "w".parse().unwrap(),
            byok_protocol::formats::EnrolledWorld {
                ak_public: b(&public.to_tpm2b()),
                kek_name: b(&public.name()),
                enrolled: 1,
            },
        )]
        .into_iter()
        .collect(),
        enrolled: 1,
    };
    let pem = key.to_pkcs8_pem().unwrap();
    let seeds = [
        public.as_bytes().to_vec(),
        public.to_tpm2b(),
        key.tpm_sensitive().to_vec(),
        package.to_cbor(),
        host.to_cbor(),
        pem.as_bytes().to_vec(),
        byok_protocol::keyfile::TpmKeyFile {
            empty_auth: true,
            parent: 0x8100_0100,
            public: public.to_tpm2b(),
            private: vec![0, 4, 1, 2, 3, 4],
        }
        .to_der()
        .unwrap(),
    ];
    for seed in &seeds {
        for _ in 0..5_000 {
            let mut b = seed.clone();
            for _ in 0..=(r.next() % 4) {
                let i = (r.next() as usize) % b.len();
                b[i] = r.next() as u8;
            }
            if r.next().is_multiple_of(4) {
                b.truncate((r.next() as usize) % (b.len() + 1));
            }
            all_parsers(&b);
        }
    }
}
