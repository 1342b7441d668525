#!/usr/bin/env bash
# Benchmark: one key wrapped for every host of a fleet by one
# `byok-verifier wrap --registry --nonces --evidence DIR --out-dir` run:
# wall time, hosts per second and peak RSS (bar: under 100 MiB at 10,000
# hosts), beside Keylime's checkquote per quote on the same machine.
#
#   bench/fleet.sh [HOSTS] [ROUNDS]     (defaults 10000 and 3)
#
# The hosts are synthetic (tests/src/synthetic.rs): each its own EK
# certificate (under the fixtures' throwaway CA), AK and KEK, enrolled in a
# registry, and evidence for its own nonce from `byok-verifier nonces`. Per
# host the run reads and verifies the evidence (EK certificate signature,
# certify, quote, enrolment), wraps a P-256 key (MakeCredential to the EK,
# duplication to the KEK: two RSA-OAEP encryptions) and writes the package
# (fsync) into a directory on the work disk. The fleet is made once per HOSTS
# under target/bench-fleet-HOSTS (about 100 s for 10,000; --fresh remakes it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fresh=0
args=()
for a in "$@"; do
  if [ "$a" = --fresh ]; then fresh=1; else args+=("$a"); fi
done
hosts=${args[0]:-10000}
rounds=${args[1]:-3}
# shellcheck source=bench/lib/keylime.sh
. "$root/bench/lib/keylime.sh"
"$root/tpm-setup/install-deps.sh"
(cd "$root" && cargo build --release --quiet --bins -p byok-verifier -p byok-tests)
verifier="$root/target/release/byok-verifier"
synthetic="$root/target/release/synthetic-fleet"
fleet="$root/target/bench-fleet-$hosts"
if [ "$fresh" = 1 ] || [ ! -e "$fleet/ready" ]; then
  rm -rf "$fleet"
  echo "making $hosts synthetic hosts in $fleet ..." >&2
  "$synthetic" registry "$hosts" "$fleet"
  "$verifier" -q nonces --registry "$fleet/registry" --world eu -o "$fleet/nonces.json"
  "$synthetic" evidence "$fleet" "$fleet/nonces.json"
  "$verifier" -q keygen --alg p256 --out "$fleet/key.pem"
  touch "$fleet/ready"
fi

export TSS2_LOG=all+none
work=$(mktemp -d -p "$root/target" bench-fleet-run.XXXXXX)
"$root/tpm-setup/provision.sh" "$work/tpm" >/dev/null
tcti=$("$root/tpm-setup/swtpm.sh" start "$work/tpm" 2>/dev/null)
trap '"$root/tpm-setup/swtpm.sh" stop "$work/tpm"; rm -rf "$work"' EXIT
keylime_setup "$root" "$work" "$tcti"

# One run: "wall_s peak_rss_kib" into $work/timing; every host must get its package.
run() {
  local out="$work/out.$1"
  # The page cache written back first, outside the timing (as in verify.sh).
  sync
  python3 - "$verifier" wrap --registry "$fleet/registry" --world eu --nonces "$fleet/nonces.json" \
    --evidence "$fleet/evidence" --key "$fleet/key.pem" --out-dir "$out" \
    --roots "$root/tests/fixtures/a-ca.pem" --json <<'PY' > "$work/report.json"
import resource, subprocess, sys, time
t = time.perf_counter()
r = subprocess.run(sys.argv[1:], stdout=sys.stdout)
wall = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
open("timing", "w").write(f"{wall} {rss}\n")
sys.exit(r.returncode)
PY
  local n
  n=$(find "$out" -name '*.transfer' | wc -l)
  [ "$n" = "$hosts" ] || { echo "fleet.sh: $n packages for $hosts hosts" >&2; exit 1; }
}

cd "$work"
: > wall.txt; : > rss.txt; : > keylime.txt
echo "fleet wrap of $hosts hosts on $(nproc) cores ($rounds rounds):"
for r in $(seq 1 "$rounds"); do
  run "$r"
  read -r wall rss < timing
  k=$(keylime_rate "$work" 20000)
  echo "$wall" >> wall.txt; echo "$rss" >> rss.txt; echo "$k" >> keylime.txt
  printf '  round %d: %6.2f s (%8.1f hosts/s), peak RSS %6.1f MiB; Keylime %8.1f quotes/s\n' \
    "$r" "$wall" "$(awk -v n="$hosts" -v w="$wall" 'BEGIN {print n/w}')" "$(awk -v k="$rss" 'BEGIN {print k/1024}')" "$k"
done
# Removed after the rounds: ext4 makes files more slowly just after many
# were deleted, which would charge one round for the last.
rm -rf "$work"/out.*
wall=$(median < wall.txt); rss=$(sort -g rss.txt | tail -1); k=$(median < keylime.txt)
rate=$(awk -v n="$hosts" -v w="$wall" 'BEGIN {print n/w}')
echo "medians:"
printf '  wall time, %d hosts verified and wrapped : %10.2f s\n' "$hosts" "$wall"
printf '  hosts per second                         : %10.1f\n' "$rate"
printf '  peak RSS (largest of the rounds)         : %10.1f MiB   (bar: < 100)\n' "$(awk -v k="$rss" 'BEGIN {print k/1024}')"
printf '  Keylime checkquote                       : %10.1f quotes/s\n' "$k"
printf '  ratio, hosts/s to Keylime quotes/s       : %10.2f   (a host: evidence verified, a package made and fsynced; Keylime: one quote)\n' "$(awk -v a="$rate" -v k="$k" 'BEGIN {print a/k}')"
