//! The TCTI the agent reaches its TPM through (`--tcti`, `BYOK_TCTI`,
//! `TPM2TOOLS_TCTI`, `TCTI`), parsed once into a [`Tcti`].
//!
//! tss-esapi 7 speaks four TCTIs (`device`, `swtpm`, `mssim`, `tabrmd`) and
//! refuses anything else with "the provided parameter is invalid for that
//! type", which names neither the value nor what would work; this parser
//! names both, and checks the configuration's keys and port numbers before
//! the TPM stack sees them.

use std::fmt;
use std::str::FromStr;

/// The default when nothing names a TCTI: the kernel's resource manager.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// The environment variables that may name the TCTI, in order of precedence.
pub const TCTI_ENV: [&str; 3] = ["BYOK_TCTI", "TPM2TOOLS_TCTI", "TCTI"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TctiKind {
    /// A TPM character device (`/dev/tpmrm0`, `/dev/tpm0`).
    Device,
    /// swtpm's TCP server (command port, control port + 1).
    Swtpm,
    /// The Microsoft/IBM simulator protocol.
    Mssim,
    /// The user-space resource manager (tpm2-abrmd) over D-Bus.
    Tabrmd,
}

impl TctiKind {
    pub fn name(self) -> &'static str {
        match self {
            TctiKind::Device => "device",
            TctiKind::Swtpm => "swtpm",
            TctiKind::Mssim => "mssim",
            TctiKind::Tabrmd => "tabrmd",
        }
    }

    const ALL: [TctiKind; 4] = [
        TctiKind::Device,
        TctiKind::Swtpm,
        TctiKind::Mssim,
        TctiKind::Tabrmd,
    ];
}

/// A TCTI: its kind and its configuration string (after the first `:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tcti {
    pub kind: TctiKind,
    pub conf: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TctiError {
    #[error("unknown TCTI {name:?} in {value:?}{from}: use device:/dev/tpmrm0 (a TPM through the kernel's resource manager), device:/dev/tpm0, swtpm:host=127.0.0.1,port=2321, mssim:host=127.0.0.1,port=2321 or tabrmd")]
    UnknownName {
        name: String,
        value: String,
        from: Origin,
    },
    #[error("TCTI {value:?}{from}: {detail}")]
    BadConf {
        value: String,
        detail: String,
        from: Origin,
    },
}

/// Where a TCTI value came from, for messages (" (from BYOK_TCTI)").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin(pub Option<&'static str>);

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(var) => write!(f, " (from {var})"),
            None => Ok(()),
        }
    }
}

impl Tcti {
    /// Parse a value that came from `origin` (an environment variable, or
    /// `None` for `--tcti`).
    pub fn parse_from(value: &str, origin: Option<&'static str>) -> Result<Tcti, TctiError> {
        let value = value.trim();
        let from = Origin(origin);
        let (name, conf) = value.split_once(':').unwrap_or((value, ""));
        // tpm2-tools also accepts the library's file name.
        let bare = name
            .strip_prefix("libtss2-tcti-")
            .map(|n| n.split(".so").next().unwrap_or(n))
            .unwrap_or(name);
        let Some(kind) = TctiKind::ALL.into_iter().find(|k| k.name() == bare) else {
            return Err(TctiError::UnknownName {
                name: name.to_string(),
                value: value.to_string(),
                from,
            });
        };
        let bad = |detail: String| TctiError::BadConf {
            value: value.to_string(),
            detail,
            from: from.clone(),
        };
        match kind {
            TctiKind::Device if !conf.is_empty() && !conf.starts_with('/') => {
                return Err(bad(format!(
                    "the device must be an absolute path such as /dev/tpmrm0, not {conf:?}"
                )));
            }
            TctiKind::Swtpm | TctiKind::Mssim => {
                for item in conf.split(',').filter(|s| !s.is_empty()) {
                    match item.split_once('=') {
                        Some(("host", h)) if !h.is_empty() => {}
                        Some(("port", p)) if p.parse::<u16>().is_ok_and(|p| p > 0) => {}
                        Some(("port", p)) => {
                            return Err(bad(format!(
                                "port {p:?} is not a port number (1 to 65535)"
                            )))
                        }
                        _ => {
                            return Err(bad(format!(
                                "{item:?} is not host=NAME or port=NUMBER (e.g. {}:host=127.0.0.1,port=2321)",
                                kind.name()
                            )))
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(Tcti {
            kind,
            conf: conf.to_string(),
        })
    }

    /// The TCTI a command uses: `--tcti`, else the first of [`TCTI_ENV`]
    /// that is set and not empty, else [`DEFAULT_TCTI`].
    pub fn resolve(
        flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Tcti, TctiError> {
        if let Some(v) = flag {
            return Tcti::parse_from(v, None);
        }
        for var in TCTI_ENV {
            if let Some(v) = env(var).filter(|v| !v.trim().is_empty()) {
                return Tcti::parse_from(&v, Some(var));
            }
        }
        Tcti::parse_from(DEFAULT_TCTI, None)
    }

    /// Whether a resource manager stands between us and the TPM (it
    /// swaps objects and flushes what a client leaves when it disconnects).
    pub fn has_resource_manager(&self) -> bool {
        match self.kind {
            TctiKind::Device => self.conf.starts_with("/dev/tpmrm"),
            TctiKind::Tabrmd => true,
            TctiKind::Swtpm | TctiKind::Mssim => false,
        }
    }

    /// The device path of a `device` TCTI (the TSS default when empty).
    pub fn device_path(&self) -> Option<&str> {
        match self.kind {
            TctiKind::Device if self.conf.is_empty() => Some("/dev/tpm0"),
            TctiKind::Device => Some(&self.conf),
            _ => None,
        }
    }

    /// The host and command port of a network TCTI (the TSS defaults:
    /// localhost, 2321).
    pub fn host_port(&self) -> Option<(String, u16)> {
        if !matches!(self.kind, TctiKind::Swtpm | TctiKind::Mssim) {
            return None;
        }
        let mut host = "localhost".to_string();
        let mut port = 2321;
        for item in self.conf.split(',') {
            match item.split_once('=') {
                Some(("host", h)) => host = h.to_string(),
                Some(("port", p)) => port = p.parse().unwrap_or(port),
                _ => {}
            }
        }
        Some((host, port))
    }
}

impl FromStr for Tcti {
    type Err = TctiError;
    fn from_str(s: &str) -> Result<Tcti, TctiError> {
        Tcti::parse_from(s, None)
    }
}

impl fmt::Display for Tcti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.conf.is_empty() {
            f.write_str(self.kind.name())
        } else {
            write!(f, "{}:{}", self.kind.name(), self.conf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_four_tctis_and_their_defaults() {
        let t: Tcti = "swtpm:host=127.0.0.1,port=2321".parse().unwrap();
        assert_eq!(t.kind, TctiKind::Swtpm);
        assert_eq!(t.host_port(), Some(("127.0.0.1".into(), 2321)));
        assert!(!t.has_resource_manager());
        let t: Tcti = "device:/dev/tpmrm0".parse().unwrap();
        assert!(t.has_resource_manager());
        assert_eq!(t.device_path(), Some("/dev/tpmrm0"));
        assert!(!"device:/dev/tpm0"
            .parse::<Tcti>()
            .unwrap()
            .has_resource_manager());
        assert!("tabrmd".parse::<Tcti>().unwrap().has_resource_manager());
        assert_eq!(
            "mssim".parse::<Tcti>().unwrap().host_port(),
            Some(("localhost".into(), 2321))
        );
        assert_eq!(
            "libtss2-tcti-swtpm.so.0:port=5"
                .parse::<Tcti>()
                .unwrap()
                .to_string(),
            "swtpm:port=5"
        );
    }

    #[test]
    fn names_what_is_wrong_and_where_it_came_from() {
        let e = Tcti::resolve(None, |v| {
            (v == "TPM2TOOLS_TCTI").then(|| "bogus:foo".into())
        })
        .unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, TctiError::UnknownName { ref name, .. } if name == "bogus"));
        assert!(msg.contains("(from TPM2TOOLS_TCTI)"), "{msg}");
        assert!(msg.contains("device:/dev/tpmrm0"), "{msg}");
        for (bad, what) in [
            ("swtpm:port=http", "not a port number"),
            ("swtpm:port=0", "not a port number"),
            ("mssim:hots=x", "not host=NAME or port=NUMBER"),
            ("device:tpmrm0", "absolute path"),
        ] {
            let e = bad.parse::<Tcti>().unwrap_err();
            assert!(matches!(e, TctiError::BadConf { .. }), "{bad}");
            assert!(e.to_string().contains(what), "{bad}: {e}");
        }
    }

    #[test]
    fn resolves_flag_then_environment_then_default() {
        let env = |v: &str| match v {
            "BYOK_TCTI" => Some("".to_string()),
            "TCTI" => Some("swtpm:port=9".to_string()),
            _ => None,
        };
        assert_eq!(
            Tcti::resolve(None, env).unwrap().to_string(),
            "swtpm:port=9"
        );
        assert_eq!(
            Tcti::resolve(Some("mssim"), env).unwrap().to_string(),
            "mssim"
        );
        assert_eq!(
            Tcti::resolve(None, |_| None).unwrap().to_string(),
            DEFAULT_TCTI
        );
    }
}
