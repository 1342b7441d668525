//! Keys in use: sign, RSA-OAEP decrypt, AES-CFB, HMAC, unseal.

use super::{Protect, Tpm, MAX_BUFFER};
use crate::error::{tpm, AgentError, Result};
use byok_protocol::policy::PcrSpec;
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, SymmetricMode};
use tss_esapi::structures::{
    Data, Digest, HashcheckTicket, InitialValue, MaxBuffer, Signature, SignatureScheme,
};
use zeroize::Zeroizing;

impl Tpm {
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
}
