#!/usr/bin/env bash
# Run every test of tpm-byok on this machine: installs what is missing,
# builds, checks the verifier's dependency rule, then runs the test suite
# (unit tests and end-to-end tests against swtpm, tpm2-tools and OpenSSL).
set -euo pipefail
# Nothing here reads standard input; a CI runner's stdin once reached the
# compiler (cargo's `rustc -` probe inherits it) and failed the build.
exec </dev/null
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

tpm-setup/install-deps.sh
command -v cargo >/dev/null || { echo "test.sh: cargo not found: install Rust (rustup) first" >&2; exit 1; }

echo "== formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== build"
# The binaries and the tests in one build. `--all-targets` unifies the
# crates' features with the dev-dependencies' as `cargo test` does: a plain
# `cargo build --bins` would compile every dependency (AWS-LC's C included)
# a second time. tpm-setup/package.sh --dev and fleet-demo.sh's dev profile,
# which the tests run, build the same way, so theirs is a no-op here.
cargo build --workspace --all-targets --quiet

echo "== byok-verifier links no TPM library"
if cargo tree -p byok-verifier -e normal,build --prefix none | grep -Ei '^(tss-esapi|tss2|tss-esapi-sys|tpm2)'; then
  echo "test.sh: byok-verifier depends on a TPM library (above)" >&2
  exit 1
fi

echo "== tests"
export TSS2_LOG=all+none
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
