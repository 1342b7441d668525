//! The EK (persistent, or created from the TCG template to match its
//! certificate), its certificate and the TPM's identity, the AK under it, and
//! TPM2_ActivateCredential with both.

use super::{
    esys_public, parsed_public, private_from_tpm2b, public_tpm2b, Protect, Tpm, TpmIdentity,
};
use crate::error::{tpm, AgentError, Result};
use byok_protocol::public::TpmtPublic;
use byok_protocol::wire::{tpm2b, unwrap_tpm2b};
use tss_esapi::abstraction::{ek, nv};
use tss_esapi::constants::{CapabilityType, PropertyTag};
use tss_esapi::handles::{AuthHandle, KeyHandle, NvIndexTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::AsymmetricAlgorithm;
use tss_esapi::interface_types::resource_handles::NvAuth;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{CapabilityData, Digest, EncryptedSecret, IdObject, Public};
use zeroize::Zeroizing;

/// The TCG NV range for EK certificate chains.
const EK_CHAIN_FIRST: u32 = 0x01c0_0100;
const EK_CHAIN_LAST: u32 = 0x01c0_01ff;

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

    pub fn from_handle(h: u32) -> Option<EkKind> {
        EkKind::ALL.into_iter().find(|k| k.handle() == h)
    }
}

impl Tpm {
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
        let created = self.tracked(
            false,
            None,
            |t| ek::create_ek_object(&mut t.ctx, alg, None).map_err(tpm("TPM2_CreatePrimary(EK)")),
            |k| (*k).into(),
        )?;
        let r = self.evict_control(created, kind.handle(), "TPM2_EvictControl(EK)");
        self.flush(created);
        r
    }

    /// Authorization for using the EK (as parent, as decryption key): its
    /// empty auth value when userWithAuth is set (swtpm's P-384 EK), else a
    /// PolicySecret(TPM_RH_ENDORSEMENT) session in its name algorithm (the
    /// TCG default templates' policy).
    pub(super) fn ek_auth(&mut self, ek: KeyHandle) -> Result<AuthSession> {
        let public = self.ek_public_area(ek)?;
        if public.object_attributes().user_with_auth() {
            return Ok(AuthSession::Password);
        }
        self.ek_policy_session(&public)
    }

    pub(super) fn ek_public_area(&mut self, ek: KeyHandle) -> Result<Public> {
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
        let mut cert = self
            .nv_read(index)
            .map_err(|e| match crate::error::tpm_fault(&e) {
                // A lost TPM or a lockout is not a missing certificate.
                Some(_) => AgentError::Tpm {
                    op: "TPM2_NV_Read(EK certificate)",
                    source: e,
                },
                None => AgentError::NoEkCertificate {
                    index,
                    detail: e.to_string(),
                },
            })?;
        // NV indices are often larger than the certificate: cut to the DER length.
        if let Some(len) = byok_protocol::der::sequence_len(&cert) {
            cert.truncate(len);
        }
        Ok(cert)
    }

    /// The EK certificate chain the manufacturer left in the TCG range
    /// 0x01C00100..0x01C001FF (EK Credential Profile 2.5 §2.2.1.5): the
    /// certificates of every defined index in order, each index holding one
    /// or more concatenated DER certificates (padding after them ignored).
    /// An index that cannot be read is skipped: the chain only helps the
    /// verifier build a path, it proves nothing itself.
    pub fn ek_chain(&mut self) -> Result<Vec<Vec<u8>>> {
        let (data, _) = self
            .ctx
            .get_capability(CapabilityType::Handles, EK_CHAIN_FIRST, 256)
            .map_err(tpm("TPM2_GetCapability(NV indices)"))?;
        let indices: Vec<u32> = match data {
            CapabilityData::Handles(list) => list
                .into_inner()
                .into_iter()
                .map(u32::from)
                .filter(|i| (EK_CHAIN_FIRST..=EK_CHAIN_LAST).contains(i))
                .collect(),
            _ => Vec::new(),
        };
        let mut chain = Vec::new();
        for index in indices {
            match self.nv_read(index) {
                Ok(bytes) => chain.extend(byok_protocol::der::concatenated_sequences(&bytes)),
                Err(e) if crate::error::tpm_fault(&e).is_some() => {
                    return Err(AgentError::Tpm {
                        op: "TPM2_NV_Read(EK chain)",
                        source: e,
                    })
                }
                Err(_) => {}
            }
        }
        Ok(chain)
    }

    /// The whole content of an NV index, read with its own (empty) auth value.
    fn nv_read(&mut self, index: u32) -> tss_esapi::Result<Vec<u8>> {
        let nv_index = NvIndexTpmHandle::new(index)?;
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
        data.map(|d| d.to_vec())
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
    /// Returns (public area, TPM2B_PRIVATE).
    pub fn create_ak(&mut self, ek: KeyHandle) -> Result<(TpmtPublic, Vec<u8>)> {
        let template = byok_protocol::templates::ak_template();
        let public = esys_public(&template)?;
        let auth = self.ek_auth(ek)?;
        let _progress = super::objects::generating("the AK (TPM2_Create)");
        let r = self
            .ctx
            .execute_with_session(Some(auth), |c| c.create(ek, public, None, None, None, None));
        self.end_session(auth);
        let r = r.map_err(tpm("TPM2_Create(AK)"))?;
        Ok((parsed_public(&r.out_public)?, tpm2b(r.out_private.value())))
    }

    /// Load the AK under the EK.
    pub fn load_ak(
        &mut self,
        ek: KeyHandle,
        public: &TpmtPublic,
        private: &[u8],
    ) -> Result<KeyHandle> {
        let name = public.name();
        let public = esys_public(public)?;
        let private = private_from_tpm2b(private)?;
        let auth = self.ek_auth(ek)?;
        let r = self.tracked(
            false,
            Some(name),
            |t| {
                t.ctx
                    .execute_with_session(Some(auth), |c| {
                        c.load(ek, private.clone(), public.clone())
                    })
                    .map_err(tpm("TPM2_Load(AK)"))
            },
            |k| (*k).into(),
        );
        self.end_session(auth);
        r
    }

    /// A policy session satisfying the EK's policy: PolicySecret(TPM_RH_ENDORSEMENT).
    /// A policy session satisfying the EK's authPolicy, told by its value:
    /// PolicySecret(TPM_RH_ENDORSEMENT) (the low-range TCG templates L-1,
    /// L-2), then PolicyOR of that and PolicyAuthorizeNV for the high-range
    /// templates (H-1…), whose policy is PolicyOR(PolicyA, PolicyC).
    pub(super) fn ek_policy_session(&mut self, ek: &Public) -> Result<AuthSession> {
        let hash = ek.name_hashing_algorithm();
        let session = self.start_policy_session(hash)?;
        if let Err(e) = self.policy_secret(session, AuthHandle::Endorsement, Vec::new()) {
            self.flush_session(session);
            return Err(tpm("TPM2_PolicySecret(endorsement)")(e));
        }
        let policy = ek.auth_policy().value().to_vec();
        let known = byok_protocol::hash::HashAlg::from_tpm(u16::from(hash))
            .map(byok_protocol::policy::ek_policies);
        let Some(known) = known else {
            return Ok(session);
        };
        if policy == known.or {
            let r = (|| {
                let mut list = tss_esapi::structures::DigestList::new();
                list.add(Digest::try_from(known.secret.clone())?)?;
                list.add(Digest::try_from(known.authorize_nv.clone())?)?;
                let policy_session =
                    tss_esapi::interface_types::session_handles::PolicySession::try_from(session)?;
                self.ctx.policy_or(policy_session, list)
            })();
            if let Err(e) = r {
                self.flush_session(session);
                return Err(tpm("TPM2_PolicyOR(EK high-range policy)")(e));
            }
        } else if policy != known.secret {
            self.flush_session(session);
            return Err(AgentError::UnknownEkPolicy(hex::encode(policy)));
        }
        Ok(session)
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
}
