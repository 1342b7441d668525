//! Authorisation values given on the command line (a hierarchy's password),
//! in the syntax of tpm2-tools' `-P`: `str:TEXT` (or bare text), `hex:HEX`,
//! `file:PATH` (the file's bytes, `-` for standard input), and `env:NAME`
//! (the variable's value), so the value need not appear in `ps` output.

use std::fmt;
use std::str::FromStr;
use zeroize::Zeroizing;

/// The largest auth value a TPM takes (TPM2B_AUTH: a SHA-512 digest).
pub const MAX_AUTH: usize = 64;

/// A secret auth value, zeroised when dropped, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthValue(Zeroizing<Vec<u8>>);

impl AuthValue {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for AuthValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthValue(<redacted>)")
    }
}

impl FromStr for AuthValue {
    type Err = String;

    /// Errors name the form and the source, never the value.
    fn from_str(s: &str) -> Result<AuthValue, String> {
        let bytes: Zeroizing<Vec<u8>> = if let Some(h) = s.strip_prefix("hex:") {
            Zeroizing::new(
                hex::decode(h)
                    .map_err(|_| "hex: takes an even number of hex digits".to_string())?,
            )
        } else if let Some(path) = s.strip_prefix("file:") {
            let read = if path == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v).map(|_| v)
            } else {
                std::fs::read(path)
            };
            Zeroizing::new(read.map_err(|e| format!("file:{path}: {e}"))?)
        } else if let Some(name) = s.strip_prefix("env:") {
            let v = std::env::var(name)
                .map_err(|_| format!("env:{name}: the variable is not set (or not UTF-8)"))?;
            Zeroizing::new(v.into_bytes())
        } else {
            Zeroizing::new(s.strip_prefix("str:").unwrap_or(s).as_bytes().to_vec())
        };
        if bytes.len() > MAX_AUTH {
            return Err(format!(
                "an auth value is at most {MAX_AUTH} bytes (this one has {})",
                bytes.len()
            ));
        }
        Ok(AuthValue(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form_gives_its_bytes_and_errors_hide_the_value() {
        assert_eq!("pw".parse::<AuthValue>().unwrap().as_bytes(), b"pw");
        assert_eq!(
            "str:hex:x".parse::<AuthValue>().unwrap().as_bytes(),
            b"hex:x"
        );
        assert_eq!(
            "hex:00ff".parse::<AuthValue>().unwrap().as_bytes(),
            &[0, 0xff]
        );
        let e = "hex:secret1".parse::<AuthValue>().unwrap_err();
        assert!(!e.contains("secret1"), "{e}");
        std::env::set_var("BYOK_TEST_AUTH_VALUE", "from-env");
        assert_eq!(
            "env:BYOK_TEST_AUTH_VALUE"
                .parse::<AuthValue>()
                .unwrap()
                .as_bytes(),
            b"from-env"
        );
        assert!("env:BYOK_TEST_AUTH_UNSET".parse::<AuthValue>().is_err());
        let f = std::env::temp_dir().join(format!("byok-auth-test-{}", std::process::id()));
        std::fs::write(&f, b"\x01file").unwrap();
        let v: AuthValue = format!("file:{}", f.display()).parse().unwrap();
        let _ = std::fs::remove_file(&f);
        assert_eq!(v.as_bytes(), b"\x01file");
        assert!("x".repeat(65).parse::<AuthValue>().is_err());
        assert_eq!(format!("{v:?}"), "AuthValue(<redacted>)");
    }
}
