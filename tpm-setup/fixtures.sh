#!/usr/bin/env bash
# Regenerate tests/fixtures/: real files made by the binaries on two
# provisioned swtpm "hosts" (each with its own local CA), so the verifier's
# tests run on a machine with no swtpm and no tpm2-tools.
#
#   tpm-setup/fixtures.sh
#
# Rerun it after a change to a file format; the tests then read the new
# files. The nonces are fixed (tests/fixtures/README.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tpm-setup/install-deps.sh"
(cd "$root" && cargo build --bins --quiet)
agent="$root/target/debug/byok-agent"
verifier="$root/target/debug/byok-verifier"
out="$root/tests/fixtures"
work=$(mktemp -d -t tpm-byok-fixtures.XXXXXX)
export TSS2_LOG=all+none
n1=00112233445566778899aabbccddeeff     # the evidence nonce
n2=ffeeddccbbaa99887766554433221100     # the receipt nonce

for h in a b; do
  "$root/tpm-setup/provision.sh" "$work/$h" >/dev/null
  "$root/tpm-setup/swtpm.sh" start "$work/$h" >/dev/null 2>&1
done
trap 'for h in a b; do "$root/tpm-setup/swtpm.sh" stop "$work/$h" || true; done; rm -rf "$work"' EXIT
A=("$agent" --tcti "$(cat "$work/a/tcti")" --state-dir "$work/a-state")
B=("$agent" --tcti "$(cat "$work/b/tcti")" --state-dir "$work/b-state")

rm -rf "$out"
mkdir -p "$out/registry"
cp "$work/a/ca-bundle.pem" "$out/a-ca.pem"
cp "$work/b/ca-bundle.pem" "$out/b-ca.pem"
# Host A's EK-issuing CA with its key (a throwaway test CA): tests issue
# certificates under it that a strict verifier must refuse as EK certificates.
cp "$work/a/ca/issuercert.pem" "$out/a-issuer.pem"
cp "$work/a/ca/signkey.pem" "$out/a-issuer.key"

# Host A: world eu, its evidence, enrolment, a package, its import and receipt.
"${A[@]}" init --world eu >/dev/null
"${A[@]}" evidence --world eu --nonce "$n1" -o "$out/a-eu.evidence" >/dev/null
"$verifier" challenge --evidence "$out/a-eu.evidence" --nonce "$n1" --roots "$out/a-ca.pem" \
  -o "$out/a-eu.challenge" >/dev/null
"${A[@]}" activate --world eu --in "$out/a-eu.challenge" -o "$out/a-eu.activation" >/dev/null
"$verifier" enroll --evidence "$out/a-eu.evidence" --nonce "$n1" --roots "$out/a-ca.pem" \
  --challenge "$out/a-eu.challenge" --activation "$out/a-eu.activation" \
  --registry "$out/registry" --host host-a >/dev/null
rm -f "$out/registry/.lock"   # the enrolment lock, not a record
"$verifier" keygen --alg p256 -o "$work/key.pem" >/dev/null
"$verifier" wrap --evidence "$out/a-eu.evidence" --nonce "$n1" --roots "$out/a-ca.pem" \
  --key "$work/key.pem" -o "$out/a-eu.transfer" >/dev/null
"${A[@]}" import --world eu --in "$out/a-eu.transfer" --name k >/dev/null
"${A[@]}" attest-key --key k --nonce "$n2" -o "$out/a-eu.receipt" >/dev/null
# A second world of host A (another AK, another KEK).
"${A[@]}" init --world us >/dev/null
"${A[@]}" evidence --world us --nonce "$n1" -o "$out/a-us.evidence" >/dev/null

# PCR-bound KEKs of host A: one bound to PCRs 0 and 23, one to 23 alone
# (a PCR software can reset).
"${A[@]}" init --world pcr --pcrs sha256:0,23 >/dev/null 2>&1
"${A[@]}" evidence --world pcr --nonce "$n1" --pcrs 0,1,2,3,4,5,6,7,23 -o "$out/a-pcr.evidence" >/dev/null
"${A[@]}" init --world pcr23 --pcrs sha256:23 >/dev/null 2>&1
"${A[@]}" evidence --world pcr23 --nonce "$n1" --pcrs 0,1,2,3,4,5,6,7,23 -o "$out/a-pcr23.evidence" >/dev/null

# Host B: another TPM, another CA.
"${B[@]}" init --world eu >/dev/null
"${B[@]}" evidence --world eu --nonce "$n1" -o "$out/b-eu.evidence" >/dev/null

cat > "$out/README.md" <<README
# Test fixtures

Real files made by the binaries on two provisioned swtpm hosts, written by
\`tpm-setup/fixtures.sh\` (rerun it after a change to a file format). The
verifier's tests read them, so \`cargo test -p byok-verifier\` needs no swtpm.

| file | what |
|---|---|
| a-ca.pem, b-ca.pem | each host's EK certificate CA (root and intermediate; valid until 9999) |
| a-issuer.pem, a-issuer.key | host A's intermediate (the EK certificate issuer) and its key: a throwaway test CA |
| a-eu.evidence | host A, world eu, nonce $n1 |
| a-us.evidence | host A, world us (another AK and KEK), nonce $n1 |
| a-pcr.evidence | host A, world pcr: a KEK bound to PCRs sha256:0,23 (init --pcrs), PCRs 0-7 and 23 quoted, nonce $n1 |
| a-pcr23.evidence | host A, world pcr23: a KEK bound to PCR sha256:23 alone, PCRs 0-7 and 23 quoted, nonce $n1 |
| b-eu.evidence | host B (another TPM, another CA), world eu, nonce $n1 |
| a-eu.challenge, a-eu.activation | a challenge for a-eu.evidence and host A's answer |
| registry/host-a.cbor | host A enrolled for world eu with that activation |
| a-eu.transfer | a P-256 key wrapped for a-eu.evidence |
| a-eu.receipt | host A's receipt for that key once imported, nonce $n2 |
README
echo "fixtures written to $out"
