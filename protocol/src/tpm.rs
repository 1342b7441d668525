//! TPM 2.0 constants (TCG TPM 2.0 Library, Part 2) used across the project.

pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;

pub mod alg {
    pub const RSA: u16 = 0x0001;
    pub const SHA1: u16 = 0x0004;
    pub const HMAC: u16 = 0x0005;
    pub const AES: u16 = 0x0006;
    pub const MGF1: u16 = 0x0007;
    pub const KEYEDHASH: u16 = 0x0008;
    pub const XOR: u16 = 0x000a;
    pub const SHA256: u16 = 0x000b;
    pub const SHA384: u16 = 0x000c;
    pub const SHA512: u16 = 0x000d;
    pub const NULL: u16 = 0x0010;
    pub const RSASSA: u16 = 0x0014;
    pub const RSAES: u16 = 0x0015;
    pub const RSAPSS: u16 = 0x0016;
    pub const OAEP: u16 = 0x0017;
    pub const ECDSA: u16 = 0x0018;
    pub const ECDH: u16 = 0x0019;
    pub const ECDAA: u16 = 0x001a;
    pub const SM2: u16 = 0x001b;
    pub const ECSCHNORR: u16 = 0x001c;
    pub const KDF1_SP800_56A: u16 = 0x0020;
    pub const KDF2: u16 = 0x0021;
    pub const KDF1_SP800_108: u16 = 0x0022;
    pub const ECC: u16 = 0x0023;
    pub const SYMCIPHER: u16 = 0x0025;
    pub const CFB: u16 = 0x0043;
}

pub mod curve {
    pub const NIST_P256: u16 = 0x0003;
    pub const NIST_P384: u16 = 0x0004;
    pub const NIST_P521: u16 = 0x0005;
}

/// TPMA_OBJECT bits.
pub mod attr {
    pub const FIXED_TPM: u32 = 1 << 1;
    pub const ST_CLEAR: u32 = 1 << 2;
    pub const FIXED_PARENT: u32 = 1 << 4;
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    pub const USER_WITH_AUTH: u32 = 1 << 6;
    pub const ADMIN_WITH_POLICY: u32 = 1 << 7;
    pub const NO_DA: u32 = 1 << 10;
    pub const ENCRYPTED_DUPLICATION: u32 = 1 << 11;
    pub const RESTRICTED: u32 = 1 << 16;
    pub const DECRYPT: u32 = 1 << 17;
    pub const SIGN: u32 = 1 << 18;

    /// Names of the set bits, for messages and `inspect`.
    pub fn names(a: u32) -> Vec<&'static str> {
        const ALL: [(u32, &str); 11] = [
            (FIXED_TPM, "fixedTPM"),
            (ST_CLEAR, "stClear"),
            (FIXED_PARENT, "fixedParent"),
            (SENSITIVE_DATA_ORIGIN, "sensitiveDataOrigin"),
            (USER_WITH_AUTH, "userWithAuth"),
            (ADMIN_WITH_POLICY, "adminWithPolicy"),
            (NO_DA, "noDA"),
            (ENCRYPTED_DUPLICATION, "encryptedDuplication"),
            (RESTRICTED, "restricted"),
            (DECRYPT, "decrypt"),
            (SIGN, "sign"),
        ];
        ALL.iter()
            .filter(|(b, _)| a & b != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

pub mod st {
    pub const ATTEST_CERTIFY: u16 = 0x8017;
    pub const ATTEST_QUOTE: u16 = 0x8018;
}

/// Permanent handles that appear in qualified names.
pub mod rh {
    pub const OWNER: u32 = 0x4000_0001;
    pub const NULL: u32 = 0x4000_0007;
    pub const ENDORSEMENT: u32 = 0x4000_000b;
    pub const PLATFORM: u32 = 0x4000_000c;

    pub fn name(h: u32) -> &'static str {
        match h {
            OWNER => "owner",
            NULL => "null",
            ENDORSEMENT => "endorsement",
            PLATFORM => "platform",
            _ => "unknown",
        }
    }
}

/// The TCG EK certificate NV indices (TCG EK Credential Profile 2.x).
pub mod nv {
    pub const EK_CERT_RSA2048: u32 = 0x01c0_0002;
    pub const EK_CERT_ECC_P256: u32 = 0x01c0_000a;
    pub const EK_CERT_ECC_P384: u32 = 0x01c0_0016;
}
