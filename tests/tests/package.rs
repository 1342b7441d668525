//! The Debian packages: `tpm-setup/package.sh --dev` builds both (cargo-deb,
//! lintian with no errors), and each runs from a scratch root it was
//! unpacked into with `dpkg-deb -x`: `--version` with the commit, a help
//! page, its man pages and a bash completion script that loads.

use byok_tests::workspace_root;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

fn run(c: &mut Command) -> String {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn deb(listing: &str, name: &str) -> PathBuf {
    let line = listing
        .lines()
        .find(|l| {
            Path::new(l)
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with(&format!("{name}_")))
        })
        .unwrap_or_else(|| panic!("package.sh listed no {name} package: {listing}"));
    workspace_root().join(line)
}

// Long on purpose: building the packages takes most of a minute, so both
// are checked from one build.
#[test]
fn both_packages_build_and_run_from_a_scratch_root() {
    let root = workspace_root();
    let listing = run(Command::new(root.join("tpm-setup/package.sh"))
        .arg("--dev")
        .current_dir(&root));
    for (name, help, tpm_dependency) in [
        ("byok-agent", "init", true),
        ("byok-verifier", "wrap", false),
    ] {
        let package = deb(&listing, name);
        let depends = run(Command::new("dpkg-deb")
            .arg("-f")
            .arg(&package)
            .arg("Depends"));
        assert_eq!(
            depends.contains("libtss2-esys"),
            tpm_dependency,
            "{name} depends on: {depends}"
        );
        let scratch = TempDir::new().unwrap();
        run(Command::new("dpkg-deb")
            .arg("-x")
            .arg(&package)
            .arg(scratch.path()));
        let usr = scratch.path().join("usr");
        let bin = usr.join("bin").join(name);

        let version = run(Command::new(&bin).arg("--version"));
        assert!(
            version.starts_with(&format!("{name} 0.1.0 (commit ")) && !version.contains("unknown"),
            "{version}"
        );
        let page = run(Command::new(&bin).args([help, "--help"]));
        assert!(page.contains("\nExample:\n"), "{page}");

        // The man pages: one per command, roff with the name.
        for page in [format!("{name}.1.gz"), format!("{name}-{help}.1.gz")] {
            let path = usr.join("share/man/man1").join(&page);
            let roff = run(Command::new("zcat").arg(&path));
            assert!(roff.contains(".TH"), "{page} is not a man page");
        }

        // The bash completion loads and completes the subcommand (bash
        // calls the function with the command, the word and the one before).
        let prefix = &help[..2];
        let script = usr.join("share/bash-completion/completions").join(name);
        let line = format!(
            "source {}; COMP_WORDS=({name} {prefix}); COMP_CWORD=1; _{} {name} {prefix} {name}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            name.replace('-', "__")
        );
        let completed = run(Command::new("bash").arg("-c").arg(line));
        assert!(
            completed.lines().any(|l| l == help),
            "bash completion of {name} {prefix}: {completed}"
        );
        for f in [
            format!("share/zsh/vendor-completions/_{name}"),
            format!("share/fish/vendor_completions.d/{name}.fish"),
            format!("share/doc/{name}/README.md"),
            format!("share/doc/{name}/operator-guide.md"),
            format!("share/doc/{name}/copyright"),
        ] {
            assert!(usr.join(&f).is_file(), "{name} has no {f}");
        }
    }
}
