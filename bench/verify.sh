#!/usr/bin/env bash
# Benchmark: whole evidence files verified per second by byok-verifier (batch,
# all cores) against single quotes checked per second by Keylime's Python
# checkquote (keylime.tpm.tpm_util.checkquote, from PyPI) on the same machine.
#
#   bench/verify.sh [FILES]      (default 2000)
#
# Each evidence file holds an EK certificate chain, a certify and a quote, so
# byok-verifier checks two RSA signatures, a certificate path and every field
# of BRIEF §5 per file; Keylime's checkquote checks one quote (signature, nonce,
# PCR digest) per call. Keylime is timed in-process (no interpreter start-up).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
files=${1:-2000}
"$root/tpm-setup/install-deps.sh"
python3 -c "import keylime.tpm.tpm_util" 2>/dev/null || pip install --quiet keylime cryptography >&2
(cd "$root" && cargo build --release --bins --quiet)
verifier="$root/target/release/byok-verifier"
export TSS2_LOG=all+none
work=$(mktemp -d -t tpm-byok-bench.XXXXXX)
"$root/tpm-setup/provision.sh" "$work/tpm" >/dev/null
tcti=$("$root/tpm-setup/swtpm.sh" start "$work/tpm")
trap '"$root/tpm-setup/swtpm.sh" stop "$work/tpm"; rm -rf "$work"' EXIT
export TPM2TOOLS_TCTI=$tcti
cd "$work"

# Keylime compares the quote's extraData with the nonce string's bytes.
nonce_text="tpm-byok-bench-0"
nonce=$(printf '%s' "$nonce_text" | xxd -p -c 256)
A=("$root/target/release/byok-agent" --tcti "$tcti" --state-dir "$work/state")
"${A[@]}" init --world bench >/dev/null
mkdir -p ev
distinct=20
for i in $(seq 1 $distinct); do "${A[@]}" evidence --world bench --nonce "$nonce" -o "ev/e$i.cbor" >/dev/null; done
for i in $(seq $((distinct + 1)) "$files"); do cp "ev/e$(( (i % distinct) + 1 )).cbor" "ev/e$i.cbor"; done

# One quote for Keylime, made by tpm2-tools with a tpm2_createak AK.
tpm2_createak -C 0x81010001 -c ak.ctx -G rsa -g sha256 -s rsassa -u ak.pub -n ak.name >/dev/null
tpm2_readpublic -c ak.ctx -f pem -o ak.pem >/dev/null
tpm2_quote -c ak.ctx -l sha256:0,1,2,3,4,5,6,7 -q "$nonce" -m q.msg -s q.sig -o q.pcrs -g sha256 >/dev/null
tpm2_flushcontext -t

now() { echo "${EPOCHREALTIME/./}"; }
t=$(now)
"$verifier" verify --evidence ev --nonce "$nonce" --roots "$work/tpm/ca-bundle.pem" --json > out.jsonl
ours_us=$(( $(now) - t ))
ok=$(grep -c '"ok":true' out.jsonl)
[ "$ok" = "$files" ] || { echo "verify.sh: only $ok of $files files verified" >&2; exit 1; }

keylime_per_s=$(python3 - "$files" <<'PY' 2>/dev/null
import sys, time, logging
logging.disable(logging.CRITICAL)
from keylime.tpm import tpm_util
n = int(sys.argv[1])
aik, sig, quote, pcrs = (open(f, "rb").read() for f in ("ak.pem", "q.sig", "q.msg", "q.pcrs"))
tpm_util.checkquote(aik, "tpm-byok-bench-0", sig, quote, pcrs, "sha256")  # warm-up, and must pass
t = time.perf_counter()
for _ in range(n):
    tpm_util.checkquote(aik, "tpm-byok-bench-0", sig, quote, pcrs, "sha256")
print(n / (time.perf_counter() - t))
PY
)
ours_per_s=$(awk -v n="$files" -v us="$ours_us" 'BEGIN {print n / (us / 1e6)}')
echo "verification throughput on $(nproc) cores, $files files:"
printf '  byok-verifier (whole evidence files, batch): %10.1f files/s\n' "$ours_per_s"
printf '  Keylime checkquote (single quotes)         : %10.1f quotes/s\n' "$keylime_per_s"
printf '  ratio                                      : %10.2f   (bar: >= 2)\n' "$(awk -v a="$ours_per_s" -v b="$keylime_per_s" 'BEGIN {print a/b}')"
