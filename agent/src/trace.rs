//! `-v`: one line per TPM command with its response code, on standard
//! error, as the command runs ("byok-agent: tpm: TPM2_Create: TPM_RC_SUCCESS").
//!
//! tss-esapi has no hook around the commands it sends, and a TCTI wrapper
//! would need unsafe code, so the trace is read from the ESYS layer's own log:
//! the TSS writes it (`TSS2_LOG=esys+trace`) to a file of ours
//! (`TSS2_LOGFILE`), and a thread turns each `Esys_X_Async()` entry into a
//! line once the next command starts (success) or the TSS reports its
//! error code. ESYS lines are the same whatever the TCTI (device, swtpm,
//! mssim, tabrmd). The stack's own warnings and errors pass through as they
//! are, but for one known-harmless line (see [`HARMLESS`]).

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// ESYS logs an ERROR when tss-esapi closes a handle ESYS already dropped
/// (on every successful `init` and `evidence`): not a failure.
const HARMLESS: &str = "Esys_TR_Close() Error: Esys handle does not exist";

/// The running trace; [`Tracer::finish`] prints what is left.
pub struct Tracer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: Option<tempfile::TempDir>,
}

impl Tracer {
    /// Route the TSS log into a private file and follow it. Call before the
    /// first TSS call reads the environment (the process has one thread).
    pub fn start() -> Option<Tracer> {
        let dir = tempfile::Builder::new()
            .prefix("byok-agent-trace-")
            .tempdir()
            .ok()?;
        let file: PathBuf = dir.path().join("tss2.log");
        std::fs::File::create(&file).ok()?;
        std::env::set_var("TSS2_LOG", "all+warning,esys+trace");
        std::env::set_var("TSS2_LOGFILE", &file);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || follow(&file, &stopped));
        Some(Tracer {
            stop,
            thread: Some(thread),
            dir: Some(dir),
        })
    }

    /// Print the rest of the trace (the last command's line) and stop.
    pub fn finish(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.dir.take();
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Follow `file` until `stop`, then read what is left.
fn follow(file: &std::path::Path, stop: &AtomicBool) {
    let Ok(mut f) = std::fs::File::open(file) else {
        return;
    };
    let mut parser = Parser::default();
    let mut partial = String::new();
    loop {
        let done = stop.load(Ordering::SeqCst);
        let mut chunk = String::new();
        if f.read_to_string(&mut chunk).is_ok() && !chunk.is_empty() {
            partial.push_str(&chunk);
            while let Some(i) = partial.find('\n') {
                let line: String = partial.drain(..=i).collect();
                for out in parser.line(line.trim_end()) {
                    eprintln!("{out}");
                }
            }
        } else {
            // Nothing new: poll again (the file is ours; it only grows).
            if done {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if let Some(out) = parser.end() {
        eprintln!("{out}");
    }
}

/// Turns ESYS log lines into trace lines.
#[derive(Default)]
struct Parser {
    /// The command sent and not yet answered.
    pending: Option<String>,
}

impl Parser {
    fn line(&mut self, line: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(rest) = line.strip_prefix("trace:esys:") {
            if let Some(cmd) = esys_call(rest, "_Async()") {
                out.extend(self.answered("TPM_RC_SUCCESS"));
                self.pending = Some(cmd.to_string());
            }
            return out;
        }
        let line = line.trim_end();
        // Our line for the command says it (with the code, which follows).
        let said = line.contains("Received TPM Error");
        if line.is_empty() || line.starts_with("debug:") || line.contains(HARMLESS) || said {
            return out;
        }
        // "ERROR:esys:…:Esys_Load() Esys Finish ErrorCode (0x000001df)".
        if let (Some(cmd), Some(code)) = (self.pending.as_deref(), error_code(line)) {
            if line.contains(&format!("Esys_{cmd}")) {
                let rc = format!("{code} ({})", rc_name(code));
                out.extend(self.answered(&rc));
                return out;
            }
        }
        out.push(line.to_string());
        out
    }

    fn answered(&mut self, rc: &str) -> Option<String> {
        self.pending
            .take()
            .map(|cmd| format!("byok-agent: tpm: TPM2_{cmd}: {rc}"))
    }

    fn end(&mut self) -> Option<String> {
        self.answered("TPM_RC_SUCCESS")
    }
}

/// `Esys_X` in "src/…/Esys_X.c:123:Esys_X_Async() …" (ending in `suffix`).
fn esys_call<'a>(rest: &'a str, suffix: &str) -> Option<&'a str> {
    let end = rest.find(suffix)?;
    let start = rest[..end].rfind(':')? + 1;
    rest[start..end].strip_prefix("Esys_")
}

/// The hex in "ErrorCode (0x000001df)".
fn error_code(line: &str) -> Option<&str> {
    let at = line.find("ErrorCode (0x")? + "ErrorCode (".len();
    let len = line[at..].find(')')?;
    Some(&line[at..at + len])
}

/// What a response code is, as tss-esapi names it (`Integrity`,
/// `AuthFail`, …), or its layer when it did not come from the TPM.
fn rc_name(hex: &str) -> String {
    use tss_esapi::constants::response_code::Tss2ResponseCode;
    let Ok(rc) = u32::from_str_radix(hex.trim_start_matches("0x"), 16) else {
        return "unknown".into();
    };
    match rc >> 16 {
        0 => match Tss2ResponseCode::from(rc).kind() {
            Some(kind) => format!("{kind:?}"),
            None => "see `tpm2_rc_decode`".into(),
        },
        0x0a => "TCTI layer: the connection to the TPM".into(),
        _ => "TSS layer".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_command_gets_one_line_with_its_response_code() {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for l in [
            "trace:esys:src/tss2-esys/api/Esys_ReadPublic.c:149:Esys_ReadPublic_Async() context=0x5, objectHandle=40418488 ",
            "trace:esys:src/tss2-esys/api/Esys_ReadPublic.c:247:Esys_ReadPublic_Finish() context=0x5",
            "ERROR:esys:src/tss2-esys/esys_tr.c:434:Esys_TR_Close() Error: Esys handle does not exist (70018). ",
            "trace:esys:src/tss2-esys/api/Esys_Load.c:149:Esys_Load_Async() context=0x5",
            "WARNING:esys:src/tss2-esys/api/Esys_Load.c:324:Esys_Load_Finish() Received TPM Error ",
            "ERROR:esys:src/tss2-esys/api/Esys_Load.c:112:Esys_Load() Esys Finish ErrorCode (0x000001df) ",
            "WARNING:esys:src/tss2-esys/esys_iutil.c:1:iesys_check_sequence_async() Esys called in bad sequence. ",
            "trace:esys:src/tss2-esys/api/Esys_Quote.c:1:Esys_Quote_Async() context=0x5",
        ] {
            out.extend(p.line(l));
        }
        out.extend(p.end());
        assert_eq!(
            out,
            [
                "byok-agent: tpm: TPM2_ReadPublic: TPM_RC_SUCCESS",
                "byok-agent: tpm: TPM2_Load: 0x000001df (Integrity)",
                "WARNING:esys:src/tss2-esys/esys_iutil.c:1:iesys_check_sequence_async() Esys called in bad sequence.",
                "byok-agent: tpm: TPM2_Quote: TPM_RC_SUCCESS",
            ]
        );
    }

    #[test]
    fn response_codes_are_named_by_layer() {
        assert_eq!(rc_name("0x0000098e"), "AuthFail");
        assert_eq!(rc_name("0x00000921"), "Lockout");
        assert_eq!(
            rc_name("0x000a000a"),
            "TCTI layer: the connection to the TPM"
        );
    }
}
