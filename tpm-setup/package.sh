#!/usr/bin/env bash
# Build the Debian packages, with man pages, shell completions and docs:
#   target/debian/byok-agent_VERSION-1_amd64.deb     (depends on the tpm2-tss libraries)
#   target/debian/byok-verifier_VERSION-1_amd64.deb  (no TPM dependency)
#
#   tpm-setup/package.sh          # release build
#   tpm-setup/package.sh --dev    # package the debug build (fast; the tests use it)
#
# Installs what is missing (the build dependencies, cargo-deb from crates.io)
# and runs lintian on both packages when Debian's lintian is installed
# (`apt-get install lintian`; errors fail the build).
set -euo pipefail
cd "$(dirname "$0")/.."

tpm-setup/install-deps.sh
if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "package.sh: installing cargo-deb (cargo install, once)" >&2
  cargo install cargo-deb --locked --quiet >&2
fi

profile=release
bindir=target/release
if [ "${1:-}" = "--dev" ]; then
  profile=dev
  bindir=target/debug
fi
cargo build --quiet --profile "$profile" -p byok-agent -p byok-verifier --bins

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
if command -v lintian >/dev/null 2>&1; then
  # Errors fail; warnings and info are shown.
  lintian --fail-on error target/debian/byok-agent_*.deb target/debian/byok-verifier_*.deb
fi
