# Sourced by the benchmarks: Keylime's Python quote check (the peer tool),
# from PyPI in a virtual environment under target/, timed in-process.
#
#   keylime_setup ROOT WORK TCTI   a tpm2-tools AK and one quote in WORK (nonce "tpm-byok-bench-0")
#   keylime_rate WORK N            quotes/s of keylime.tpm.tpm_util.checkquote over N calls

keylime_setup() {
  local root=$1 work=$2 tcti=$3
  KEYLIME_PY="$root/target/bench-venv/bin/python3"
  # Keylime from PyPI does not declare PyYAML, which it imports.
  if ! "$KEYLIME_PY" -c "import keylime.tpm.tpm_util" 2>/dev/null; then
    python3 -m venv "$root/target/bench-venv" >&2
    "$root/target/bench-venv/bin/pip" install --quiet --disable-pip-version-check keylime cryptography pyyaml >&2
  fi
  # Keylime compares the quote's extraData with the nonce string's bytes.
  local nonce
  nonce=$(printf '%s' tpm-byok-bench-0 | xxd -p -c 256)
  (
    cd "$work"
    export TPM2TOOLS_TCTI=$tcti
    tpm2_createak -C 0x81010001 -c ak.ctx -G rsa -g sha256 -s rsassa -u ak.pub -n ak.name >/dev/null
    tpm2_readpublic -c ak.ctx -f pem -o ak.pem >/dev/null
    tpm2_quote -c ak.ctx -l sha256:0,1,2,3,4,5,6,7 -q "$nonce" -m q.msg -s q.sig -o q.pcrs -g sha256 >/dev/null
    tpm2_flushcontext -t
  )
}

keylime_rate() {
  (cd "$1" && "$KEYLIME_PY" - "$2" <<'PY'

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
  ) || { echo "keylime.sh: Keylime's checkquote failed (above)" >&2; return 1; }
}

# The median of the numbers on standard input.
median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
