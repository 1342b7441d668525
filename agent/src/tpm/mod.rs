//! Every TPM command the agent sends lives under `tpm/`, by job: `endorsement.rs`
//! (the EK, the AK and credential activation), `auth.rs` (authorisation and
//! parameter-encryption sessions, PCR policies), `objects.rs` (primaries,
//! persistence, create, import, load), `attest.rs` (certify, quote),
//! `crypto.rs` (sign, decrypt, encrypt, HMAC, unseal), and `guest.rs` (how it
//! shares the TPM: one agent at a time per TPM, a journal of what it loaded).
//! The agent works on a TPM with three transient slots and no resource
//! manager (swtpm): commands flush what they load as soon as they are done
//! with it, whatever a command still holds when it returns, on any path, is
//! flushed when its `Tpm` is dropped, and what a killed agent left is
//! flushed by the next one from its journal. Nothing another program loaded
//! is ever flushed; a TPM whose slots others hold is waited for, then named.

mod attest;
mod auth;
mod crypto;
mod endorsement;
mod guest;
mod health;
mod objects;

pub use endorsement::EkKind;
pub use health::{ENDORSEMENT_AUTH_SET, OWNER_AUTH_SET};

use crate::error::{tpm, AgentError, Result};
use byok_protocol::formats::Signed;
use byok_protocol::policy::PcrSpec;
use byok_protocol::public::TpmtPublic;
use byok_protocol::wire::{tpm2b, unwrap_tpm2b};
use serde_bytes::ByteBuf;
use std::str::FromStr;
use tss_esapi::handles::{KeyHandle, PersistentTpmHandle, SessionHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{PcrSelectionListBuilder, PcrSlot, Private, Public, Signature};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::Context;

const KEK_HANDLE_FIRST: u32 = 0x8100_0100;
const KEK_HANDLE_LAST: u32 = 0x8100_01ff;
const TPM_RC_RETRY: u32 = 0x922;
/// TPM2B_MAX_BUFFER on swtpm and most TPMs (TPM2_EncryptDecrypt2, TPM2_HMAC).
const MAX_BUFFER: usize = 1024;
/// MAX_SYM_DATA: the largest sealed object.
pub const MAX_SEALED: usize = 128;

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

pub struct Tpm {
    ctx: Context,
    /// This process's turn at the TPM, and where it journals what it holds.
    lock: guest::TpmLock,
    /// A resource manager cleans up after dead clients: no journal then.
    pub resource_manager: bool,
    /// What this process loaded and has not flushed: ESYS handle, TPM
    /// handle, and for objects their Name (mirrored in the journal).
    held: Vec<guest::Held>,
    /// Loads and session starts under way (see `guest::Pending`).
    pending: Vec<guest::Pending>,
    /// The TPM's boot epoch, read once before the first journal entry.
    epoch: Option<(u32, u32)>,
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

/// Passwords of the hierarchies the agent authorises (empty when None).
#[derive(Default, Clone)]
pub struct HierarchyAuth {
    pub owner: Option<byok_protocol::auth::AuthValue>,
    pub endorsement: Option<byok_protocol::auth::AuthValue>,
}

/// (PCR index, value) in selection order.
pub type PcrValues = Vec<(u32, Vec<u8>)>;

pub struct TpmIdentity {
    pub manufacturer: String,
    pub vendor: String,
    pub firmware: u64,
}

/// Bytes of a TPM-returned Public as TPM2B_PUBLIC.
pub(super) fn public_tpm2b(p: &Public) -> Result<Vec<u8>> {
    let tpmt = p.marshall().map_err(tpm("marshal TPMT_PUBLIC"))?;
    Ok(tpm2b(&tpmt))
}

/// A public area the TPM returned, parsed once into the protocol's type.
pub(super) fn parsed_public(p: &Public) -> Result<TpmtPublic> {
    let tpmt = p.marshall().map_err(tpm("marshal TPMT_PUBLIC"))?;
    TpmtPublic::parse(&tpmt)
        .map_err(|e| AgentError::Protocol(format!("TPM returned a public area: {e}")))
}

/// The ESAPI form of a public area, to hand it to the TPM.
pub(super) fn esys_public(p: &TpmtPublic) -> Result<Public> {
    Public::unmarshall(p.as_bytes()).map_err(tpm("unmarshal TPMT_PUBLIC"))
}

pub(super) fn private_from_tpm2b(bytes: &[u8]) -> Result<Private> {
    let inner =
        unwrap_tpm2b("TPM2B_PRIVATE", bytes).map_err(|e| AgentError::Protocol(e.to_string()))?;
    Private::try_from(inner.to_vec()).map_err(tpm("TPM2B_PRIVATE"))
}

pub(super) fn is_retry(e: &tss_esapi::Error) -> bool {
    match e {
        // TPM_RC_RETRY is a format-zero warning (0x922).
        tss_esapi::Error::Tss2Error(
            tss_esapi::constants::response_code::Tss2ResponseCode::FormatZero(rc),
        ) => rc.0 & 0xfff == TPM_RC_RETRY,
        _ => false,
    }
}

/// TPM_RC_POLICY_FAIL (the policy digest differs: PCRs changed) or
/// TPM_RC_PCR_CHANGED (they changed between PolicyPCR and the command).
pub(super) fn policy_failed(e: &tss_esapi::Error) -> bool {
    use tss_esapi::constants::response_code::Tss2ResponseCodeKind as K;
    matches!(
        e,
        tss_esapi::Error::Tss2Error(rc)
            if matches!(rc.kind(), Some(K::PolicyFail) | Some(K::PcrChanged))
    )
}

pub(super) fn pcr_selection(
    spec: &PcrSpec,
) -> tss_esapi::Result<tss_esapi::structures::PcrSelectionList> {
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

/// A signed attestation as the documents carry it: TPMS_ATTEST and
/// TPMT_SIGNATURE wire bytes.
pub(super) fn signed(attest: tss_esapi::structures::Attest, sig: Signature) -> Result<Signed> {
    Ok(Signed {
        attest: ByteBuf::from(attest.marshall().map_err(tpm("marshal TPMS_ATTEST"))?),
        signature: ByteBuf::from(sig.marshall().map_err(tpm("marshal TPMT_SIGNATURE"))?),
    })
}

impl Tpm {
    pub fn open(
        tcti: &byok_protocol::tcti::Tcti,
        lock_timeout: Option<std::time::Duration>,
        auth: &HierarchyAuth,
    ) -> Result<Tpm> {
        // Tcti has checked the name and the keys; what is left for the TSS
        // to refuse (a host name it cannot resolve) is reported as unreachable.
        let unreachable = |source: tss_esapi::Error| AgentError::TpmUnreachable {
            tcti: tcti.to_string(),
            why: why_unreachable(tcti, &source),
        };
        let conf = TctiNameConf::from_str(&tcti.to_string()).map_err(unreachable)?;
        let lock = guest::TpmLock::acquire(tcti, lock_timeout)?;
        let ctx = Context::new(conf).map_err(unreachable)?;
        let mut ctx = ctx;
        // ESYS uses these for every password session and PolicySecret HMAC
        // on the hierarchy (CreatePrimary and EvictControl under the owner,
        // PolicySecret(owner) of a PCR-bound KEK, the EK's PolicySecret).
        for (hierarchy, value) in [
            (tss_esapi::handles::ObjectHandle::Owner, &auth.owner),
            (
                tss_esapi::handles::ObjectHandle::Endorsement,
                &auth.endorsement,
            ),
        ] {
            if let Some(v) = value {
                let a = tss_esapi::structures::Auth::try_from(v.as_bytes().to_vec())
                    .map_err(tpm("hierarchy auth value"))?;
                ctx.tr_set_auth(hierarchy, a)
                    .map_err(tpm("Esys_TR_SetAuth"))?;
            }
        }
        let mut t = Tpm {
            ctx,
            lock,
            resource_manager: tcti.has_resource_manager(),
            held: Vec::new(),
            pending: Vec::new(),
            epoch: None,
            ek_public: None,
        };
        if !t.resource_manager {
            t.flush_leftovers()?;
        }
        Ok(t)
    }

    pub(super) fn persistent(&mut self, handle: u32) -> Result<Option<KeyHandle>> {
        let h = PersistentTpmHandle::new(handle).map_err(tpm("persistent handle"))?;
        // A TPM loads a persistent object into a transient slot to read it:
        // slots others hold are waited for here too.
        guest::retry_while_full(self, |t| {
            match t
                .ctx
                .execute_without_session(|c| c.tr_from_tpm_public(TpmHandle::Persistent(h)))
            {
                Ok(obj) => Ok(Some(KeyHandle::from(obj))),
                // A TPM that is gone (or full) is not an empty handle.
                Err(e) if crate::error::tpm_fault(&e).is_some() => Err(AgentError::Tpm {
                    op: "TPM2_ReadPublic(persistent handle)",
                    source: e,
                }),
                Err(_) => Ok(None),
            }
        })
    }

    pub fn flush_session(&mut self, session: AuthSession) {
        let h: tss_esapi::handles::ObjectHandle = SessionHandle::from(session).into();
        let _ = self.ctx.flush_context(h);
        self.released(h);
    }

    pub fn flush(&mut self, key: KeyHandle) {
        let _ = self.ctx.flush_context(key.into());
        self.released(key.into());
    }
}

impl Drop for Tpm {
    /// Flush what this process still holds, then clear its journal (the
    /// Context would flush the same on drop, but after the journal is gone).
    fn drop(&mut self) {
        for h in std::mem::take(&mut self.held) {
            let _ = self.ctx.flush_context(h.esys);
        }
        self.pending.clear();
        let _ = self.lock.write_journal(&guest::Journal::default());
    }
}

pub use tss_esapi::interface_types::algorithm::HashingAlgorithm as Hashing;
pub use tss_esapi::structures::{
    HashScheme as TpmHashScheme, Signature as TpmSignature, SignatureScheme as TpmSignatureScheme,
};

/// Why the TPM stack could not open `tcti`, in words an operator can act
/// on (the TSS says "response code not recognized" for a missing device and
/// for a swtpm that is not running alike). Looked into only after a failure.
fn why_unreachable(tcti: &byok_protocol::tcti::Tcti, source: &tss_esapi::Error) -> String {
    use byok_protocol::tcti::TctiKind;
    use std::io::ErrorKind;
    if let Some(path) = tcti.device_path() {
        return match std::fs::OpenOptions::new().read(true).write(true).open(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => format!(
                "{path} does not exist: this host shows no TPM there (see `ls /dev/tpm*`; \
                 enable the TPM in the firmware, or add a virtual TPM to the VM; \
                 for swtpm pass --tcti swtpm:host=127.0.0.1,port=PORT)"
            ),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => format!(
                "{path}: permission denied: run as root, or add this user to the group \
                 that owns it (`ls -l {path}`; usually tss: `sudo usermod -aG tss $USER`, then log in again)"
            ),
            Err(e) => format!("{path}: {e}"),
            Ok(_) => format!("{path} opens, but the TPM stack could not use it ({source})"),
        };
    }
    if let Some((host, port)) = tcti.host_port() {
        use std::net::{TcpStream, ToSocketAddrs};
        let addrs: Vec<_> = match (host.as_str(), port).to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(e) => return format!("cannot resolve host {host:?}: {e}"),
        };
        let reach = |p: u16| {
            addrs.iter().any(|a| {
                let mut a = *a;
                a.set_port(p);
                TcpStream::connect_timeout(&a, std::time::Duration::from_secs(2)).is_ok()
            })
        };
        let ctrl = port.wrapping_add(1);
        return match (reach(port), tcti.kind == TctiKind::Swtpm && !reach(ctrl)) {
            (false, _) => format!(
                "nothing listens on {host}:{port}: is swtpm running? (start one with \
                 `tpm-setup/swtpm.sh start DIR`, which prints its TCTI, or \
                 `swtpm socket --tpm2 --server type=tcp,port={port} --ctrl type=tcp,port={ctrl} --tpmstate dir=DIR --flags startup-clear`)"
            ),
            (true, true) => format!(
                "{host}:{port} answers, but swtpm's control port {ctrl} does not: \
                 start swtpm with --ctrl type=tcp,port={ctrl}"
            ),
            (true, false) => {
                format!("{host}:{port} answers, but not as a TPM simulator ({source})")
            }
        };
    }
    format!(
        "tpm2-abrmd does not answer on D-Bus: is the tpm2-abrmd service running \
         (`systemctl status tpm2-abrmd`)? Or use the kernel's resource manager: \
         --tcti device:/dev/tpmrm0 ({source})"
    )
}
