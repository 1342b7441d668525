//! Every TPM command the agent sends lives here. The agent works on a TPM with
//! three transient slots and no resource manager (swtpm): leftovers are flushed
//! at start, and every object or session it loads is flushed before returning.

use crate::error::{tpm, AgentError, Result};
use byok_protocol::policy::PcrSpec;
use byok_protocol::public::TpmtPublic;
use byok_protocol::wire::{tpm2b, unwrap_tpm2b};
use std::str::FromStr;
use tss_esapi::abstraction::{ek, nv};
use tss_esapi::attributes::SessionAttributesBuilder;
use tss_esapi::constants::{CapabilityType, PropertyTag, SessionType};
use tss_esapi::handles::{
    AuthHandle, KeyHandle, NvIndexTpmHandle, ObjectHandle, PersistentTpmHandle, SessionHandle,
    TpmHandle,
};
use tss_esapi::interface_types::algorithm::{AsymmetricAlgorithm, HashingAlgorithm, SymmetricMode};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::resource_handles::{Hierarchy, NvAuth, Provision};
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    CapabilityData, Data, Digest, EncryptedSecret, HashcheckTicket, IdObject, InitialValue,
    MaxBuffer, Nonce, PcrSelectionListBuilder, PcrSlot, Private, Public, SensitiveData, Signature,
    SignatureScheme, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::Context;
use zeroize::Zeroizing;

/// The EK the agent uses: where it is persistent and where its certificate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EkKind {
    /// TCG template L-1: persistent 0x81010001, certificate 0x01c00002.
    Rsa2048,
    /// TCG template L-2: persistent 0x81010002, certificate 0x01c0000a.
    EccP256,
    /// ECC NIST P-384 (swtpm_setup's ECC EK): persistent 0x81010016,
    /// certificate 0x01c00016.
    EccP384,
}

impl EkKind {
    pub const ALL: [EkKind; 3] = [EkKind::Rsa2048, EkKind::EccP256, EkKind::EccP384];

    pub fn handle(self) -> u32 {
        match self {
            EkKind::Rsa2048 => 0x8101_0001,
            EkKind::EccP256 => 0x8101_0002,
            EkKind::EccP384 => 0x8101_0016,
        }
    }

    pub fn certificate_index(self) -> u32 {
        use byok_protocol::tpm::nv;
        match self {
            EkKind::Rsa2048 => nv::EK_CERT_RSA2048,
            EkKind::EccP256 => nv::EK_CERT_ECC_P256,
            EkKind::EccP384 => nv::EK_CERT_ECC_P384,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EkKind::Rsa2048 => "rsa",
            EkKind::EccP256 => "ecc-p256",
            EkKind::EccP384 => "ecc-p384",
        }
    }

    pub fn from_name(s: &str) -> Option<EkKind> {
        EkKind::ALL.into_iter().find(|k| k.name() == s)
    }

    pub fn from_handle(h: u32) -> Option<EkKind> {
        EkKind::ALL.into_iter().find(|k| k.handle() == h)
    }
}

/// The parent of an object and how to authorize its use: the world's KEK
/// with its empty auth value, or a PCR-bound KEK through its policy
/// (PolicyPCR, then PolicySecret(owner) with the world binding as policyRef).
pub struct Parent {
    pub handle: KeyHandle,
    pub policy: Option<ParentPolicy>,
}

pub struct ParentPolicy {
    pub pcrs: PcrSpec,
    pub policy_ref: Vec<u8>,
}
const KEK_HANDLE_FIRST: u32 = 0x8100_0100;
const KEK_HANDLE_LAST: u32 = 0x8100_01ff;
const TPM_RC_RETRY: u32 = 0x922;
/// TPM2B_MAX_BUFFER on swtpm and most TPMs (TPM2_EncryptDecrypt2, TPM2_HMAC).
const MAX_BUFFER: usize = 1024;
/// MAX_SYM_DATA: the largest sealed object.
pub const MAX_SEALED: usize = 128;

pub struct Tpm {
    ctx: Context,
    /// The EK's public area, read once per process: it decides how the EK is
    /// authorised (for the AK load and ActivateCredential) and goes into evidence.
    ek_public: Option<(KeyHandle, Public)>,
}

/// What a KEK handle holds.
pub enum KekAt {
    Missing,
    /// Another object than the recorded KEK.
    Other,
    Recorded(KeyHandle),
}

/// Which parameter of a command carries a secret (parameter encryption).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protect {
    /// The first command parameter (TPM2_Import's inner key, TPM2_Create's
    /// sealed data, TPM2_HMAC's data).
    Command,
    /// The first response parameter (ActivateCredential's secret, Unseal's
    /// data, RSA_Decrypt's plaintext).
    Response,
    /// Both (TPM2_EncryptDecrypt2: plaintext goes in or comes out).
    Both,
}

/// A signed attestation as TPM wire bytes.
pub struct SignedAttest {
    /// TPMS_ATTEST.
    pub attest: Vec<u8>,
    /// TPMT_SIGNATURE.
    pub signature: Vec<u8>,
}

/// (PCR index, value) in selection order.
pub type PcrValues = Vec<(u32, Vec<u8>)>;

pub struct TpmIdentity {
    pub manufacturer: String,
    pub vendor: String,
    pub firmware: u64,
}

/// Bytes of a TPM-returned Public as TPM2B_PUBLIC.
fn public_tpm2b(p: &Public) -> Result<Vec<u8>> {
    let tpmt = p.marshall().map_err(tpm("marshal TPMT_PUBLIC"))?;
    Ok(tpm2b(&tpmt))
}

fn public_from_tpm2b(bytes: &[u8]) -> Result<Public> {
    let inner =
        unwrap_tpm2b("TPM2B_PUBLIC", bytes).map_err(|e| AgentError::Protocol(e.to_string()))?;
    Public::unmarshall(inner).map_err(tpm("unmarshal TPMT_PUBLIC"))
}

fn private_from_tpm2b(bytes: &[u8]) -> Result<Private> {
    let inner =
        unwrap_tpm2b("TPM2B_PRIVATE", bytes).map_err(|e| AgentError::Protocol(e.to_string()))?;
    Private::try_from(inner.to_vec()).map_err(tpm("TPM2B_PRIVATE"))
}

fn is_retry(e: &tss_esapi::Error) -> bool {
    match e {
        // TPM_RC_RETRY is a format-zero warning (0x922).
        tss_esapi::Error::Tss2Error(
            tss_esapi::constants::response_code::Tss2ResponseCode::FormatZero(rc),
        ) => rc.0 & 0xfff == TPM_RC_RETRY,
        _ => false,
    }
}

impl Tpm {
    pub fn open(tcti: &str) -> Result<Tpm> {
        let conf = TctiNameConf::from_str(tcti).map_err(|source| AgentError::TpmOpen {
            tcti: tcti.to_string(),
            source,
        })?;
        let ctx = Context::new(conf).map_err(|source| AgentError::TpmOpen {
            tcti: tcti.to_string(),
            source,
        })?;
        let mut t = Tpm {
            ctx,
            ek_public: None,
        };
        t.flush_leftovers()?;
        Ok(t)
    }

    /// Flush transient objects and sessions left by an earlier process that
    /// died (swtpm has no resource manager to do it).
    fn flush_leftovers(&mut self) -> Result<()> {
        for first in [0x8000_0000u32, 0x0200_0000, 0x0300_0000] {
            let (data, _) = self
                .ctx
                .get_capability(CapabilityType::Handles, first, 32)
                .map_err(tpm("TPM2_GetCapability(handles)"))?;
            let CapabilityData::Handles(list) = data else {
                continue;
            };
            for h in list.into_inner() {
                if let Ok(obj) = self
                    .ctx
                    .execute_without_session(|c| c.tr_from_tpm_public(h))
                {
                    let _ = self.ctx.flush_context(obj);
                }
            }
        }
        Ok(())
    }

    fn persistent(&mut self, handle: u32) -> Result<Option<KeyHandle>> {
        let h = PersistentTpmHandle::new(handle).map_err(tpm("persistent handle"))?;
        match self
            .ctx
            .execute_without_session(|c| c.tr_from_tpm_public(TpmHandle::Persistent(h)))
        {
            Ok(obj) => Ok(Some(KeyHandle::from(obj))),
            Err(_) => Ok(None),
        }
    }

    /// Which EK to use when none is asked for: the first kind (RSA, ECC P-256,
    /// ECC P-384) whose certificate is in NV.
    pub fn choose_ek(&mut self) -> Result<EkKind> {
        let (data, _) = self
            .ctx
            .get_capability(CapabilityType::Handles, 0x01c0_0000, 64)
            .map_err(tpm("TPM2_GetCapability(NV indices)"))?;
        let present: Vec<u32> = match data {
            CapabilityData::Handles(list) => list.into_inner().into_iter().map(u32::from).collect(),
            _ => Vec::new(),
        };
        EkKind::ALL
            .into_iter()
            .find(|k| present.contains(&k.certificate_index()))
            .ok_or(AgentError::NoEkCertificate {
                index: EkKind::Rsa2048.certificate_index(),
                detail: "no EK certificate in NV at 0x01c00002 (RSA), 0x01c0000a (ECC P-256) or 0x01c00016 (ECC P-384)".into(),
            })
    }

    /// The EK of `kind`: the persistent one (where swtpm_setup and
    /// provisioning tools leave it), else created from the TCG default template
    /// (L-1 RSA, L-2 ECC P-256) and made persistent there, so it matches the EK
    /// certificate in NV.
    pub fn ek(&mut self, kind: EkKind) -> Result<KeyHandle> {
        if let Some(k) = self.persistent(kind.handle())? {
            return Ok(k);
        }
        let alg = match kind {
            EkKind::Rsa2048 => AsymmetricAlgorithm::Rsa,
            EkKind::EccP256 => AsymmetricAlgorithm::Ecc,
            EkKind::EccP384 => {
                return Err(AgentError::NoEkCertificate {
                    index: kind.certificate_index(),
                    detail: format!("no ECC P-384 EK persistent at {:#010x}", kind.handle()),
                })
            }
        };
        let created = ek::create_ek_object(&mut self.ctx, alg, None)
            .map_err(tpm("TPM2_CreatePrimary(EK)"))?;
        let persistent =
            PersistentTpmHandle::new(kind.handle()).map_err(tpm("persistent handle"))?;
        let r = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.evict_control(
                    Provision::Owner,
                    created.into(),
                    Persistent::Persistent(persistent),
                )
            });
        let _ = self.ctx.flush_context(created.into());
        Ok(KeyHandle::from(r.map_err(tpm("TPM2_EvictControl(EK)"))?))
    }

    /// Authorization for using the EK (as parent, as decryption key): its
    /// empty auth value when userWithAuth is set (swtpm's P-384 EK), else a
    /// PolicySecret(TPM_RH_ENDORSEMENT) session in its name algorithm (the
    /// TCG default templates' policy).
    fn ek_auth(&mut self, ek: KeyHandle) -> Result<AuthSession> {
        let public = self.ek_public_area(ek)?;
        if public.object_attributes().user_with_auth() {
            return Ok(AuthSession::Password);
        }
        self.ek_policy_session(public.name_hashing_algorithm())
    }

    fn ek_public_area(&mut self, ek: KeyHandle) -> Result<Public> {
        match &self.ek_public {
            Some((h, p)) if *h == ek => Ok(p.clone()),
            _ => {
                let (public, _, _) = self
                    .ctx
                    .execute_without_session(|c| c.read_public(ek))
                    .map_err(tpm("TPM2_ReadPublic(EK)"))?;
                self.ek_public = Some((ek, public.clone()));
                Ok(public)
            }
        }
    }

    /// The EK's TPM2B_PUBLIC (read once per process, see `ek_public`).
    pub fn ek_public(&mut self, ek: KeyHandle) -> Result<Vec<u8>> {
        let public = self.ek_public_area(ek)?;
        public_tpm2b(&public)
    }

    /// The EK certificate (DER) from its TCG NV index.
    pub fn ek_certificate(&mut self, kind: EkKind) -> Result<Vec<u8>> {
        let index = kind.certificate_index();
        let nv_index = NvIndexTpmHandle::new(index).map_err(tpm("NV index handle"))?;
        let r = (|| {
            let obj = self
                .ctx
                .execute_without_session(|c| c.tr_from_tpm_public(TpmHandle::NvIndex(nv_index)))?;
            let auth = NvAuth::NvIndex(obj.into());
            let data = self
                .ctx
                .execute_with_session(Some(AuthSession::Password), |c| {
                    nv::read_full(c, auth, nv_index)
                });
            let mut obj = obj;
            let _ = self.ctx.tr_close(&mut obj);
            data
        })();
        let mut cert = r.map_err(|e| AgentError::NoEkCertificate {
            index,
            detail: e.to_string(),
        })?;
        // NV indices are often larger than the certificate: cut to the DER length.
        if let Some(len) = byok_protocol::der::sequence_len(&cert) {
            cert.truncate(len);
        }
        Ok(cert)
    }

    pub fn identity(&mut self) -> Result<TpmIdentity> {
        let mut prop = |t: PropertyTag| -> Result<u32> {
            Ok(self
                .ctx
                .get_tpm_property(t)
                .map_err(tpm("TPM2_GetCapability(properties)"))?
                .unwrap_or(0))
        };
        let text = |v: u32| -> String {
            v.to_be_bytes()
                .iter()
                .filter(|b| b.is_ascii_graphic() || **b == b' ')
                .map(|b| *b as char)
                .collect::<String>()
        };
        let manufacturer = text(prop(PropertyTag::Manufacturer)?).trim().to_string();
        let mut vendor = String::new();
        for t in [
            PropertyTag::VendorString1,
            PropertyTag::VendorString2,
            PropertyTag::VendorString3,
            PropertyTag::VendorString4,
        ] {
            vendor.push_str(&text(prop(t)?));
        }
        let firmware = (u64::from(prop(PropertyTag::FirmwareVersion1)?) << 32)
            | u64::from(prop(PropertyTag::FirmwareVersion2)?);
        Ok(TpmIdentity {
            manufacturer,
            vendor: vendor.trim().to_string(),
            firmware,
        })
    }

    /// Create an AK under the EK (as tpm2_createak and Keylime do): RSA-2048,
    /// RSASSA-SHA256, fixedTPM|fixedParent|sensitiveDataOrigin|restricted|sign.
    /// Returns (TPM2B_PUBLIC, TPM2B_PRIVATE).
    pub fn create_ak(&mut self, ek: KeyHandle) -> Result<(Vec<u8>, Vec<u8>)> {
        let template = byok_protocol::templates::ak_template();
        let public = Public::unmarshall(template.as_bytes()).map_err(tpm("AK template"))?;
        let auth = self.ek_auth(ek)?;
        let r = self
            .ctx
            .execute_with_session(Some(auth), |c| c.create(ek, public, None, None, None, None));
        self.end_session(auth);
        let r = r.map_err(tpm("TPM2_Create(AK)"))?;
        Ok((public_tpm2b(&r.out_public)?, tpm2b(r.out_private.value())))
    }

    /// Load the AK under the EK.
    pub fn load_ak(&mut self, ek: KeyHandle, public: &[u8], private: &[u8]) -> Result<KeyHandle> {
        let public = public_from_tpm2b(public)?;
        let private = private_from_tpm2b(private)?;
        let auth = self.ek_auth(ek)?;
        let r = self
            .ctx
            .execute_with_session(Some(auth), |c| c.load(ek, private, public));
        self.end_session(auth);
        r.map_err(tpm("TPM2_Load(AK)"))
    }

    /// Flush a policy session (a password "session" needs nothing).
    fn end_session(&mut self, auth: AuthSession) {
        if auth != AuthSession::Password {
            self.flush_session(auth);
        }
    }

    /// A session authorizing use of `parent` (see [`Parent`]).
    fn parent_auth(&mut self, parent: &Parent) -> Result<AuthSession> {
        let Some(p) = &parent.policy else {
            return Ok(AuthSession::Password);
        };
        let session = self.pcr_policy_session(&p.pcrs)?;
        let policy_ref = Nonce::try_from(p.policy_ref.clone()).map_err(tpm("policyRef"))?;
        let r = PolicySession::try_from(session).and_then(|policy| {
            self.ctx
                .execute_with_session(Some(AuthSession::Password), |c| {
                    c.policy_secret(
                        policy,
                        AuthHandle::Owner,
                        Default::default(),
                        Default::default(),
                        policy_ref,
                        None,
                    )
                })
        });
        if let Err(e) = r {
            self.flush_session(session);
            return Err(tpm("TPM2_PolicySecret(owner)")(e));
        }
        Ok(session)
    }

    /// Run `f` with the parent's authorization; a failed KEK policy becomes
    /// [`AgentError::PcrPolicyFailed`].
    fn with_parent<T>(
        &mut self,
        parent: &Parent,
        op: &'static str,
        f: impl FnOnce(&mut Context) -> tss_esapi::Result<T>,
    ) -> Result<T> {
        self.with_parent_protected(parent, op, None, f)
    }

    /// [`Tpm::with_parent`] with a parameter-encryption session for a secret
    /// the command carries ([`Protect`]), salted with the parent.
    fn with_parent_protected<T>(
        &mut self,
        parent: &Parent,
        op: &'static str,
        protect: Option<Protect>,
        f: impl FnOnce(&mut Context) -> tss_esapi::Result<T>,
    ) -> Result<T> {
        let secret = match protect {
            Some(p) => Some(self.param_session(parent.handle, p)?),
            None => None,
        };
        let auth = match self.parent_auth(parent) {
            Ok(a) => a,
            Err(e) => {
                if let Some(s) = secret {
                    self.flush_session(s);
                }
                return Err(e);
            }
        };
        let r = self
            .ctx
            .execute_with_sessions((Some(auth), secret, None), f);
        self.end_session(auth);
        if let Some(s) = secret {
            self.flush_session(s);
        }
        r.map_err(|source| match (&parent.policy, policy_failed(&source)) {
            (Some(p), true) => AgentError::PcrPolicyFailed {
                op,
                pcrs: p.pcrs.describe(),
            },
            _ => AgentError::Tpm { op, source },
        })
    }

    /// Make `key` persistent at `handle` (TPM2_EvictControl) and flush the transient.
    fn persist(&mut self, key: KeyHandle, handle: u32) -> Result<()> {
        let persistent = PersistentTpmHandle::new(handle).map_err(tpm("persistent handle"))?;
        let r = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.evict_control(
                    Provision::Owner,
                    key.into(),
                    Persistent::Persistent(persistent),
                )
            });
        let _ = self.ctx.flush_context(key.into());
        r.map_err(tpm("TPM2_EvictControl(KEK)"))?;
        Ok(())
    }

    /// Remove the persistent object at `handle` (TPM2_EvictControl).
    pub fn evict(&mut self, handle: u32) -> Result<()> {
        let Some(key) = self.persistent(handle)? else {
            return Ok(());
        };
        let persistent = PersistentTpmHandle::new(handle).map_err(tpm("persistent handle"))?;
        self.ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.evict_control(
                    Provision::Owner,
                    key.into(),
                    Persistent::Persistent(persistent),
                )
            })
            .map_err(tpm("TPM2_EvictControl(evict)"))?;
        Ok(())
    }

    /// TPM2_CreatePrimary of `template` in the owner hierarchy, left
    /// transient; returns the handle and the TPM2B_PUBLIC.
    pub fn create_primary(&mut self, template: &TpmtPublic) -> Result<(KeyHandle, Vec<u8>)> {
        let public = Public::unmarshall(template.as_bytes()).map_err(tpm("KEK template"))?;
        let created = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.create_primary(Hierarchy::Owner, public, None, None, None, None)
            })
            .map_err(tpm("TPM2_CreatePrimary(KEK)"))?;
        Ok((created.key_handle, public_tpm2b(&created.out_public)?))
    }

    /// The world's KEK at `handle`, or None if nothing is there.
    /// What is at a KEK's persistent `handle`, compared by Name with the
    /// recorded public area. The Name comes from the TPM2_ReadPublic ESYS does
    /// when it opens the handle (and checks against the public area), so this
    /// costs one command.
    pub fn kek(&mut self, handle: u32, recorded_public: &[u8]) -> Result<KekAt> {
        let Some(k) = self.persistent(handle)? else {
            return Ok(KekAt::Missing);
        };
        let name = self
            .ctx
            .tr_get_name(k.into())
            .map_err(tpm("Esys_TR_GetName"))?;
        let expected = TpmtPublic::parse_tpm2b(recorded_public)
            .map_err(|e| AgentError::Protocol(e.to_string()))?
            .name();
        Ok(if name.value() == expected.as_slice() {
            KekAt::Recorded(k)
        } else {
            KekAt::Other
        })
    }

    /// Create a KEK (an owner-hierarchy primary from `template`) and make it
    /// persistent at the first free KEK handle. Returns (handle, TPM2B_PUBLIC).
    pub fn create_kek(&mut self, template: &TpmtPublic) -> Result<(u32, Vec<u8>)> {
        let handle = self.free_kek_handle()?;
        let (key, public) = self.create_primary(template)?;
        self.persist(key, handle)?;
        Ok((handle, public))
    }

    /// Re-make a KEK from its template and, if it is the recorded one, make it
    /// persistent at `handle` again. Returns false (and leaves nothing) when the
    /// template now gives another key: the owner seed changed (TPM2_Clear).
    pub fn restore_kek(
        &mut self,
        template: &TpmtPublic,
        handle: u32,
        recorded: &[u8],
    ) -> Result<bool> {
        let (key, public) = self.create_primary(template)?;
        if public != recorded {
            self.flush(key);
            return Ok(false);
        }
        self.persist(key, handle)?;
        Ok(true)
    }

    fn free_kek_handle(&mut self) -> Result<u32> {
        let (data, _) = self
            .ctx
            .get_capability(CapabilityType::Handles, KEK_HANDLE_FIRST, 256)
            .map_err(tpm("TPM2_GetCapability(handles)"))?;
        let used: Vec<u32> = match data {
            CapabilityData::Handles(list) => list.into_inner().into_iter().map(u32::from).collect(),
            _ => Vec::new(),
        };
        (KEK_HANDLE_FIRST..=KEK_HANDLE_LAST)
            .find(|h| !used.contains(h))
            .ok_or(AgentError::NoFreeHandle)
    }

    /// TPM2_Certify of `object` by `signer`, qualifyingData = nonce.
    /// swtpm may answer the first Certify with TPM_RC_RETRY: retried.
    pub fn certify(
        &mut self,
        object: ObjectHandle,
        signer: KeyHandle,
        nonce: &[u8],
    ) -> Result<SignedAttest> {
        let data = Data::try_from(nonce.to_vec()).map_err(tpm("qualifying data"))?;
        let mut tries = 0;
        loop {
            let r = self.ctx.execute_with_sessions(
                (
                    Some(AuthSession::Password),
                    Some(AuthSession::Password),
                    None,
                ),
                |c| c.certify(object, signer, data.clone(), SignatureScheme::Null),
            );
            match r {
                Err(e) if is_retry(&e) && tries < 5 => tries += 1,
                Err(e) => return Err(tpm("TPM2_Certify")(e)),
                Ok((attest, sig)) => return signed(attest, sig),
            }
        }
    }

    /// TPM2_Quote of sha256 PCRs `pcrs` by `signer`; returns the quote and the PCR values.
    pub fn quote(
        &mut self,
        signer: KeyHandle,
        nonce: &[u8],
        pcrs: &[u32],
    ) -> Result<(SignedAttest, PcrValues)> {
        let slots: Vec<PcrSlot> = pcrs
            .iter()
            .map(|i| PcrSlot::try_from(1u32 << i).map_err(tpm("PCR slot")))
            .collect::<Result<_>>()?;
        let selection = PcrSelectionListBuilder::new()
            .with_selection(HashingAlgorithm::Sha256, &slots)
            .build()
            .map_err(tpm("PCR selection"))?;
        let data = Data::try_from(nonce.to_vec()).map_err(tpm("qualifying data"))?;
        let (attest, sig) = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.quote(signer, data, SignatureScheme::Null, selection.clone())
            })
            .map_err(tpm("TPM2_Quote"))?;
        let quote = signed(attest, sig)?;
        let spec = PcrSpec {
            bank: byok_protocol::HashAlg::Sha256,
            pcrs: pcrs.to_vec(),
        };
        let values = pcrs.iter().copied().zip(self.pcr_values(&spec)?).collect();
        Ok((quote, values))
    }

    /// TPM2_ActivateCredential with the AK as the credentialed object and the
    /// EK as the decryption key (a PolicySecret(endorsement) session). The
    /// released secret comes back encrypted in a session salted with `salt`:
    /// the world's KEK when the secret matters (import), whose public area
    /// the agent has checked by Name against its record, so a party on the
    /// TCTI cannot substitute the salting key.
    pub fn activate_credential(
        &mut self,
        ak: KeyHandle,
        ek: KeyHandle,
        salt: KeyHandle,
        id_object: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let bad = |e: byok_protocol::error::WireError| AgentError::BadPackage(e.to_string());
        let id = IdObject::try_from(
            unwrap_tpm2b("TPM2B_ID_OBJECT", id_object)
                .map_err(bad)?
                .to_vec(),
        )
        .map_err(|e| AgentError::BadPackage(format!("credential id_object: {e}")))?;
        let secret = EncryptedSecret::try_from(
            unwrap_tpm2b("TPM2B_ENCRYPTED_SECRET", encrypted_secret)
                .map_err(bad)?
                .to_vec(),
        )
        .map_err(|e| AgentError::BadPackage(format!("credential encrypted_secret: {e}")))?;

        let protect = self.param_session(salt, Protect::Response)?;
        let session = match self.ek_auth(ek) {
            Ok(s) => s,
            Err(e) => {
                self.flush_session(protect);
                return Err(e);
            }
        };
        let r = self.ctx.execute_with_sessions(
            (Some(AuthSession::Password), Some(session), Some(protect)),
            |c| c.activate_credential(ak, ek, id, secret),
        );
        self.end_session(session);
        self.flush_session(protect);
        let digest: Digest = r.map_err(|source| AgentError::ActivationRefused { source })?;
        Ok(Zeroizing::new(digest.value().to_vec()))
    }

    /// A session that encrypts a command's first parameter
    /// ([`Protect::Command`]) or its response's ([`Protect::Response`]) with
    /// AES-128-CFB, as `tpm2_startauthsession --tpmkey` sets up: an HMAC
    /// session salted with `salt` (a decryption key of this TPM whose Name the
    /// agent has checked: the world's KEK, or the EK), so its session key is
    /// known only to the TPM and this process. Anyone reading the TCTI sees
    /// ciphertext for the protected parameter. Flushed by the caller.
    fn param_session(&mut self, salt: KeyHandle, protect: Protect) -> Result<AuthSession> {
        let session = self
            .ctx
            .start_auth_session(
                Some(salt),
                None,
                None,
                SessionType::Hmac,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .map_err(tpm("TPM2_StartAuthSession(salted)"))?
            .ok_or(AgentError::TpmUnexpected("salted session"))?;
        let (attrs, mask) = SessionAttributesBuilder::new()
            .with_continue_session(true)
            .with_decrypt(matches!(protect, Protect::Command | Protect::Both))
            .with_encrypt(matches!(protect, Protect::Response | Protect::Both))
            .build();
        if let Err(e) = self.ctx.tr_sess_set_attributes(session, attrs, mask) {
            self.flush_session(session);
            return Err(tpm("session attributes")(e));
        }
        Ok(session)
    }

    /// A new SHA-256 policy session (unbound, unsalted: its policy commands
    /// take no secrets from the host).
    fn start_policy_session(&mut self, hash: HashingAlgorithm) -> Result<AuthSession> {
        let session = self
            .ctx
            .start_auth_session(
                None,
                None,
                None,
                SessionType::Policy,
                SymmetricDefinition::AES_128_CFB,
                hash,
            )
            .map_err(tpm("TPM2_StartAuthSession"))?
            .ok_or(AgentError::TpmUnexpected("policy session"))?;
        let (attrs, mask) = SessionAttributesBuilder::new().build();
        if let Err(e) = self.ctx.tr_sess_set_attributes(session, attrs, mask) {
            self.flush_session(session);
            return Err(tpm("session attributes")(e));
        }
        Ok(session)
    }

    pub fn flush_session(&mut self, session: AuthSession) {
        let _ = self.ctx.flush_context(SessionHandle::from(session).into());
    }

    /// A policy session that has run TPM2_PolicyPCR over `spec`: the TPM
    /// records its current PCR values, and the command that uses the session
    /// fails unless they are the ones in the object's authPolicy.
    pub fn pcr_policy_session(&mut self, spec: &PcrSpec) -> Result<AuthSession> {
        let selection = pcr_selection(spec).map_err(tpm("PCR selection"))?;
        let session = self.start_policy_session(HashingAlgorithm::Sha256)?;
        let r = PolicySession::try_from(session).and_then(|policy| {
            self.ctx.execute_without_session(|c| {
                c.policy_pcr(policy, Digest::default(), selection.clone())
            })
        });
        if let Err(e) = r {
            self.flush_session(session);
            return Err(tpm("TPM2_PolicyPCR")(e));
        }
        Ok(session)
    }

    /// The current values of the PCRs in `spec`, in selection order.
    pub fn pcr_values(&mut self, spec: &PcrSpec) -> Result<Vec<Vec<u8>>> {
        let mut values = Vec::new();
        // PCR_Read returns at most 8 digests per call.
        for chunk in spec.pcrs.chunks(8) {
            let part = PcrSpec {
                bank: spec.bank,
                pcrs: chunk.to_vec(),
            };
            let (_, read_sel, digests) = self
                .ctx
                .execute_without_session(|c| c.pcr_read(pcr_selection(&part)?))
                .map_err(tpm("TPM2_PCR_Read"))?;
            let got: Vec<u32> = read_sel
                .get_selections()
                .iter()
                .flat_map(|s| {
                    s.selected()
                        .into_iter()
                        .map(|slot| u32::from(slot).trailing_zeros())
                })
                .collect();
            if got != chunk || digests.value().len() != chunk.len() {
                return Err(AgentError::TpmUnexpected("PCR_Read selection"));
            }
            values.extend(digests.value().iter().map(|d| d.value().to_vec()));
        }
        Ok(values)
    }

    /// Run `f` with the object's authorization: its empty auth value (password
    /// session) or, for a PCR-bound object, a fresh PolicyPCR session; with
    /// `protect`, also a parameter-encryption session salted with `salt`
    /// (the object's parent) for the secret the command carries.
    fn with_object_auth<T>(
        &mut self,
        policy: Option<&PcrSpec>,
        op: &'static str,
        protect: Option<(KeyHandle, Protect)>,
        f: impl FnOnce(&mut Context) -> tss_esapi::Result<T>,
    ) -> Result<T> {
        let secret = match protect {
            Some((salt, p)) => Some(self.param_session(salt, p)?),
            None => None,
        };
        let session = match policy {
            Some(spec) => match self.pcr_policy_session(spec) {
                Ok(s) => s,
                Err(e) => {
                    if let Some(s) = secret {
                        self.flush_session(s);
                    }
                    return Err(e);
                }
            },
            None => AuthSession::Password,
        };
        let r = self
            .ctx
            .execute_with_sessions((Some(session), secret, None), f);
        if policy.is_some() {
            self.flush_session(session);
        }
        if let Some(s) = secret {
            self.flush_session(s);
        }
        r.map_err(|source| match (policy, policy_failed(&source)) {
            (Some(spec), true) => AgentError::PcrPolicyFailed {
                op,
                pcrs: spec.describe(),
            },
            _ => AgentError::Tpm { op, source },
        })
    }

    /// TPM2_Create of a sealed data object holding `data` under `parent`.
    /// Returns (TPM2B_PUBLIC, TPM2B_PRIVATE).
    pub fn create_sealed(
        &mut self,
        parent: &Parent,
        template: &TpmtPublic,
        data: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let public = Public::unmarshall(template.as_bytes()).map_err(tpm("template"))?;
        // The size limit (MAX_SEALED) is checked by the caller, before any TPM work.
        let sensitive = SensitiveData::try_from(data.to_vec()).map_err(tpm("sealed data"))?;
        let r = self.with_parent_protected(
            parent,
            "TPM2_Create(sealed data)",
            Some(Protect::Command),
            |c| c.create(parent.handle, public, None, Some(sensitive), None, None),
        )?;
        Ok((public_tpm2b(&r.out_public)?, tpm2b(r.out_private.value())))
    }

    /// TPM2_Unseal; the sealed data comes back encrypted in a session salted
    /// with `salt` (the object's parent).
    pub fn unseal(
        &mut self,
        object: KeyHandle,
        salt: KeyHandle,
        policy: Option<&PcrSpec>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let data = self.with_object_auth(
            policy,
            "TPM2_Unseal",
            Some((salt, Protect::Response)),
            |c| c.unseal(object.into()),
        )?;
        Ok(Zeroizing::new(data.value().to_vec()))
    }

    /// TPM2_EncryptDecrypt2 in CFB mode, in chunks of the TPM's buffer size,
    /// carrying the IV from one chunk to the next.
    pub fn aes_cfb(
        &mut self,
        key: KeyHandle,
        salt: KeyHandle,
        decrypt: bool,
        iv: &[u8],
        data: &[u8],
        policy: Option<&PcrSpec>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let mut iv = InitialValue::try_from(iv.to_vec()).map_err(tpm("IV"))?;
        let mut out = Zeroizing::new(Vec::with_capacity(data.len()));
        for chunk in data.chunks(MAX_BUFFER) {
            let input = MaxBuffer::try_from(chunk.to_vec()).map_err(tpm("buffer"))?;
            let iv_in = iv.clone();
            let (part, iv_out) = self.with_object_auth(
                policy,
                "TPM2_EncryptDecrypt2",
                Some((salt, Protect::Both)),
                |c| c.encrypt_decrypt_2(key, decrypt, SymmetricMode::Cfb, input, iv_in),
            )?;
            out.extend_from_slice(part.value());
            iv = iv_out;
        }
        Ok(out)
    }

    /// TPM2_HMAC (SHA-256) over at most one TPM buffer of data.
    pub fn hmac(
        &mut self,
        key: KeyHandle,
        salt: KeyHandle,
        data: &[u8],
        policy: Option<&PcrSpec>,
    ) -> Result<Vec<u8>> {
        let input = MaxBuffer::try_from(data.to_vec()).map_err(|_| AgentError::InvalidArgument {
            what: "--in",
            detail: format!(
                "{} bytes; TPM2_HMAC takes at most {MAX_BUFFER} bytes (HMAC a digest of larger data)",
                data.len()
            ),
        })?;
        let d =
            self.with_object_auth(policy, "TPM2_HMAC", Some((salt, Protect::Command)), |c| {
                c.hmac(key.into(), input, HashingAlgorithm::Sha256)
            })?;
        Ok(d.value().to_vec())
    }

    /// A policy session satisfying the EK's policy: PolicySecret(TPM_RH_ENDORSEMENT).
    fn ek_policy_session(&mut self, hash: HashingAlgorithm) -> Result<AuthSession> {
        let session = self.start_policy_session(hash)?;
        let r = (|| {
            let policy = PolicySession::try_from(session)?;
            self.ctx
                .execute_with_session(Some(AuthSession::Password), |c| {
                    c.policy_secret(
                        policy,
                        AuthHandle::Endorsement,
                        Default::default(),
                        Default::default(),
                        Default::default(),
                        None,
                    )
                })
        })();
        if let Err(e) = r {
            let _ = self.ctx.flush_context(SessionHandle::from(session).into());
            return Err(tpm("TPM2_PolicySecret(endorsement)")(e));
        }
        Ok(session)
    }

    /// TPM2_Import under `parent` with an AES-128-CFB inner wrapper keyed by
    /// `inner_key`; returns the new TPM2B_PRIVATE (encrypted by the TPM).
    pub fn import(
        &mut self,
        parent: &Parent,
        inner_key: &[u8],
        public: &[u8],
        duplicate: &[u8],
        seed: &[u8],
    ) -> Result<Vec<u8>> {
        let bad = |e: byok_protocol::error::WireError| AgentError::BadPackage(e.to_string());
        let public = public_from_tpm2b(public)
            .map_err(|e| AgentError::BadPackage(format!("object public: {e}")))?;
        let duplicate = Private::try_from(
            unwrap_tpm2b("TPM2B_PRIVATE", duplicate)
                .map_err(bad)?
                .to_vec(),
        )
        .map_err(|e| AgentError::BadPackage(format!("object duplicate: {e}")))?;
        let seed = EncryptedSecret::try_from(
            unwrap_tpm2b("TPM2B_ENCRYPTED_SECRET", seed)
                .map_err(bad)?
                .to_vec(),
        )
        .map_err(|e| AgentError::BadPackage(format!("object seed: {e}")))?;
        let key = Data::try_from(inner_key.to_vec())
            .map_err(|e| AgentError::BadPackage(format!("credential value: {e}")))?;
        let private = self
            .with_parent_protected(parent, "TPM2_Import", Some(Protect::Command), |c| {
                c.import(
                    parent.handle.into(),
                    Some(key),
                    public,
                    duplicate,
                    seed,
                    SymmetricDefinitionObject::AES_128_CFB,
                )
            })
            .map_err(|e| match e {
                AgentError::Tpm { source, .. } => AgentError::ImportRefused { source },
                e => e,
            })?;
        Ok(tpm2b(private.value()))
    }

    /// TPM2_Create of a child of `parent` from `template`; returns
    /// (TPM2B_PUBLIC, TPM2B_PRIVATE).
    pub fn create_child(
        &mut self,
        parent: &Parent,
        template: &TpmtPublic,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let public = Public::unmarshall(template.as_bytes()).map_err(tpm("template"))?;
        let r = self.with_parent(parent, "TPM2_Create", |c| {
            c.create(parent.handle, public, None, None, None, None)
        })?;
        Ok((public_tpm2b(&r.out_public)?, tpm2b(r.out_private.value())))
    }

    /// TPM2_RSA_Decrypt with OAEP (MGF1 with the same hash, empty label).
    pub fn rsa_decrypt_oaep(
        &mut self,
        key: KeyHandle,
        salt: KeyHandle,
        ciphertext: &[u8],
        hash: HashingAlgorithm,
        policy: Option<&PcrSpec>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let ct = tss_esapi::structures::PublicKeyRsa::try_from(ciphertext.to_vec())
            .map_err(|e| AgentError::BadPackage(format!("RSA block: {e}")))?;
        let scheme = tss_esapi::structures::RsaDecryptionScheme::Oaep(
            tss_esapi::structures::HashScheme::new(hash),
        );
        let plain = self.with_object_auth(
            policy,
            "TPM2_RSA_Decrypt",
            Some((salt, Protect::Response)),
            |c| c.rsa_decrypt(key, ct, scheme, Data::default()),
        )?;
        Ok(Zeroizing::new(plain.value().to_vec()))
    }

    /// TPM2_TestParms: does this TPM support the key's algorithm and size?
    /// (swtpm with libtpms 0.9, as in Debian 12, has no RSA-4096.)
    pub fn supports(&mut self, public: &[u8]) -> Result<bool> {
        let parameters = match public_from_tpm2b(public)? {
            Public::Rsa { parameters, .. } => {
                tss_esapi::structures::PublicParameters::Rsa(parameters)
            }
            Public::Ecc { parameters, .. } => {
                tss_esapi::structures::PublicParameters::Ecc(parameters)
            }
            Public::KeyedHash { parameters, .. } => {
                tss_esapi::structures::PublicParameters::KeyedHash(parameters)
            }
            Public::SymCipher { parameters, .. } => {
                tss_esapi::structures::PublicParameters::SymCipher(parameters)
            }
        };
        Ok(self
            .ctx
            .execute_without_session(|c| c.test_parms(parameters))
            .is_ok())
    }

    /// Load a key (TPM2B_PUBLIC, TPM2B_PRIVATE) under `parent`.
    pub fn load(&mut self, parent: &Parent, public: &[u8], private: &[u8]) -> Result<KeyHandle> {
        let public = public_from_tpm2b(public)?;
        let private = private_from_tpm2b(private)?;
        self.with_parent(parent, "TPM2_Load", |c| {
            c.load(parent.handle, private, public)
        })
    }

    /// TPM2_Sign of an externally computed digest (allowed for unrestricted keys
    /// with a NULL hashcheck ticket).
    pub fn sign(
        &mut self,
        key: KeyHandle,
        digest: &[u8],
        scheme: SignatureScheme,
        policy: Option<&PcrSpec>,
    ) -> Result<Signature> {
        let digest = Digest::try_from(digest.to_vec()).map_err(tpm("digest"))?;
        let ticket = HashcheckTicket::try_from(tss_esapi::tss2_esys::TPMT_TK_HASHCHECK {
            tag: tss_esapi::constants::tss::TPM2_ST_HASHCHECK,
            hierarchy: tss_esapi::constants::tss::TPM2_RH_NULL,
            digest: Default::default(),
        })
        .map_err(tpm("hashcheck ticket"))?;
        self.with_object_auth(policy, "TPM2_Sign", None, |c| {
            c.sign(key, digest, scheme, ticket)
        })
    }

    pub fn flush(&mut self, key: KeyHandle) {
        let _ = self.ctx.flush_context(key.into());
    }
}

/// TPM_RC_POLICY_FAIL (the policy digest differs: PCRs changed) or
/// TPM_RC_PCR_CHANGED (they changed between PolicyPCR and the command).
fn policy_failed(e: &tss_esapi::Error) -> bool {
    use tss_esapi::constants::response_code::Tss2ResponseCodeKind as K;
    matches!(
        e,
        tss_esapi::Error::Tss2Error(rc)
            if matches!(rc.kind(), Some(K::PolicyFail) | Some(K::PcrChanged))
    )
}

fn pcr_selection(spec: &PcrSpec) -> tss_esapi::Result<tss_esapi::structures::PcrSelectionList> {
    let bank = match spec.bank {
        byok_protocol::HashAlg::Sha1 => HashingAlgorithm::Sha1,
        byok_protocol::HashAlg::Sha256 => HashingAlgorithm::Sha256,
        byok_protocol::HashAlg::Sha384 => HashingAlgorithm::Sha384,
        byok_protocol::HashAlg::Sha512 => HashingAlgorithm::Sha512,
    };
    let slots: Vec<PcrSlot> = spec
        .pcrs
        .iter()
        .map(|i| PcrSlot::try_from(1u32 << i))
        .collect::<tss_esapi::Result<_>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(bank, &slots)
        .build()
}

fn signed(attest: tss_esapi::structures::Attest, sig: Signature) -> Result<SignedAttest> {
    Ok(SignedAttest {
        attest: attest.marshall().map_err(tpm("marshal TPMS_ATTEST"))?,
        signature: sig.marshall().map_err(tpm("marshal TPMT_SIGNATURE"))?,
    })
}

pub use tss_esapi::interface_types::algorithm::HashingAlgorithm as Hashing;
pub use tss_esapi::structures::{
    HashScheme as TpmHashScheme, Signature as TpmSignature, SignatureScheme as TpmSignatureScheme,
};
