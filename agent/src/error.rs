//! Agent errors: each names what failed; `exit_code` gives the process status.

use byok_protocol::world::WorldId;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AgentError {
    #[error("TPM command {op} failed: {source}")]
    Tpm {
        op: &'static str,
        #[source]
        source: tss_esapi::Error,
    },
    #[error("the state directory {state_dir} cannot be used: {file} is a file, not a directory; give another --state-dir (or BYOK_STATE_DIR), or move that file away")]
    StateDirNotDirectory { state_dir: String, file: String },
    #[error("{0} (set --tcti or BYOK_TCTI)")]
    BadTcti(byok_protocol::tcti::TctiError),
    #[error("cannot reach the TPM through TCTI {tcti:?}: {why}")]
    TpmUnreachable { tcti: String, why: String },
    #[error("the TPM is in dictionary-attack lockout and refused {op}: too many failed authorisations or unclean restarts (each TPM restart without TPM2_Shutdown counts as one); wait for the lockout to expire, or clear it with `tpm2_dictionarylockout --clear-lockout` (needs the lockout authorisation); objects of worlds made by this version carry noDA and are not affected")]
    DaLockout { op: &'static str },
    #[error("the TPM has no free slot for {op}: its transient memory is taken by objects or sessions other programs loaded; byok-agent flushes only what it loaded itself. If nothing uses them, flush them (`tpm2_flushcontext -t` / `-s`, see `tpm2_getcap handles-transient`), or use the kernel's resource manager (--tcti device:/dev/tpmrm0)")]
    TpmFull { op: &'static str },
    #[error("the TPM refused the authorisation of {op}: the owner or endorsement hierarchy has a password that was not given, or a wrong one was (pass it with --owner-auth / --endorsement-auth as str:TEXT, hex:HEX, file:PATH or env:NAME; `tpm2-tools` set it with tpm2_changeauth)")]
    HierarchyAuth { op: &'static str },
    #[error("lost the connection to the TPM (TCTI {tcti}) during {op}: {detail}; {changed} (check that the TPM or swtpm is running, then retry)")]
    TpmLost {
        tcti: String,
        op: &'static str,
        detail: String,
        /// Whether this command had written to the state before the loss.
        changed: &'static str,
    },
    #[error("the EK's authPolicy {0} is none of the TCG EK Credential Profile's (PolicySecret(endorsement), or its PolicyOR with PolicyAuthorizeNV): this EK cannot be used; choose another with --ek")]
    UnknownEkPolicy(String),
    #[error("TPM returned an unexpected value for {0}")]
    TpmUnexpected(&'static str),
    #[error("no EK certificate in TPM NV index {index:#010x}: {detail}")]
    NoEkCertificate { index: u32, detail: String },
    #[error("world {0:?} is not initialised on this host (run `byok-agent init --world {0}`)")]
    UnknownWorld(WorldId),
    #[error("the KEK of world {world:?} at handle {handle:#010x} is not the one recorded in the state (name differs): the TPM was cleared or the handle was reused")]
    KekChanged { world: WorldId, handle: u32 },
    #[error("no free persistent handle for a KEK in 0x81000100..0x810001ff")]
    NoFreeHandle,
    #[error("no key named {0:?} (see `byok-agent keys list`)")]
    UnknownKey(String),
    #[error("a key named {0:?} already exists; choose another --name or delete it first")]
    KeyExists(String),
    #[error("invalid {what} {value:?}: use 1-64 characters of A-Z a-z 0-9 . _ - (not starting with a dot)")]
    InvalidId { what: &'static str, value: String },
    #[error("invalid {what}: {detail}")]
    InvalidArgument { what: &'static str, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{holder} still holds {path} after {secs} s (--lock-timeout); let it finish, or stop it if it hangs")]
    LockTimeout {
        path: String,
        holder: String,
        secs: f64,
    },
    #[error("state file {path} is corrupt: {detail}")]
    CorruptState { path: String, detail: String },
    #[error("this host is not ready for byok-agent: {0} problem(s) above, each with its fix")]
    NotReady(usize),
    #[error("{} state file(s) could not be read (the others were used): {}", .0.len(), .0.join("; "))]
    CorruptRecords(Vec<String>),
    #[error("the TPM has no room for another persistent object ({detail}); free a slot: `byok-agent kek gc` evicts retired KEKs no key uses, `byok-agent worlds list` shows objects no record names")]
    PersistentStorageFull { detail: String },
    #[error("transfer package is unreadable: {0}")]
    BadPackage(String),
    #[error("transfer package refused before any TPM work: its key is not an object `byok-verifier wrap` makes ({0}); nothing was imported")]
    ForeignObject(#[from] byok_protocol::transfer::TransferObjectError),
    #[error("transfer package is for world {package:?}, not {world:?}")]
    PackageWorldMismatch { package: WorldId, world: WorldId },
    #[error("transfer package was wrapped for KEK {package}, but world {world:?} has KEK {ours}: it was made from evidence of another TPM or an earlier KEK")]
    PackageKekMismatch {
        world: WorldId,
        package: String,
        ours: String,
    },
    #[error("transfer package names AK {package}, but world {world:?} has AK {ours}: it was made from evidence of another TPM or world")]
    PackageAkMismatch {
        world: WorldId,
        package: String,
        ours: String,
    },
    #[error("the TPM refused the credential (TPM2_ActivateCredential): the package was not made for this TPM's EK and AK, or it was altered: {source}")]
    ActivationRefused {
        #[source]
        source: tss_esapi::Error,
    },
    #[error("the TPM refused the key (TPM2_Import under the world's KEK): the package was not made for this KEK, or it was altered: {source}")]
    ImportRefused {
        #[source]
        source: tss_esapi::Error,
    },
    #[error("the TPM could not decrypt the .byok key block with the world's compat KEK (TPM2_RSA_Decrypt): it was made for another KEK, or it was altered: {source}")]
    DecryptRefused {
        #[source]
        source: tss_esapi::Error,
    },
    #[error("world {0:?} has no compat KEK (run `byok-agent init --world {0} --compat-kek`)")]
    NoCompatKek(String),
    #[error(".byok file is for KEK {kid:?}, not this world's compat KEK {ours:?}")]
    ByokKidMismatch { kid: String, ours: String },
    #[error(".byok file is unreadable: {0}")]
    BadByok(String),
    #[error("this TPM does not support {0} keys (TPM2_TestParms refused them); wrap a key type it supports")]
    UnsupportedByTpm(String),
    #[error("the TPM refused {op}: the PCRs {pcrs} do not have the values this object is bound to (its PCR policy failed); restore the platform state it was bound to")]
    PcrPolicyFailed { op: &'static str, pcrs: String },
    #[error("the TPM's owner seed changed (it was cleared): the KEKs of world(s) {} cannot be re-created, so they and their {keys} stored key(s) are lost; remove each with `byok-agent world destroy --world W --yes`, run `init` again and re-import the keys", worlds.join(", "))]
    OwnerSeedChanged { worlds: Vec<WorldId>, keys: usize },
    #[error("transfer package was wrapped for KEK generation {generation} of world {world:?}, which was rotated (`kek rotate`); fetch new evidence and wrap the key again")]
    KekRotated { world: WorldId, generation: u32 },
    #[error("{0}")]
    Protocol(String),
}

impl AgentError {
    /// Distinct exit codes: 2 usage, 3 TPM, 4 state/IO, 5 bad input,
    /// 6 unknown world/key, 7 package for another world/KEK/TPM, 8 TPM refused the package,
    /// 9 key type unsupported by this TPM, 11 world lost (TPM cleared),
    /// 12 TPM in dictionary-attack lockout, 13 `doctor` found problems.
    /// (10 is the verifier's "a check failed".)
    pub fn exit_code(&self) -> i32 {
        use AgentError::*;
        match self {
            InvalidId { .. } | InvalidArgument { .. } | BadTcti(_) => 2,
            Tpm { .. }
            | TpmUnreachable { .. }
            | TpmLost { .. }
            | UnknownEkPolicy(_)
            | TpmFull { .. }
            | HierarchyAuth { .. }
            | TpmUnexpected(_)
            | NoEkCertificate { .. }
            | NoFreeHandle
            | PersistentStorageFull { .. }
            | KekChanged { .. } => 3,
            Io { .. }
            | StateDirNotDirectory { .. }
            | CorruptState { .. }
            | CorruptRecords(_)
            | LockTimeout { .. } => 4,
            BadPackage(_) | Protocol(_) | BadByok(_) | ForeignObject(_) => 5,
            UnknownWorld(_) | UnknownKey(_) | KeyExists(_) | NoCompatKek(_) => 6,
            PackageWorldMismatch { .. }
            | PackageKekMismatch { .. }
            | PackageAkMismatch { .. }
            | ByokKidMismatch { .. }
            | KekRotated { .. } => 7,
            ActivationRefused { .. }
            | ImportRefused { .. }
            | DecryptRefused { .. }
            | PcrPolicyFailed { .. } => 8,
            UnsupportedByTpm(_) => 9,
            OwnerSeedChanged { .. } => 11,
            DaLockout { .. } => 12,
            NotReady(_) => 13,
        }
    }
}

pub type Result<T> = std::result::Result<T, AgentError>;

/// What a failed TPM command says about the TPM itself, whatever the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TpmFault {
    /// The transport failed (TCTI layer): the TPM is gone, not refusing.
    Lost,
    /// TPM_RC_LOCKOUT: dictionary-attack lockout.
    Lockout,
    /// TPM_RC_OBJECT_MEMORY / TPM_RC_SESSION_MEMORY: no free slot.
    Full,
    /// TPM_RC_BAD_AUTH / TPM_RC_AUTH_FAIL: an auth value was wrong (the
    /// agent's own objects have empty ones: a hierarchy password).
    BadAuth,
}

/// The TPM-wide condition behind `e`, if any.
pub fn tpm_fault(e: &tss_esapi::Error) -> Option<TpmFault> {
    use tss_esapi::constants::response_code::{Tss2ResponseCode, Tss2ResponseCodeKind as K};
    let tss_esapi::Error::Tss2Error(rc) = e else {
        return None;
    };
    let raw = match rc {
        Tss2ResponseCode::Success => return None,
        Tss2ResponseCode::FormatZero(c) => c.0,
        Tss2ResponseCode::FormatOne(c) => c.0,
    };
    // TSS2_TCTI_RC_LAYER: the response never came from a TPM.
    if raw >> 16 == 0x0a {
        return Some(TpmFault::Lost);
    }
    if raw >> 16 != 0 {
        return None;
    }
    match rc.kind() {
        Some(K::Lockout) => Some(TpmFault::Lockout),
        Some(K::ObjectMemory) | Some(K::SessionMemory) => Some(TpmFault::Full),
        Some(K::BadAuth) | Some(K::AuthFail) => Some(TpmFault::BadAuth),
        _ => None,
    }
}

impl AgentError {
    /// The error as the operator should read it: a TPM that is gone or locked
    /// out is named as such, whatever command or refusal it surfaced in
    /// (never as "the package was altered"). `changed`: whether the command
    /// had written to the state.
    pub fn diagnosed(self, tcti: &str, changed: bool) -> AgentError {
        use AgentError::*;
        let (op, source) = match &self {
            Tpm { op, source } => (*op, source),
            ActivationRefused { source } => ("TPM2_ActivateCredential", source),
            ImportRefused { source } => ("TPM2_Import", source),
            DecryptRefused { source } => ("TPM2_RSA_Decrypt", source),
            _ => return self,
        };
        match tpm_fault(source) {
            Some(TpmFault::Lockout) => DaLockout { op },
            Some(TpmFault::Full) => TpmFull { op },
            Some(TpmFault::BadAuth) => HierarchyAuth { op },
            Some(TpmFault::Lost) => TpmLost {
                tcti: tcti.to_string(),
                op,
                detail: source.to_string(),
                changed: if changed {
                    "the state was updated before the loss; the next command settles any half-done step"
                } else {
                    "nothing was changed"
                },
            },
            None => self,
        }
    }
}

impl From<byok_protocol::files::FileError> for AgentError {
    fn from(e: byok_protocol::files::FileError) -> AgentError {
        AgentError::Io {
            path: e.path.display().to_string(),
            source: e.source,
        }
    }
}

pub fn tpm(op: &'static str) -> impl FnOnce(tss_esapi::Error) -> AgentError {
    move |source| AgentError::Tpm { op, source }
}

pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> AgentError + '_ {
    move |source| AgentError::Io {
        path: path.display().to_string(),
        source,
    }
}
