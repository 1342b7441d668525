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
# The binaries as the tests build them: `cargo test` unifies the crates'
# features with the dev-dependencies', so a separate `cargo build` would
# compile every dependency (AWS-LC's C included) a second time.
cargo test --workspace --no-run --quiet

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
