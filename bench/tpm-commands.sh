#!/usr/bin/env bash
# Count the TPM commands (round trips) each byok-agent operation sends, from
# the TCTI's own trace (TSS2_LOG=tcti+trace logs every command it transmits).
#
#   bench/tpm-commands.sh          (debug build; provisions its own swtpm)
#
# Every agent command opens with 3 TPM2_GetCapability calls (leftover
# transient objects, loaded and saved sessions, flushed because swtpm has no
# resource manager) and 1 TPM2_ReadPublic (ESYS opening the world's
# persistent KEK, whose Name is compared with the recorded one).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tpm-setup/install-deps.sh"
(cd "$root" && cargo build --bins --quiet)
agent="$root/target/debug/byok-agent"
verifier="$root/target/debug/byok-verifier"
work=$(mktemp -d -t tpm-byok-cmds.XXXXXX)
"$root/tpm-setup/provision.sh" "$work/tpm" >/dev/null
tcti=$("$root/tpm-setup/swtpm.sh" start "$work/tpm" 2>/dev/null)
trap '"$root/tpm-setup/swtpm.sh" stop "$work/tpm"; rm -rf "$work"' EXIT
export TPM2TOOLS_TCTI=$tcti TSS2_LOG=all+none
roots="$work/tpm/ca-bundle.pem"
cd "$work"

names() {
  awk '
  BEGIN {
    n["0x120"]="EvictControl"; n["0x131"]="CreatePrimary"; n["0x147"]="ActivateCredential";
    n["0x148"]="Certify"; n["0x14e"]="NV_Read"; n["0x151"]="PolicySecret"; n["0x153"]="Create";
    n["0x155"]="HMAC"; n["0x156"]="Import"; n["0x157"]="Load"; n["0x158"]="Quote";
    n["0x159"]="RSA_Decrypt"; n["0x15d"]="Sign"; n["0x15e"]="Unseal"; n["0x165"]="FlushContext";
    n["0x169"]="NV_ReadPublic"; n["0x173"]="ReadPublic"; n["0x176"]="StartAuthSession";
    n["0x17a"]="GetCapability"; n["0x17e"]="PCR_Read"; n["0x17f"]="PolicyPCR";
    n["0x18a"]="TestParms"; n["0x193"]="EncryptDecrypt2";
  }
  /Sending command with TPM_CC/ {
    for (i = 1; i <= NF; i++) if ($i == "TPM_CC") cc = $(i + 1);
    c = (cc in n) ? n[cc] : cc; total++; count[c]++; order[++k] = c
  }
  END {
    line = ""
    for (i = 1; i <= k; i++) if (!(order[i] in seen)) { seen[order[i]] = 1; line = line sprintf("%s%s x%d", (line == "" ? "" : ", "), order[i], count[order[i]]) }
    printf "%3d  %s\n", total, line
  }'
}

# op LABEL ARGS...: run byok-agent ARGS with the TCTI traced; print the count.
op() {
  local label=$1; shift
  local out
  out=$(TSS2_LOG=tcti+trace "$agent" --tcti "$tcti" --state-dir "$work/state" "$@" 2>&1 >/dev/null) || {
    echo "failed: $label" >&2; echo "$out" | grep -v ':tcti:' >&2; exit 1; }
  printf '%-34s' "$label"
  echo "$out" | names
}

nonce=$(openssl rand -hex 16)
echo "operation                          TPM commands (round trips)"
op "init (RSA KEK)" init --world w
op "evidence (PCRs 0-7)" evidence --world w --nonce "$nonce" -o ev.cbor
"$verifier" keygen --alg p256 -o k.pem >/dev/null
"$verifier" wrap --evidence ev.cbor --nonce "$nonce" --roots "$roots" --key k.pem -o k.transfer >/dev/null
op "import (transfer package)" import --world w --in k.transfer --name k
echo msg > msg
op "sign (imported P-256 key)" sign --key k --in msg -o msg.sig
op "attest-key" attest-key --key k --nonce "$nonce" -o k.receipt
op "key create (P-256, in the TPM)" key create --world w --name born --alg p256
op "key create (AES-256)" key create --world w --name aes --alg aes256
op "encrypt (AES, 4 bytes)" encrypt --key aes --in msg -o msg.enc
op "seal (no PCRs)" seal --world w --name s0 --in msg
op "unseal (no PCRs)" unseal --name s0 -o s0.out
op "seal (PCRs sha256:16,23)" seal --world w --name s1 --in msg --pcrs sha256:16,23
op "unseal (PCR policy)" unseal --name s1 -o s1.out
op "init (KEK bound to sha256:16,23)" init --world pb --pcrs sha256:16,23
nonce2=$(openssl rand -hex 16)
"$agent" --tcti "$tcti" --state-dir "$work/state" evidence --world pb --nonce "$nonce2" -o pb.cbor >/dev/null
"$verifier" wrap --evidence pb.cbor --nonce "$nonce2" --roots "$roots" --key k.pem -o pb.transfer >/dev/null
op "import (PCR-bound KEK)" import --world pb --in pb.transfer --name kp
op "sign (key under PCR-bound KEK)" sign --key kp --in msg -o kp.sig
op "kek rotate" kek rotate --world w
op "keyfile (no TPM command)" keyfile --key k -o k.tss.pem
