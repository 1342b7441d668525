#!/usr/bin/env bash
# Mutation testing of the verification code (cargo-mutants): every check the
# verifier makes must have a test that fails when the check is broken. A
# mutant that survives is a check no test defends.
#
#   tpm-setup/mutants.sh                 # the verification code (hours on 2 cores)
#   tpm-setup/mutants.sh verifier/src/check/kek.rs [-F REGEX] ...
#
# Arguments are files (each passed as -f) and any further cargo-mutants
# options. The tests run per mutant are the verifier's own (committed
# fixtures, no TPM) and the swtpm-fed verifier tests in tests/tests/verifier_*.rs.
# It mutates a scratch clone of HEAD (commit first), in place, so the tests
# find the binaries built there; your working tree is never touched.
# Results: target/mutants/mutants.out/{caught,missed,timeout,unviable}.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tpm-setup/install-deps.sh"
command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
export TSS2_LOG=all+none
# The real-certificate tests read ../shared/testdata beside the repository.
if [ -z "${BYOK_TESTDATA:-}" ] && [ -d "$root/../shared/testdata" ]; then
  export BYOK_TESTDATA="$root/../shared/testdata"
fi
work="$root/target/mutants-clone"
rm -rf "$work"
git clone --quiet "$root" "$work"
cd "$work"
# The tests call both binaries: build them once; each mutant's test run
# rebuilds the verifier binary (its package's tests need it).
cargo build --workspace --bins --quiet

files=() opts=()
for a in "$@"; do
  if [ -f "$a" ]; then files+=(-f "$a"); else opts+=("$a"); fi
done
if [ ${#files[@]} -eq 0 ]; then
  for f in verifier/src/verify.rs verifier/src/check/*.rs verifier/src/certs/*.rs \
           verifier/src/receipt.rs verifier/src/registry.rs verifier/src/pipeline.rs \
           verifier/src/policy.rs protocol/src/transfer.rs; do
    files+=(-f "$f")
  done
fi

# cargo-mutants runs `cargo test` once per test package, with the same
# arguments each time, so the two sets of tests are two passes over the same
# mutants: the verifier's own (fast, no TPM), then, for the mutants those
# missed only (--iterate), the swtpm-fed verifier tests of byok-tests.
own=(--cargo-test-arg=--lib)
for t in verifier/tests/*.rs; do
  own+=("--cargo-test-arg=--test=$(basename "$t" .rs)")
done
fed=()
for t in tests/tests/verifier_*.rs; do
  fed+=("--cargo-test-arg=--test=$(basename "$t" .rs)")
done
out="$root/target/mutants"
rm -rf "$out"
cargo mutants --in-place --no-shuffle "${files[@]}" --test-package byok-verifier \
  "${own[@]}" -o "$out" "${opts[@]+"${opts[@]}"}" || true
# The last mutant's verifier binary is still on disk: the tests of the second
# pass call the unmutated one (they mutate the library they link).
cargo build --workspace --bins --quiet
# cargo-mutants 27 runs its baseline on the mutated package's tests only
# (which do not have these targets), so the baseline is run here and skipped
# there.
fed_args=()
for t in tests/tests/verifier_*.rs; do fed_args+=(--test "$(basename "$t" .rs)"); done
cargo test --quiet -p byok-tests "${fed_args[@]}" >/dev/null
cargo mutants --in-place --no-shuffle --iterate --baseline=skip --timeout 600 "${files[@]}" \
  --test-package byok-tests "${fed[@]}" -o "$out" "${opts[@]+"${opts[@]}"}"
