//! Golden files for the command lines (trycmd): every `--help` and the
//! common usage errors, so a changed message or option is a visible diff.
//! `TRYCMD=overwrite cargo test -p byok-tests --test cli_golden` rewrites
//! them after a deliberate change.

#[test]
fn help_and_usage_errors() {
    trycmd::TestCases::new()
        .register_bin("byok-agent", assert_cmd::cargo::cargo_bin("byok-agent"))
        .register_bin(
            "byok-verifier",
            assert_cmd::cargo::cargo_bin("byok-verifier"),
        )
        .env("TSS2_LOG", "all+none")
        .case("cmd/*.md");
}
