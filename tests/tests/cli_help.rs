//! Every subcommand of both binaries, from its own `--help`: every option
//! and argument has a description, and the help ends with an example.

use assert_cmd::Command;

fn help(bin: &str, path: &[String]) -> String {
    let out = Command::cargo_bin(bin)
        .unwrap()
        .args(path)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{bin} {path:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// (subcommands, options without a description) of one help text.
fn scan(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut subs, mut bare) = (Vec::new(), Vec::new());
    let lines: Vec<&str> = text.lines().collect();
    let mut section = "";
    for (i, l) in lines.iter().enumerate() {
        if !l.starts_with(' ') && l.ends_with(':') {
            section = l;
            continue;
        }
        let t = l.trim_start();
        if section == "Commands:" && l.starts_with("  ") && !l.starts_with("   ") {
            let name = t.split_whitespace().next().unwrap_or("");
            if name != "help" {
                subs.push(name.to_string());
            }
        }
        // Option and argument lines are indented by at most six spaces
        // ("  -q, --quiet", "      --world <WORLD>", "  <FILE>"); deeper
        // lines continue a description.
        let indent = l.len() - t.len();
        if (section == "Options:" || section == "Arguments:")
            && (2..=6).contains(&indent)
            && (t.starts_with('-') || t.starts_with('<') || t.starts_with('['))
        {
            // "  --flag <V>   description", or the description on the next,
            // further indented line.
            let described = t.trim_end().contains("  ")
                || lines
                    .get(i + 1)
                    .is_some_and(|n| n.len() - n.trim_start().len() > 8 && !n.trim().is_empty());
            if !described {
                bare.push(t.to_string());
            }
        }
    }
    (subs, bare)
}

fn walk(bin: &str, path: Vec<String>, problems: &mut Vec<String>) {
    let text = help(bin, &path);
    let (subs, bare) = scan(&text);
    for b in bare {
        problems.push(format!("{bin} {}: {b} has no description", path.join(" ")));
    }
    if !path.is_empty() && subs.is_empty() && !text.contains("\nExample:\n") {
        problems.push(format!(
            "{bin} {}: no example at the end of --help",
            path.join(" ")
        ));
    }
    for s in subs {
        let mut p = path.clone();
        p.push(s);
        walk(bin, p, problems);
    }
}

#[test]
fn every_flag_is_described_and_every_command_has_an_example() {
    let mut problems = Vec::new();
    for bin in ["byok-agent", "byok-verifier"] {
        walk(bin, Vec::new(), &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn completions_and_man_pages_for_both_binaries() {
    for bin in ["byok-agent", "byok-verifier"] {
        for shell in ["bash", "zsh", "fish", "elvish"] {
            let out = Command::cargo_bin(bin)
                .unwrap()
                .args(["completions", shell])
                .output()
                .unwrap();
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{bin} {shell}"
            );
            let text = String::from_utf8(out.stdout).unwrap();
            assert!(
                text.contains("wrap") || text.contains("evidence"),
                "{bin} {shell}: {text}"
            );
        }
        // The bash script is valid bash.
        let script = tempfile::NamedTempFile::new().unwrap();
        let out = Command::cargo_bin(bin)
            .unwrap()
            .args(["completions", "bash"])
            .output()
            .unwrap();
        std::fs::write(script.path(), out.stdout).unwrap();
        std::process::Command::new("bash")
            .arg("-n")
            .arg(script.path())
            .status()
            .map(|s| assert!(s.success(), "{bin}: bash -n failed"))
            .unwrap();
        // One page per command and subcommand, each a roff page naming it.
        let dir = tempfile::TempDir::new().unwrap();
        Command::cargo_bin(bin)
            .unwrap()
            .args(["man", "-o"])
            .arg(dir.path())
            .assert()
            .success();
        let page = std::fs::read_to_string(dir.path().join(format!("{bin}.1"))).unwrap();
        assert!(
            page.starts_with(".ie") || page.contains(".TH"),
            "{bin}.1 is not roff"
        );
        let sub = if bin == "byok-agent" {
            "byok-agent-kek-rotate.1"
        } else {
            "byok-verifier-wrap.1"
        };
        let text = std::fs::read_to_string(dir.path().join(sub)).unwrap();
        assert!(text.contains("Example"), "{sub} has no example");
    }
}
