//! A synthetic fleet for scale runs (bench/fleet.sh, tests/tests/fleet_scale.rs):
//! N hosts made in software from one genuine swtpm evidence file
//! (tests/fixtures/a-eu.evidence). Each host has its own EK (its certificate a
//! copy of the genuine one with the host's key, issued again by the fixtures'
//! throwaway CA), its own AK and KEK, a registry record as enrolment writes
//! it, and evidence for its own nonce signed by its AK.
//!
//! The verifier cannot tell these hosts from swtpm hosts enrolled under that
//! CA, which is what a scale run needs: the verifier's work on N distinct
//! hosts without N TPMs. They prove nothing else: the records skip the
//! credential activation (enrolment is tested on swtpm elsewhere), and the
//! RSA moduli are products of two primes from one small pool (every host's
//! keys distinct, made in seconds rather than hours, and worthless as keys).

use crate::forgery::{ak_public, ak_qualified_name, certify_by, kek_public, sign};
use crate::{forged_attest, quote_body};
use byok_protocol::formats::{
    Document, EnrolledEk, EnrolledWorld, Evidence, HostRecord, HOST_TYPE, VERSION,
};
use byok_protocol::public::{primary_qualified_name, PublicId, TpmtPublic};
use byok_protocol::tpm::{rh, st};
use byok_protocol::wire::tpm2b;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::EncodePublicKey;
use rsa::traits::PrivateKeyParts;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use serde_bytes::ByteBuf;
use std::path::Path;
use x509_cert::der::{Decode, Encode};

/// The world of every synthetic host (the template's).
pub const WORLD: &str = "eu";

/// Primes of 1024 bits; host keys are products of two of them.
pub struct PrimePool {
    primes: Vec<BigUint>,
}

/// The `k`-th unordered pair (a, b) with b < a.
fn pair(k: usize) -> (usize, usize) {
    let mut a = 1;
    while a * (a + 1) / 2 <= k {
        a += 1;
    }
    (a, k - a * (a - 1) / 2)
}

impl PrimePool {
    /// Enough primes for `hosts` hosts (three keys each), made on all cores.
    pub fn generate(hosts: usize) -> PrimePool {
        let pairs = 3 * hosts.max(1);
        let mut need = 2;
        while need * (need - 1) / 2 < pairs {
            need += 1;
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = need.div_ceil(2).div_ceil(threads);
        let mut primes: Vec<BigUint> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(move || {
                        let mut mine = Vec::new();
                        for _ in 0..per_thread {
                            // An RSA key generation's two primes: 1024 bits each
                            // with the top bits set, so any two multiply to 2048.
                            let k = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                                .expect("RSA key");
                            mine.extend(k.primes().iter().cloned());
                        }
                        mine
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("prime worker"))
                .collect()
        });
        primes.truncate(need);
        PrimePool { primes }
    }

    /// One prime per line, in hex.
    pub fn to_text(&self) -> String {
        self.primes.iter().map(|p| format!("{p:x}\n")).collect()
    }

    pub fn from_text(text: &str) -> PrimePool {
        PrimePool {
            primes: text
                .lines()
                .map(|l| BigUint::parse_bytes(l.as_bytes(), 16).expect("a hex prime"))
                .collect(),
        }
    }

    /// The two primes of key `k`.
    fn primes(&self, k: usize) -> (&BigUint, &BigUint) {
        let (a, b) = pair(k);
        assert!(
            a < self.primes.len(),
            "the prime pool is too small for key {k}"
        );
        (&self.primes[a], &self.primes[b])
    }

    fn modulus(&self, k: usize) -> BigUint {
        let (p, q) = self.primes(k);
        let n = p * q;
        assert_eq!(n.bits(), 2048, "key {k} is not 2048 bits");
        n
    }

    fn private_key(&self, k: usize) -> RsaPrivateKey {
        let (p, q) = self.primes(k);
        RsaPrivateKey::from_p_q(p.clone(), q.clone(), BigUint::from(65537u32)).expect("RSA key")
    }
}

/// The genuine evidence the hosts are copied from, and the CA key that
/// issued its EK certificate.
pub struct Template {
    evidence: Evidence,
    certificate: x509_cert::Certificate,
    issuer: RsaPrivateKey,
}

impl Template {
    /// tests/fixtures/a-eu.evidence and a-issuer.key (roots: a-ca.pem).
    pub fn from_fixtures(fixtures: &Path) -> Template {
        let evidence =
            Evidence::from_cbor(&std::fs::read(fixtures.join("a-eu.evidence")).expect("fixture"))
                .expect("fixture evidence");
        let certificate =
            x509_cert::Certificate::from_der(&evidence.ek.certificate).expect("EK certificate");
        assert_eq!(
            certificate.signature_algorithm.oid,
            const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
            "the template's EK certificate is signed with RSA and SHA-256"
        );
        // certtool's key file: a text dump, then the PEM block.
        let key_file = std::fs::read_to_string(fixtures.join("a-issuer.key")).expect("CA key");
        let pem = &key_file[key_file
            .find("-----BEGIN RSA PRIVATE KEY-----")
            .expect("a PEM RSA key")..];
        let issuer = RsaPrivateKey::from_pkcs1_pem(pem).expect("CA key");
        Template {
            evidence,
            certificate,
            issuer,
        }
    }
}

/// Host `i`'s name.
pub fn host_name(i: usize) -> String {
    format!("host-{i:05}")
}

/// What a host is made of: its EK public area and certificate, its AK.
struct Host {
    ek_public: TpmtPublic,
    ek_certificate: Vec<u8>,
    ak: RsaPrivateKey,
    ak_public: TpmtPublic,
    kek_public: TpmtPublic,
}

fn host(t: &Template, pool: &PrimePool, i: usize) -> Host {
    let genuine_ek = TpmtPublic::parse_tpm2b(&t.evidence.ek.public).expect("EK public");
    let n = pool.modulus(3 * i);
    let ek_public = TpmtPublic::build(
        genuine_ek.object_type,
        genuine_ek.name_alg,
        genuine_ek.attributes,
        genuine_ek.auth_policy.clone(),
        genuine_ek.params.clone(),
        PublicId::Rsa(n.to_bytes_be()),
    );
    let mut cert = t.certificate.clone();
    let serial = (i as u64 + 1).to_be_bytes();
    cert.tbs_certificate.serial_number =
        x509_cert::serial_number::SerialNumber::new(&serial).expect("serial");
    let spki = RsaPublicKey::new(n, BigUint::from(65537u32))
        .expect("RSA public key")
        .to_public_key_der()
        .expect("SPKI");
    cert.tbs_certificate.subject_public_key_info =
        x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(spki.as_bytes()).expect("SPKI");
    let tbs = cert.tbs_certificate.to_der().expect("TBS");
    let digest = byok_protocol::hash::sha256(&tbs);
    let sig = t
        .issuer
        .sign(rsa::Pkcs1v15Sign::new::<rsa::sha2::Sha256>(), &digest)
        .expect("sign");
    cert.signature = x509_cert::der::asn1::BitString::from_bytes(&sig).expect("signature");
    let ak = pool.private_key(3 * i + 1);
    Host {
        ek_public,
        ek_certificate: cert.to_der().expect("certificate"),
        ak_public: ak_public(&ak),
        ak,
        kek_public: kek_public(WORLD, &pool.modulus(3 * i + 2)),
    }
}

/// Host `i`'s registry record, as `byok-verifier enroll` writes it.
pub fn host_record(t: &Template, pool: &PrimePool, i: usize) -> HostRecord {
    let h = host(t, pool, i);
    HostRecord {
        kind: HOST_TYPE.into(),
        version: VERSION,
        host: host_name(i),
        ek: EnrolledEk {
            certificate_sha256: ByteBuf::from(
                byok_protocol::hash::sha256(&h.ek_certificate).to_vec(),
            ),
            name: ByteBuf::from(h.ek_public.name()),
            public: ByteBuf::from(h.ek_public.to_tpm2b()),
        },
        worlds: [(
            WORLD.parse().expect("world"),
            EnrolledWorld {
                ak_public: ByteBuf::from(h.ak_public.to_tpm2b()),
                kek_name: ByteBuf::from(h.kek_public.name()),
                enrolled: 1_796_515_200,
            },
        )]
        .into_iter()
        .collect(),
        enrolled: 1_796_515_200,
    }
}

/// Host `i`'s evidence for `nonce`, as `byok-agent evidence` writes it.
pub fn evidence(t: &Template, pool: &PrimePool, i: usize, nonce: &[u8]) -> Evidence {
    let h = host(t, pool, i);
    let mut ev = t.evidence.clone();
    ev.nonce = ByteBuf::from(nonce.to_vec());
    ev.ek.public = ByteBuf::from(h.ek_public.to_tpm2b());
    ev.ek.certificate = ByteBuf::from(h.ek_certificate);
    let ak_qn = ak_qualified_name(&ev, &h.ak_public);
    let kek_qn = primary_qualified_name(rh::OWNER, &h.kek_public.name()).expect("KEK QN");
    ev.ak.public = ByteBuf::from(tpm2b(h.ak_public.as_bytes()));
    ev.kek.public = ByteBuf::from(tpm2b(h.kek_public.as_bytes()));
    ev.kek.certify = certify_by(&h.ak, &ak_qn, nonce, &h.kek_public.name(), &kek_qn);
    let quote = forged_attest(
        st::ATTEST_QUOTE,
        &ak_qn,
        nonce,
        &quote_body(&t.evidence.quote.attest),
    );
    ev.quote.signature = ByteBuf::from(sign(&h.ak, &quote));
    ev.quote.attest = ByteBuf::from(quote);
    ev
}

#[cfg(test)]
mod tests {
    #[test]
    fn pairs_cover_each_unordered_pair_once() {
        let pairs: Vec<_> = (0..10).map(super::pair).collect();
        assert_eq!(
            pairs,
            [
                (1, 0),
                (2, 0),
                (2, 1),
                (3, 0),
                (3, 1),
                (3, 2),
                (4, 0),
                (4, 1),
                (4, 2),
                (4, 3)
            ]
        );
    }
}
