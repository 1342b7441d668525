//! `verify` over many files: the files named (directories expanded), checked
//! on all cores through one [`Pipeline`], each report formatted by its
//! worker and written in file order through one buffered writer, a window
//! of files at a time (memory holds two windows' reports: one written while
//! the next is verified).

use crate::error::{io, VerifyError};
use crate::parallel::in_windows;
use crate::pipeline::Pipeline;
use crate::report::{json_line, verified_text, FailedReport, VerifiedReport};
use byok_protocol::text::inert;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The files `paths` name: files as given, directories as their regular
/// files (symbolic links followed) in name order. An empty set is an error.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, VerifyError> {
    let out = list_files(paths)?;
    if out.is_empty() {
        return Err(VerifyError::Usage(
            "--evidence names no file (the directories are empty)".into(),
        ));
    }
    Ok(out)
}

/// The files `paths` name, as [`expand`] lists them; none is not an error
/// (a fleet run reports each host without a file).
pub fn list_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, VerifyError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            // The entry's type comes with the directory listing (no stat per file).
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(io(p))?
                .filter_map(|e| e.ok())
                .filter(|e| match e.file_type() {
                    Ok(t) if t.is_symlink() => e.path().is_file(),
                    Ok(t) => t.is_file(),
                    Err(_) => false,
                })
                .map(|e| e.path())
                .collect();
            // By name: one directory's paths differ in their last component
            // only, and comparing the bytes skips splitting every path.
            files.sort_unstable_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// One file's report and its failure, if any.
fn report(f: &Path, pipeline: &Pipeline, as_json: bool) -> (String, Option<VerifyError>) {
    match pipeline.check_file(f) {
        Ok(v) if as_json => {
            let mut line = json_line(&VerifiedReport::new(f, &v));
            line.push('\n');
            (line, None)
        }
        Ok(v) => (verified_text(f, &v), None),
        Err(e) if as_json => (
            format!(
                "{}\n",
                json_line(&FailedReport {
                    file: f.display().to_string(),
                    ok: false,
                    error: e.to_string(),
                })
            ),
            Some(e),
        ),
        Err(e) => (
            format!(
                "FAIL {}: {}\n",
                inert(&f.display().to_string()),
                inert(&e.to_string())
            ),
            Some(e),
        ),
    }
}

/// Verify `files` on all cores and write their reports to `out` in file
/// order, then (for more than one file) a summary line; the most serious
/// failure is returned (see [`crate::error::Failure::severity`]).
pub fn verify_files(
    files: &[PathBuf],
    pipeline: &Pipeline,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), VerifyError> {
    let bar = byok_protocol::progress::Progress::bar(files.len(), "evidence files verified");
    let stdout = Path::new("(standard output)");
    // The most serious failure decides the exit code (the first of its
    // kind in file order names it).
    let mut worst: Option<VerifyError> = None;
    let mut failed = 0usize;
    in_windows(
        files,
        &bar,
        |f| report(f, pipeline, as_json),
        |_, reports| {
            let mut text = String::with_capacity(reports.iter().map(|(r, _)| r.len()).sum());
            for (report, err) in reports {
                text.push_str(&report);
                if let Some(e) = err {
                    failed += 1;
                    if worst
                        .as_ref()
                        .is_none_or(|w| e.failure().severity() > w.failure().severity())
                    {
                        worst = Some(e);
                    }
                }
            }
            // A window's reports at once, with the progress bar cleared.
            bar.suspend(|| out.write_all(text.as_bytes()))
                .map_err(io(stdout))
        },
    )?;
    drop(bar);
    if files.len() > 1 {
        let ok = files.len() - failed;
        let line = if as_json {
            format!("{{\"summary\":true,\"ok\":{ok},\"failed\":{failed}}}\n")
        } else if byok_protocol::output::quiet() {
            String::new()
        } else {
            format!("{} ok, {} failed\n", thousands(ok), thousands(failed))
        };
        out.write_all(line.as_bytes()).map_err(io(stdout))?;
    }
    out.flush().map_err(io(stdout))?;
    match worst {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// 9994 as "9,994".
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_separators() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(9994), "9,994");
        assert_eq!(super::thousands(1_000_000), "1,000,000");
    }
}
