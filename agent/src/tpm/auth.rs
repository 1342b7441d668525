//! Authorisation: password, PolicySecret and PolicyPCR sessions for EKs,
//! KEKs and keys; salted sessions that encrypt the secret parameters.

use super::{pcr_selection, policy_failed, Parent, Protect, Tpm};
use crate::error::{tpm, AgentError, Result};
use byok_protocol::policy::PcrSpec;
use tss_esapi::attributes::SessionAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{AuthHandle, KeyHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{Digest, Nonce, SymmetricDefinition};
use tss_esapi::Context;

impl Tpm {
    /// Flush a policy session (a password "session" needs nothing).
    pub(super) fn end_session(&mut self, auth: AuthSession) {
        if auth != AuthSession::Password {
            self.flush_session(auth);
        }
    }

    /// A session authorizing use of `parent` (see [`Parent`]).
    pub(super) fn parent_auth(&mut self, parent: &Parent) -> Result<AuthSession> {
        let Some(p) = &parent.policy else {
            return Ok(AuthSession::Password);
        };
        let session = self.pcr_policy_session(&p.pcrs)?;
        if let Err(e) = self.policy_secret(session, AuthHandle::Owner, p.policy_ref.clone()) {
            self.flush_session(session);
            return Err(tpm("TPM2_PolicySecret(owner)")(e));
        }
        Ok(session)
    }

    /// TPM2_PolicySecret on `session` with the (empty) auth value of the
    /// hierarchy `auth`, and `policy_ref`: the one place the agent proves a
    /// hierarchy's authorization into a policy (the EK's endorsement policy,
    /// a PCR-bound KEK's owner policy with the world as policyRef).
    pub(super) fn policy_secret(
        &mut self,
        session: AuthSession,
        auth: AuthHandle,
        policy_ref: Vec<u8>,
    ) -> tss_esapi::Result<()> {
        let policy = PolicySession::try_from(session)?;
        let policy_ref = Nonce::try_from(policy_ref)?;
        self.ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.policy_secret(
                    policy,
                    auth,
                    Default::default(),
                    Default::default(),
                    policy_ref,
                    None,
                )
            })
            .map(|_| ())
    }

    /// Run `f` with the parent's authorization; a failed KEK policy becomes
    /// [`AgentError::PcrPolicyFailed`].
    pub(super) fn with_parent<T>(
        &mut self,
        parent: &Parent,
        op: &'static str,
        f: impl FnOnce(&mut Context) -> tss_esapi::Result<T>,
    ) -> Result<T> {
        self.with_parent_protected(parent, op, None, f)
    }

    /// [`Tpm::with_parent`] with a parameter-encryption session for a secret
    /// the command carries ([`Protect`]), salted with the parent.
    pub(super) fn with_parent_protected<T>(
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

    /// A session that encrypts a command's first parameter
    /// ([`Protect::Command`]) or its response's ([`Protect::Response`]) with
    /// AES-128-CFB, as `tpm2_startauthsession --tpmkey` sets up: an HMAC
    /// session salted with `salt` (a decryption key of this TPM whose Name the
    /// agent has checked: the world's KEK, or the EK), so its session key is
    /// known only to the TPM and this process. Anyone reading the TCTI sees
    /// ciphertext for the protected parameter. Flushed by the caller.
    pub(super) fn param_session(
        &mut self,
        salt: KeyHandle,
        protect: Protect,
    ) -> Result<AuthSession> {
        let session = self.tracked(
            true,
            None,
            |t| {
                t.ctx
                    .start_auth_session(
                        Some(salt),
                        None,
                        None,
                        SessionType::Hmac,
                        SymmetricDefinition::AES_128_CFB,
                        HashingAlgorithm::Sha256,
                    )
                    .map_err(tpm("TPM2_StartAuthSession(salted)"))?
                    .ok_or(AgentError::TpmUnexpected("salted session"))
            },
            |s| SessionHandle::from(*s).into(),
        )?;
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
    pub(super) fn start_policy_session(&mut self, hash: HashingAlgorithm) -> Result<AuthSession> {
        let session = self.tracked(
            true,
            None,
            |t| {
                t.ctx
                    .start_auth_session(
                        None,
                        None,
                        None,
                        SessionType::Policy,
                        SymmetricDefinition::AES_128_CFB,
                        hash,
                    )
                    .map_err(tpm("TPM2_StartAuthSession"))?
                    .ok_or(AgentError::TpmUnexpected("policy session"))
            },
            |s| SessionHandle::from(*s).into(),
        )?;
        let (attrs, mask) = SessionAttributesBuilder::new().build();
        if let Err(e) = self.ctx.tr_sess_set_attributes(session, attrs, mask) {
            self.flush_session(session);
            return Err(tpm("session attributes")(e));
        }
        Ok(session)
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
    pub(super) fn with_object_auth<T>(
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
}
