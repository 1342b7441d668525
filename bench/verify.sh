#!/usr/bin/env bash
# Benchmark: whole evidence files verified per second by byok-verifier (batch,
# all cores) against single quotes checked per second by Keylime's Python
# checkquote (keylime.tpm.tpm_util.checkquote, PyPI, in a venv under target/)
# on the same machine in the same run.
#
#   bench/verify.sh [FILES] [ROUNDS]     (defaults 20000 and 3)
#
# Two sets of evidence, each checked in full (EK certificate path, certify and
# quote signatures, every field of BRIEF §5):
#   swtpm     FILES files: 20 made by byok-agent on one swtpm, copied. One TPM,
#             so one EK certificate and one AK: the verifier's per-thread caches
#             (a parsed AK, a verified certificate signature) hit.
#   distinct  DISTINCT files (default 5000) from as many synthetic hosts
#             (tests/src/synthetic.rs): each its own EK certificate, AK and KEK,
#             verified against the registry that enrols them. No cache hits but
#             the CA's own certificate: a fleet's worst case.
# Keylime's checkquote checks one quote (signature, nonce, PCR digest) per call
# and is timed in-process (no interpreter start-up). The rounds alternate the
# three measurements; the medians give the ratios (bar: >= 2).
# Before each timed run (outside the timing) the page cache is written back
# (`sync`): 20,000 just-made files and the last run's 30 MB report otherwise
# reach the disk during the next measurement, and the kernel's writeback then
# takes CPU from whichever measurement is running (measured: 600-664 ms per
# 20,000 files right after they are made, 513-539 ms after a sync).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
files=${1:-20000}
rounds=${2:-3}
distinct=${DISTINCT:-5000}
# shellcheck source=bench/lib/keylime.sh
. "$root/bench/lib/keylime.sh"
"$root/tpm-setup/install-deps.sh"
(cd "$root" && cargo build --release --quiet --bins -p byok-agent -p byok-verifier -p byok-tests)
verifier="$root/target/release/byok-verifier"
export TSS2_LOG=all+none
work=$(mktemp -d -t tpm-byok-bench.XXXXXX)
"$root/tpm-setup/provision.sh" "$work/tpm" >/dev/null
tcti=$("$root/tpm-setup/swtpm.sh" start "$work/tpm" 2>/dev/null)
trap '"$root/tpm-setup/swtpm.sh" stop "$work/tpm"; rm -rf "$work"' EXIT
cd "$work"

nonce=$(printf '%s' tpm-byok-bench-0 | xxd -p -c 256)
A=("$root/target/release/byok-agent" --tcti "$tcti" --state-dir "$work/state")
"${A[@]}" init --world bench >/dev/null
mkdir -p ev
for i in $(seq 1 20); do "${A[@]}" evidence --world bench --nonce "$nonce" -o "ev/e$i.cbor" >/dev/null; done
for i in $(seq 21 "$files"); do cp "ev/e$(( (i % 20) + 1 )).cbor" "ev/e$i.cbor"; done

fleet="$work/fleet"
"$root/target/release/synthetic-fleet" registry "$distinct" "$fleet"
"$root/target/release/synthetic-fleet" evidence "$fleet" --nonce "$nonce" "$distinct"
fixtures="$root/tests/fixtures"

keylime_setup "$root" "$work" "$tcti"

now() { echo "${EPOCHREALTIME/./}"; }
# files/s of one verify run over DIR; every file must pass.
ours() {
  local dir=$1 n=$2 t us ok
  shift 2
  sync
  t=$(now)
  "$verifier" verify --evidence "$dir" --nonce "$nonce" "$@" --json > out.jsonl
  us=$(( $(now) - t ))
  ok=$(grep -c '"ok":true' out.jsonl || true)
  [ "$ok" = "$n" ] || { echo "verify.sh: only $ok of $n files in $dir verified" >&2; exit 1; }
  awk -v n="$n" -v us="$us" 'BEGIN {print n / (us / 1e6)}'
}

: > swtpm.txt; : > distinct.txt; : > keylime.txt
echo "verification throughput on $(nproc) cores ($rounds rounds):"
for r in $(seq 1 "$rounds"); do
  a=$(ours ev "$files" --roots "$work/tpm/ca-bundle.pem")
  b=$(ours "$fleet/evidence" "$distinct" --roots "$fixtures/a-ca.pem" --registry "$fleet/registry" --require-enrolled)
  sync
  k=$(keylime_rate "$work" "$files")
  echo "$a" >> swtpm.txt; echo "$b" >> distinct.txt; echo "$k" >> keylime.txt
  printf '  round %d: swtpm %9.1f files/s, distinct %9.1f files/s, Keylime %9.1f quotes/s: ratios %.2f, %.2f\n' \
    "$r" "$a" "$b" "$k" "$(awk -v a="$a" -v k="$k" 'BEGIN {print a/k}')" "$(awk -v b="$b" -v k="$k" 'BEGIN {print b/k}')"
done
a=$(median < swtpm.txt); b=$(median < distinct.txt); k=$(median < keylime.txt)
echo "medians:"
printf '  byok-verifier, %6d swtpm files (one TPM)   : %10.1f files/s\n' "$files" "$a"
printf '  byok-verifier, %6d distinct hosts         : %10.1f files/s\n' "$distinct" "$b"
printf '  Keylime checkquote (single quotes)         : %10.1f quotes/s\n' "$k"
printf '  ratio, swtpm files                         : %10.2f   (bar: >= 2)\n' "$(awk -v a="$a" -v k="$k" 'BEGIN {print a/k}')"
printf '  ratio, distinct hosts                      : %10.2f\n' "$(awk -v b="$b" -v k="$k" 'BEGIN {print b/k}')"
