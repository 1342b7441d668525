#!/usr/bin/env bash
# Build the Debian packages, with man pages, shell completions and docs:
#   target/debian/byok-agent_VERSION-1_amd64.deb     (depends on the tpm2-tss libraries)
#   target/debian/byok-verifier_VERSION-1_amd64.deb  (no TPM dependency)
#
#   tpm-setup/package.sh          # release build
#   tpm-setup/package.sh --dev    # package the debug build (fast; the tests use it)
#
# Installs what is missing (the build dependencies, dpkg-dev and lintian from
# Debian, cargo-deb from crates.io) and runs lintian on both packages: an
# error fails the build (warnings are shown).
set -euo pipefail
cd "$(dirname "$0")/.."

tpm-setup/install-deps.sh --packaging
if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "package.sh: installing cargo-deb (cargo install, once)" >&2
  cargo install cargo-deb --locked --quiet >&2
fi

profile=release
bindir=target/release
if [ "${1:-}" = "--dev" ]; then
  profile=dev
  bindir=target/debug
  # As tpm-setup/test.sh builds (the same features: nothing rebuilt under the tests).
  cargo build --quiet --workspace --all-targets
else
  cargo build --quiet --profile release -p byok-agent -p byok-verifier --bins
fi

for b in byok-agent byok-verifier; do
  out=target/pkg/$b
  rm -rf "$out"
  mkdir -p "$out/man" "$out/completions"
  "$bindir/$b" -q man -o "$out/man"
  gzip -9n "$out"/man/*.1
  "$bindir/$b" completions bash > "$out/completions/$b"
  "$bindir/$b" completions zsh > "$out/completions/_$b"
  "$bindir/$b" completions fish > "$out/completions/$b.fish"
  cargo deb --quiet --no-build --profile "$profile" -p "$b" >/dev/null
done

ls -1 target/debian/*.deb
# Errors fail; warnings are shown (lintian warns of running as root on stderr).
report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
lintian --fail-on error target/debian/byok-agent_*.deb target/debian/byok-verifier_*.deb >"$report" 2>&1 || status=$?
grep -v '^running with root privileges is not recommended!$' "$report" >&2 || true
if [ "$status" -ne 0 ]; then
  echo "package.sh: lintian found errors (above)" >&2
  exit 1
fi
