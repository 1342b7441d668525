#!/usr/bin/env bash
# The whole tpm-byok flow on a fresh machine: install what is missing, build,
# provision a swtpm with EK certificates from a local CA, then run
# init -> evidence -> enroll the host (challenge -> activate -> enroll) ->
# verify -> keygen -> wrap -> import -> sign -> OpenSSL check -> attest-key ->
# check-receipt, printing each step and its time.
#
#   tpm-setup/demo.sh [WORK_DIR]     (default: a new temporary directory)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d -t tpm-byok-demo.XXXXXX)}
mkdir -p "$work"
work=$(cd "$work" && pwd)

"$root/tpm-setup/install-deps.sh"
command -v cargo >/dev/null || { echo "demo.sh: cargo not found: install Rust (rustup) first" >&2; exit 1; }
echo "== building (release)"
(cd "$root" && cargo build --release --bins --quiet)
agent="$root/target/release/byok-agent"
verifier="$root/target/release/byok-verifier"
export TSS2_LOG=all+none

step() { printf '\n== %s\n' "$*"; }
now() { echo "${EPOCHREALTIME/./}"; }          # microseconds
ms() { echo $(( ($(now) - $1) / 1000 )); }
took() { echo "   ($(ms "$1") ms)"; }
t_all=$(now)

step "provision swtpm (RSA and ECC EKs, EK certificates from a local CA in $work/tpm/ca)"
t=$(now)
"$root/tpm-setup/provision.sh" "$work/tpm" >/dev/null
tcti=$("$root/tpm-setup/swtpm.sh" start "$work/tpm")
trap '"$root/tpm-setup/swtpm.sh" stop "$work/tpm"' EXIT
echo "   TCTI $tcti; CA bundle $work/tpm/ca-bundle.pem"
took "$t"
A=("$agent" --tcti "$tcti" --state-dir "$work/agent-state")
roots="$work/tpm/ca-bundle.pem"
nonce=$(openssl rand -hex 16)

step "TPM host: byok-agent init --world demo   (EK, AK under the EK, the world's KEK)"
t=$(now); "${A[@]}" init --world demo; took "$t"
registry="$work/registry"
step "enroll the host once: byok-verifier challenge -> byok-agent activate -> byok-verifier enroll"
t=$(now)
enonce=$(openssl rand -hex 16)
"${A[@]}" evidence --world demo --nonce "$enonce" -o "$work/enrol.evidence"
"$verifier" challenge --evidence "$work/enrol.evidence" --nonce "$enonce" --roots "$roots" -o "$work/challenge.cbor" >/dev/null
"${A[@]}" activate --world demo --in "$work/challenge.cbor" -o "$work/activation.cbor" >/dev/null
"$verifier" enroll --evidence "$work/enrol.evidence" --nonce "$enonce" --roots "$roots" \
  --challenge "$work/challenge.cbor" --activation "$work/activation.cbor" --registry "$registry" --host demo-host
took "$t"
t_transfer=$(now)
step "TPM host: byok-agent evidence --nonce $nonce"
t=$(now); "${A[@]}" evidence --world demo --nonce "$nonce" -o "$work/demo.evidence"; took "$t"
step "operator: byok-verifier verify (EK chain and profile, AK proven by the registry, KEK certify, quote, world)"
t=$(now); "$verifier" verify --evidence "$work/demo.evidence" --nonce "$nonce" --roots "$roots" --registry "$registry" --world demo; took "$t"
step "operator: byok-verifier keygen --alg p256 (offline)"
t=$(now); "$verifier" keygen --alg p256 -o "$work/key.pem"; took "$t"
step "operator: byok-verifier wrap (verifies again, then builds the transfer package)"
t=$(now); "$verifier" wrap --evidence "$work/demo.evidence" --nonce "$nonce" --roots "$roots" --registry "$registry" --world demo --key "$work/key.pem" -o "$work/key.transfer"; took "$t"
step "TPM host: byok-agent import (ActivateCredential with AK+EK, then TPM2_Import under the KEK)"
t=$(now); "${A[@]}" import --world demo --in "$work/key.transfer" --name demo-key; took "$t"
step "TPM host: byok-agent sign (inside the TPM)"
echo "signed inside the TPM by tpm-byok" > "$work/message.txt"
t=$(now); "${A[@]}" sign --key demo-key --in "$work/message.txt" -o "$work/message.sig"; took "$t"
echo "   one key transfer (evidence, verify, wrap, import, sign): $(ms "$t_transfer") ms"
step "operator: OpenSSL checks the signature with the ORIGINAL public key"
openssl pkey -in "$work/key.pem" -pubout -out "$work/key.pub.pem"
openssl dgst -sha256 -verify "$work/key.pub.pem" -signature "$work/message.sig" "$work/message.txt"
step "TPM host: byok-agent attest-key (receipt: the key certified by the AK)"
rnonce=$(openssl rand -hex 16)
"${A[@]}" attest-key --key demo-key --nonce "$rnonce" -o "$work/key.receipt"
step "operator: byok-verifier check-receipt (the wrapped key lives under the attested KEK)"
"$verifier" check-receipt --receipt "$work/key.receipt" --nonce "$rnonce" --evidence "$work/demo.evidence" \
  --evidence-nonce "$nonce" --roots "$roots" --registry "$registry" --transfer "$work/key.transfer"
printf '\n== done in %s ms (work directory %s)\n' "$(ms "$t_all")" "$work"
