#!/usr/bin/env bash
# A fleet on this machine: N swtpm "hosts" (each its own TPM, EK certificate
# CA, TCTI and state directory; ansible_connection=local), enrolled and
# given one key through the Ansible playbooks in deploy/ansible/, then each
# host signs with the key and OpenSSL checks every signature with the
# original public key. ansible-core comes from PyPI into a virtual
# environment this script makes (target/ansible-venv).
#
#   tpm-setup/fleet-demo.sh N [--tamper] [--work DIR]
#
# --tamper: the last host's evidence is replaced by another TPM's (host 1's
# TPM answering the last host's nonce), between the collect and deliver
# halves of the run, as an attacker on the path would: that host gets no
# package and the summary names it; a second run then delivers to it, and a
# third run changes nothing. Without --tamper: one run, then a second that
# changes nothing. Exits non-zero if any step does not do what it should.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:?usage: fleet-demo.sh N [--tamper] [--work DIR]}
shift
tamper=false
work=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tamper) tamper=true ;;
    --work) work=$2; shift ;;
    *) echo "fleet-demo.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$n" -ge 2 ] 2>/dev/null || { echo "fleet-demo.sh: N must be a number of at least 2" >&2; exit 2; }
work=${work:-$(mktemp -d -t tpm-byok-fleet.XXXXXX)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
t0=$(date +%s.%N)

"$root/tpm-setup/install-deps.sh"
command -v cargo >/dev/null || { echo "fleet-demo.sh: cargo not found: install Rust (rustup) first" >&2; exit 1; }
profile=${BYOK_PROFILE:-release}
if [ "$profile" = dev ]; then bindir=$root/target/debug; else bindir=$root/target/release; fi
if [ "$profile" = dev ]; then
  # As tpm-setup/test.sh builds (the same features: nothing rebuilt under the tests).
  (cd "$root" && cargo build --quiet --workspace --all-targets)
else
  (cd "$root" && cargo build --quiet --profile "$profile" -p byok-agent -p byok-verifier --bins)
fi
agent=$bindir/byok-agent
verifier=$bindir/byok-verifier

venv=$root/target/ansible-venv
if [ ! -x "$venv/bin/ansible-playbook" ]; then
  echo "== ansible-core from PyPI into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check ansible-core
fi
export ANSIBLE_PYTHON_INTERPRETER=$venv/bin/python
export ANSIBLE_ROLES_PATH=$root/deploy/ansible/roles
export ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
export ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_INVENTORY_UNPARSED_WARNING=False
export ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_DISPLAY_SKIPPED_HOSTS=False
export PYTHONWARNINGS=ignore
export TSS2_LOG=all+none
# Each host's per-TPM lock beside its swtpm (one machine plays N hosts).
unset BYOK_TCTI TPM2TOOLS_TCTI TCTI BYOK_STATE_DIR

echo "== $n swtpm hosts in $work"
mkdir -p "$work/roots" "$work/registry" "$work/ctl"
inventory=$work/inventory.ini
echo "[fleet]" > "$inventory"
cleanup() {
  for i in $(seq 1 "$n"); do
    [ -f "$work/host-$i/tpm/swtpm.pid" ] && "$root/tpm-setup/swtpm.sh" stop "$work/host-$i/tpm" || true
  done
}
trap cleanup EXIT
for i in $(seq 1 "$n"); do
  h=$work/host-$i
  "$root/tpm-setup/provision.sh" "$h/tpm" >/dev/null
  tcti=$("$root/tpm-setup/swtpm.sh" start "$h/tpm" 2>/dev/null)
  cp "$h/tpm/ca-bundle.pem" "$work/roots/host-$i.pem"
  echo "host-$i ansible_connection=local byok_tcti=$tcti byok_state_dir=$h/state byok_world=eu" >> "$inventory"
done
cat >> "$inventory" <<EOF
[all:vars]
byok_agent=$agent
byok_verifier=$verifier
EOF
"$verifier" keygen --alg p256 -o "$work/key.pem" >/dev/null
openssl pkey -in "$work/key.pem" -pubout -out "$work/key.pub.pem"

playbook() {
  local name=$1; shift
  BYOK_LOCK_DIR=$work/locks "$venv/bin/ansible-playbook" -i "$inventory" "$root/deploy/ansible/$name" \
    -e byok_registry="$work/registry" -e byok_roots="$work/roots" -e byok_key="$work/key.pem" \
    -e byok_key_name=fleet-key -e byok_workdir="$work/ctl" -e byok_verifier="$verifier" "$@"
}
# "changed=K" summed over the play recap.
changed() { awk '/ changed=/ { for (i = 1; i <= NF; i++) if ($i ~ /^changed=/) { split($i, a, "="); s += a[2] } } END { print s + 0 }' "$1"; }

echo "== enroll.yml"
playbook enroll.yml > "$work/enroll.log" || { cat "$work/enroll.log"; exit 1; }
tail -n $((n + 2)) "$work/enroll.log"

if $tamper; then
  echo "== transfer.yml --tags collect"
  playbook transfer.yml --tags collect > "$work/collect.log" || { cat "$work/collect.log"; exit 1; }
  last=host-$n
  echo "== tamper: $last's evidence replaced by host-1's TPM answering $last's nonce"
  last_nonce=$("$venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["hosts"][sys.argv[2]])' "$work/ctl/nonces.json" "$last")
  "$agent" --tcti "$(cat "$work/host-1/tpm/tcti")" --state-dir "$work/host-1/state" --force \
    evidence --world eu --nonce "$last_nonce" -o "$work/ctl/evidence/$last.evidence"
  echo "== transfer.yml --tags deliver"
  set +e
  playbook transfer.yml --tags deliver > "$work/deliver.log"
  rc=$?
  set -e
  grep -E 'wrapped, [0-9]+ failed|delivered the key to|no package for' "$work/deliver.log" | sed 's/^ *//'
  [ $rc -ne 0 ] || { echo "fleet-demo.sh: the tampered host did not fail" >&2; exit 1; }
  grep -q "no package for $last" "$work/deliver.log" || { echo "fleet-demo.sh: $last was not named" >&2; cat "$work/deliver.log"; exit 1; }
  grep -q "$((n - 1)) wrapped, 2 failed" "$work/deliver.log" || { echo "fleet-demo.sh: the summary is not $((n - 1)) wrapped, 2 failed" >&2; exit 1; }
  echo "== transfer.yml again (untampered): $last gets its package"
fi
echo "== transfer.yml"
playbook transfer.yml > "$work/transfer.log" || { cat "$work/transfer.log"; exit 1; }
grep -E 'wrapped, [0-9]+ failed|delivered the key to' "$work/transfer.log" | sed 's/^ *//'

echo "== transfer.yml once more: nothing to change"
playbook transfer.yml > "$work/again.log" || { cat "$work/again.log"; exit 1; }
grep -q "every host holds the key fleet-key: nothing to do" "$work/again.log" || { cat "$work/again.log"; exit 1; }
c=$(changed "$work/again.log")
[ "$c" -eq 0 ] || { echo "fleet-demo.sh: the second run changed $c thing(s)" >&2; cat "$work/again.log"; exit 1; }
echo "   changed=0 on every host"

echo "== receipts.yml"
playbook receipts.yml > "$work/receipts.log" || { cat "$work/receipts.log"; exit 1; }
grep -E 'the key is held by' "$work/receipts.log" | sed 's/^ *//'

echo "== each host signs; OpenSSL checks with the original public key"
echo "tpm-byok fleet demo" > "$work/msg"
for i in $(seq 1 "$n"); do
  h=$work/host-$i
  BYOK_LOCK_DIR=$work/locks "$agent" --tcti "$(cat "$h/tpm/tcti")" --state-dir "$h/state" --force \
    sign --key fleet-key --in "$work/msg" -o "$work/host-$i.sig" >/dev/null
  printf '   host-%s: ' "$i"
  openssl dgst -sha256 -verify "$work/key.pub.pem" -signature "$work/host-$i.sig" "$work/msg"
done
t1=$(date +%s.%N)
printf '== fleet of %s hosts: done in %s s (work directory %s)\n' "$n" "$(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }")" "$work"
