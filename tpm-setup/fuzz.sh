#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser and of the verify path (libFuzzer
# through cargo-fuzz, nightly Rust). Not part of the test command: run it for
# as long as you can afford.
#
#   tpm-setup/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
#
# Seeds: real files made by the binaries on a provisioned swtpm (evidence,
# transfer package, receipt, TPM key file, key files), so the fuzzer starts
# from valid structures. Crashes are kept in fuzz/artifacts/TARGET/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
"$root/tpm-setup/install-deps.sh"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
(cd "$root" && cargo build --release --bins --quiet)
agent="$root/target/release/byok-agent"
verifier="$root/target/release/byok-verifier"
work=$(mktemp -d -t tpm-byok-fuzz.XXXXXX)
"$root/tpm-setup/provision.sh" "$work/tpm" >/dev/null
tcti=$("$root/tpm-setup/swtpm.sh" start "$work/tpm" 2>/dev/null)
trap '"$root/tpm-setup/swtpm.sh" stop "$work/tpm"; rm -rf "$work"' EXIT
export TSS2_LOG=all+none
A=("$agent" --tcti "$tcti" --state-dir "$work/state")
n=$(openssl rand -hex 16)
seeds="$work/seeds"
mkdir -p "$seeds"
"${A[@]}" init --world fuzz >/dev/null
"${A[@]}" evidence --world fuzz --nonce "$n" -o "$seeds/evidence" >/dev/null
"$verifier" keygen --alg p256 -o "$seeds/p256.pem" >/dev/null
"$verifier" keygen --alg rsa2048 -o "$seeds/rsa.pem" >/dev/null
"$verifier" wrap --evidence "$seeds/evidence" --nonce "$n" --roots "$work/tpm/ca-bundle.pem" \
  --key "$seeds/p256.pem" -o "$seeds/transfer" >/dev/null
"${A[@]}" import --world fuzz --in "$seeds/transfer" --name k >/dev/null
"${A[@]}" attest-key --key k --nonce "$n" -o "$seeds/receipt" >/dev/null
"${A[@]}" keyfile --key k -o "$seeds/k.tss.pem" >/dev/null
openssl pkey -in "$seeds/p256.pem" -outform DER -out "$seeds/p256.der"
openssl x509 -in "$work/tpm/ca-bundle.pem" -outform DER -out "$seeds/ca.der"
cp "$work/tpm/ca-bundle.pem" "$seeds/ca.pem"
printf 'sha256:0,7,16' > "$seeds/pcrs"
# A registry host record (challenge -> activate -> enroll) and a policy file.
"$verifier" challenge --evidence "$seeds/evidence" --nonce "$n" --roots "$work/tpm/ca-bundle.pem" \
  -o "$work/challenge" >/dev/null
"${A[@]}" activate --world fuzz --in "$work/challenge" -o "$work/activation" >/dev/null
"$verifier" enroll --evidence "$seeds/evidence" --nonce "$n" --roots "$work/tpm/ca-bundle.pem" \
  --challenge "$work/challenge" --activation "$work/activation" --registry "$work/registry" --host h1 >/dev/null
cp "$work/registry/h1.cbor" "$seeds/host"
cat > "$seeds/policy.toml" <<'POLICY'
[defaults]
min_rsa_bits = 2048
require_enrolled = true
[worlds.fuzz]
roots = ["ca.pem"]
require_kek_pcrs = [0, 7]
[worlds.fuzz.pcrs.sha256]
0 = "0000000000000000000000000000000000000000000000000000000000000000"
7 = "0000000000000000000000000000000000000000000000000000000000000000"
POLICY

cd "$root/fuzz"
status=0
for target in tpm_structures documents keys certificates verify_evidence trust_inputs; do
  mkdir -p "corpus/$target"
  cp "$seeds"/* "corpus/$target/"
  echo "fuzz: $target for ${secs}s" >&2
  if ! cargo +nightly fuzz run "$target" "corpus/$target" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 2>"$work/$target.log"; then
    echo "fuzz: $target FOUND A CRASH (see fuzz/artifacts/$target/ and $work/$target.log)" >&2
    tail -30 "$work/$target.log" >&2
    status=1
  fi
  grep -E '^(#[0-9]+: *DONE|Done [0-9]+ runs)' "$work/$target.log" | tail -1 | sed "s/^/fuzz: $target: /" >&2 || true
done
exit $status
