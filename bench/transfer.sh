#!/usr/bin/env bash
# Benchmark: one key transfer on an initialised host (evidence, verify, wrap,
# import, sign) with tpm-byok, against the same steps scripted with tpm2-tools
# and OpenSSL on the same swtpm. Prints the median of N runs of each and the ratio.
#
#   bench/transfer.sh [N]        (default 10; release build; installs what is missing)
#
# The tpm2-tools script does what a careful operator would do with those tools:
# tpm2_quote + tpm2_certify + tpm2_nvread for evidence; openssl verify,
# tpm2_checkquote and openssl dgst for checks; tpm2_makecredential -T none and
# tpm2_duplicate (external key, inner wrapper) for the package; ActivateCredential
# under a PolicySecret session and tpm2_import; tpm2_load + tpm2_sign.
# tpm2-tools 5.4 cannot do two things ours does, so that script does less work:
# tpm2_certify takes no nonce, and tpm2_duplicate cannot wrap an external key
# offline with an inner wrapper, so the script wraps and imports in one step on
# the host (tpm2_import -i key.pem: the key in host memory) and its credential
# is activated but not used as one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-10}
"$root/tpm-setup/install-deps.sh"
(cd "$root" && cargo build --release --bins --quiet)
agent_bin="$root/target/release/byok-agent"
verifier="$root/target/release/byok-verifier"
export TSS2_LOG=all+none
work=$(mktemp -d -t tpm-byok-bench.XXXXXX)
"$root/tpm-setup/provision.sh" "$work/tpm" >/dev/null
tcti=$("$root/tpm-setup/swtpm.sh" start "$work/tpm")
trap '"$root/tpm-setup/swtpm.sh" stop "$work/tpm"; rm -rf "$work"' EXIT
export TPM2TOOLS_TCTI=$tcti
roots="$work/tpm/ca-bundle.pem"
A=("$agent_bin" --tcti "$tcti" --state-dir "$work/state")
cd "$work"

now() { echo "${EPOCHREALTIME/./}"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

# --- initialise (reported apart: dominated by TPM key generation)
t=$(now); "${A[@]}" init --world bench >/dev/null; init_us=$(( $(now) - t ))
kek=0x81000100
tpm2_createak -C 0x81010001 -c ak.ctx -G rsa -g sha256 -s rsassa -u ak.pub -n ak.name -f pem -p "" >/dev/null
tpm2_readpublic -c ak.ctx -o ak.tss.pub >/dev/null
tpm2_readpublic -c ak.ctx -f pem -o ak.pem >/dev/null
tpm2_flushcontext -t
openssl rand -hex 16 > /dev/null
echo "msg" > msg

ours=()
theirs=()
for i in $(seq 1 "$n"); do
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "key$i.pem" 2>/dev/null
  nonce=$(openssl rand -hex 16)

  # --- tpm-byok
  t=$(now)
  "${A[@]}" evidence --world bench --nonce "$nonce" -o ev.cbor >/dev/null
  "$verifier" verify --evidence ev.cbor --nonce "$nonce" --roots "$roots" --world bench >/dev/null
  "$verifier" wrap --evidence ev.cbor --nonce "$nonce" --roots "$roots" --world bench --key "key$i.pem" -o "k$i.transfer" >/dev/null
  "${A[@]}" import --world bench --in "k$i.transfer" --name "k$i" >/dev/null
  "${A[@]}" sign --key "k$i" --in msg -o ours.sig
  ours+=( $(( $(now) - t )) )

  # --- tpm2-tools + OpenSSL
  t=$(now)
  tpm2_quote -c ak.ctx -l sha256:0,1,2,3,4,5,6,7 -q "$nonce" -m q.msg -s q.sig -o q.pcrs -g sha256 >/dev/null
  tpm2_certify -c "$kek" -C ak.ctx -g sha256 -o c.attest -s c.sig -f plain >/dev/null
  tpm2_nvread 0x1c00002 -o ek.der 2>/dev/null
  tpm2_readpublic -c 0x81010001 -o ek.pub >/dev/null
  tpm2_readpublic -c "$kek" -o kek.pub >/dev/null
  tpm2_flushcontext -t
  openssl x509 -inform DER -in ek.der -out ek.pem
  openssl verify -CAfile "$roots" ek.pem >/dev/null
  tpm2_checkquote -u ak.tss.pub -m q.msg -s q.sig -f q.pcrs -g sha256 -q "$nonce" >/dev/null
  openssl dgst -sha256 -verify ak.pem -signature c.sig c.attest >/dev/null
  openssl rand 16 > inner.key
  tpm2_makecredential -T none -u ek.pub -s inner.key -n "$(xxd -p -c 256 ak.name)" -o cred.bin >/dev/null 2>&1
  tpm2_startauthsession --policy-session -S s.ctx >/dev/null
  tpm2_policysecret -S s.ctx -c e >/dev/null
  tpm2_activatecredential -c ak.ctx -C 0x81010001 -i cred.bin -o inner.out -P session:s.ctx >/dev/null
  tpm2_flushcontext s.ctx
  tpm2_flushcontext -t
  tpm2_import -C "$kek" -G ecc -i "key$i.pem" -u dup.pub -r dup.priv >/dev/null
  tpm2_load -C "$kek" -u dup.pub -r dup.priv -c key.ctx >/dev/null
  tpm2_sign -c key.ctx -g sha256 -f plain -o theirs.sig msg
  tpm2_flushcontext -t
  theirs+=( $(( $(now) - t )) )

  # both signatures check with the original key
  openssl pkey -in "key$i.pem" -pubout -out pub.pem
  openssl dgst -sha256 -verify pub.pem -signature ours.sig msg >/dev/null
  openssl dgst -sha256 -verify pub.pem -signature theirs.sig msg >/dev/null
done

ours_med=$(printf '%s\n' "${ours[@]}" | median)
theirs_med=$(printf '%s\n' "${theirs[@]}" | median)
echo "transfer (evidence, verify, wrap, import, sign), median of $n runs on swtpm:"
printf '  tpm-byok                : %8.1f ms\n' "$(echo "$ours_med" | awk "{print \$1/1000}")"
printf '  tpm2-tools + OpenSSL    : %8.1f ms\n' "$(echo "$theirs_med" | awk '{print $1/1000}')"
printf '  ratio (tpm-byok / tools): %8.3f   (bar: <= 0.5)\n' "$(awk -v a="$ours_med" -v b="$theirs_med" 'BEGIN {print a/b}')"
printf '  init (reported apart)   : %8.1f ms\n' "$(echo "$init_us" | awk '{print $1/1000}')"
