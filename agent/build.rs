//! The commit `--version` names (`git rev-parse`; "unknown" outside a git
//! checkout, e.g. a source tarball).
fn git(args: &[&str]) -> Option<String> {
    std::process::Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BYOK_COMMIT={commit}");
    // Rerun when the commit moves: HEAD, the branch refs, packed refs. Only
    // files that exist are named: cargo reruns a script on every build for a
    // missing one (packed-refs, before the first `git gc`).
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let dir = std::path::Path::new(&dir);
        for f in ["HEAD", "refs/heads", "packed-refs"] {
            let p = dir.join(f);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
}
