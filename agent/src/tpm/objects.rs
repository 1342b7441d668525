//! Objects: KEK primaries and their persistent handles, children of a KEK
//! (created, imported, loaded), sealed data.

use super::{
    esys_public, parsed_public, private_from_tpm2b, KekAt, Parent, Protect, Tpm, KEK_HANDLE_FIRST,
    KEK_HANDLE_LAST,
};
use crate::error::{tpm, AgentError, Result};
use byok_protocol::public::TpmtPublic;
use byok_protocol::wire::{tpm2b, unwrap_tpm2b};
use tss_esapi::constants::CapabilityType;
use tss_esapi::handles::{KeyHandle, PersistentTpmHandle};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    CapabilityData, Data, EncryptedSecret, Private, Public, SensitiveData,
    SymmetricDefinitionObject,
};
use tss_esapi::traits::UnMarshall;

impl Tpm {
    /// TPM2_EvictControl under the owner hierarchy: `object` transient →
    /// persistent at `handle`, or persistent at `handle` → evicted. The one
    /// place the agent changes what is persistent in the TPM.
    pub(super) fn evict_control(
        &mut self,
        object: KeyHandle,
        handle: u32,
        op: &'static str,
    ) -> Result<KeyHandle> {
        let persistent = PersistentTpmHandle::new(handle).map_err(tpm("persistent handle"))?;
        self.ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.evict_control(
                    Provision::Owner,
                    object.into(),
                    Persistent::Persistent(persistent),
                )
            })
            .map(KeyHandle::from)
            .map_err(|source| {
                use tss_esapi::constants::response_code::Tss2ResponseCodeKind as K;
                match &source {
                    tss_esapi::Error::Tss2Error(rc) if rc.kind() == Some(K::NvSpace) => {
                        AgentError::PersistentStorageFull {
                            detail: format!("{op}: insufficient space for NV allocation"),
                        }
                    }
                    _ => AgentError::Tpm { op, source },
                }
            })
    }

    /// How many more persistent objects the TPM can hold
    /// (TPM_PT_HR_PERSISTENT_AVAIL: an estimate, as NV is shared).
    pub fn persistent_room(&mut self) -> Result<u32> {
        self.ctx
            .get_tpm_property(tss_esapi::constants::PropertyTag::HrPersistentAvail)
            .map_err(tpm("TPM2_GetCapability(TPM_PT_HR_PERSISTENT_AVAIL)"))
            .map(|v| v.unwrap_or(0))
    }

    /// The Name of the persistent object at `handle`, if there is one.
    pub fn persistent_name(&mut self, handle: u32) -> Result<Option<Vec<u8>>> {
        Ok(self.persistent_named(handle)?.map(|(_, name)| name))
    }

    /// The persistent object at `handle` and its Name (from the
    /// TPM2_ReadPublic ESYS does when it opens the handle: one command).
    fn persistent_named(&mut self, handle: u32) -> Result<Option<(KeyHandle, Vec<u8>)>> {
        let Some(k) = self.persistent(handle)? else {
            return Ok(None);
        };
        let name = self
            .ctx
            .tr_get_name(k.into())
            .map_err(tpm("Esys_TR_GetName"))?;
        Ok(Some((k, name.value().to_vec())))
    }

    /// The persistent handles in use in the KEK range (0x81000100..0x810001ff).
    pub fn kek_range_handles(&mut self) -> Result<Vec<u32>> {
        let (data, _) = self
            .ctx
            .get_capability(CapabilityType::Handles, KEK_HANDLE_FIRST, 256)
            .map_err(tpm("TPM2_GetCapability(handles)"))?;
        Ok(match data {
            CapabilityData::Handles(list) => list
                .into_inner()
                .into_iter()
                .map(u32::from)
                .filter(|h| (KEK_HANDLE_FIRST..=KEK_HANDLE_LAST).contains(h))
                .collect(),
            _ => Vec::new(),
        })
    }

    /// Make `key` persistent at `handle` and flush the transient.
    pub(super) fn persist(&mut self, key: KeyHandle, handle: u32) -> Result<()> {
        let r = self.evict_control(key, handle, "TPM2_EvictControl(KEK)");
        self.flush(key);
        r.map(|_| ())
    }

    /// Remove the persistent object at `handle`, if there is one.
    pub fn evict(&mut self, handle: u32) -> Result<()> {
        let Some(key) = self.persistent(handle)? else {
            return Ok(());
        };
        self.evict_control(key, handle, "TPM2_EvictControl(evict)")
            .map(|_| ())
    }

    /// TPM2_CreatePrimary of `template` in the owner hierarchy, left
    /// transient; returns the handle and the public area.
    pub fn create_primary(&mut self, template: &TpmtPublic) -> Result<(KeyHandle, TpmtPublic)> {
        let public = Public::unmarshall(template.as_bytes()).map_err(tpm("KEK template"))?;
        let _progress = generating("the KEK (TPM2_CreatePrimary)");
        let created = self.tracked(
            false,
            None,
            |t| {
                t.ctx
                    .execute_with_session(Some(AuthSession::Password), |c| {
                        c.create_primary(Hierarchy::Owner, public.clone(), None, None, None, None)
                    })
                    .map_err(tpm("TPM2_CreatePrimary(KEK)"))
            },
            |c| c.key_handle.into(),
        )?;
        Ok((created.key_handle, parsed_public(&created.out_public)?))
    }

    /// The world's KEK at `handle`, or None if nothing is there.
    /// What is at a KEK's persistent `handle`, compared by Name with the
    /// recorded public area. The Name comes from the TPM2_ReadPublic ESYS does
    /// when it opens the handle (and checks against the public area), so this
    /// costs one command.
    pub fn kek(&mut self, handle: u32, recorded: &TpmtPublic) -> Result<KekAt> {
        Ok(match self.persistent_named(handle)? {
            None => KekAt::Missing,
            Some((k, name)) if name == recorded.name() => KekAt::Recorded(k),
            Some(_) => KekAt::Other,
        })
    }

    /// Create a KEK (an owner-hierarchy primary from `template`) and make it
    /// persistent at the first free KEK handle. `before_persist(handle,
    /// public)` runs between the two, to record the intent durably: a crash
    /// after TPM2_EvictControl then leaves an object the next command can
    /// recognise (by handle and Name) and evict. Returns (handle, public area).
    pub fn create_kek(
        &mut self,
        template: &TpmtPublic,
        before_persist: impl FnOnce(u32, &TpmtPublic) -> Result<()>,
    ) -> Result<(u32, TpmtPublic)> {
        let handle = self.free_kek_handle()?;
        // A clear error before NV runs out, rather than TPM_RC_NV_SPACE later.
        if self.persistent_room()? == 0 {
            return Err(AgentError::PersistentStorageFull {
                detail: "TPM_PT_HR_PERSISTENT_AVAIL is 0".into(),
            });
        }
        let (key, public) = self.create_primary(template)?;
        if let Err(e) = before_persist(handle, &public) {
            self.flush(key);
            return Err(e);
        }
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
        recorded: &TpmtPublic,
    ) -> Result<bool> {
        let (key, public) = self.create_primary(template)?;
        if public != *recorded {
            self.flush(key);
            return Ok(false);
        }
        self.persist(key, handle)?;
        Ok(true)
    }

    pub(super) fn free_kek_handle(&mut self) -> Result<u32> {
        let used = self.kek_range_handles()?;
        (KEK_HANDLE_FIRST..=KEK_HANDLE_LAST)
            .find(|h| !used.contains(h))
            .ok_or(AgentError::NoFreeHandle)
    }

    /// TPM2_Create of a sealed data object holding `data` under `parent`.
    /// Returns (public area, TPM2B_PRIVATE).
    pub fn create_sealed(
        &mut self,
        parent: &Parent,
        template: &TpmtPublic,
        data: &[u8],
    ) -> Result<(TpmtPublic, Vec<u8>)> {
        let public = esys_public(template)?;
        // The size limit (MAX_SEALED) is checked by the caller, before any TPM work.
        let sensitive = SensitiveData::try_from(data.to_vec()).map_err(tpm("sealed data"))?;
        let r = self.with_parent_protected(
            parent,
            "TPM2_Create(sealed data)",
            Some(Protect::Command),
            |c| c.create(parent.handle, public, None, Some(sensitive), None, None),
        )?;
        Ok((parsed_public(&r.out_public)?, tpm2b(r.out_private.value())))
    }

    /// TPM2_Import under `parent` with an AES-128-CFB inner wrapper keyed by
    /// `inner_key`; returns the new TPM2B_PRIVATE (encrypted by the TPM).
    pub fn import(
        &mut self,
        parent: &Parent,
        inner_key: &[u8],
        public: &TpmtPublic,
        duplicate: &[u8],
        seed: &[u8],
    ) -> Result<Vec<u8>> {
        let bad = |e: byok_protocol::error::WireError| AgentError::BadPackage(e.to_string());
        let public = esys_public(public)
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
    /// (public area, TPM2B_PRIVATE).
    pub fn create_child(
        &mut self,
        parent: &Parent,
        template: &TpmtPublic,
    ) -> Result<(TpmtPublic, Vec<u8>)> {
        let public = esys_public(template)?;
        let _progress = generating("the key (TPM2_Create)");
        let r = self.with_parent(parent, "TPM2_Create", |c| {
            c.create(parent.handle, public, None, None, None, None)
        })?;
        Ok((parsed_public(&r.out_public)?, tpm2b(r.out_private.value())))
    }

    /// TPM2_TestParms: does this TPM support the key's algorithm and size?
    /// (swtpm with libtpms 0.9, as in Debian 12, has no RSA-4096.)
    pub fn supports(&mut self, public: &TpmtPublic) -> Result<bool> {
        let parameters = match esys_public(public)? {
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
        match self
            .ctx
            .execute_without_session(|c| c.test_parms(parameters))
        {
            Ok(()) => Ok(true),
            // A TPM that is gone is not a TPM that lacks the algorithm.
            Err(e) if crate::error::tpm_fault(&e).is_some() => Err(AgentError::Tpm {
                op: "TPM2_TestParms",
                source: e,
            }),
            Err(_) => Ok(false),
        }
    }

    /// Load a key (public area, TPM2B_PRIVATE) under `parent`.
    pub fn load(
        &mut self,
        parent: &Parent,
        public: &TpmtPublic,
        private: &[u8],
    ) -> Result<KeyHandle> {
        let name = public.name();
        let public = esys_public(public)?;
        let private = private_from_tpm2b(private)?;
        self.tracked(
            false,
            Some(name),
            |t| {
                t.with_parent(parent, "TPM2_Load", |c| {
                    c.load(parent.handle, private.clone(), public.clone())
                })
            },
            |k| (*k).into(),
        )
    }
}

/// A spinner while the TPM generates a key: seconds on swtpm, up to a
/// minute for RSA on some real TPMs (only on a terminal; see
/// byok_protocol::progress).
pub(super) fn generating(what: &str) -> byok_protocol::progress::Progress {
    byok_protocol::progress::Progress::spinner(format!("the TPM is generating {what}"))
}
