#!/usr/bin/env bash
# Install the system packages tpm-byok needs, only when something is missing.
# Runs `apt-get update` at most once. Safe to call repeatedly (CI calls it every run).
#   tpm-setup/install-deps.sh              # what the build and the tests need
#   tpm-setup/install-deps.sh --packaging  # and what tpm-setup/package.sh needs
set -euo pipefail

need=()
if [ "${1:-}" = "--packaging" ]; then
  # dpkg-shlibdeps (cargo-deb's $auto dependencies) and the package check.
  command -v dpkg-shlibdeps >/dev/null 2>&1 || need+=(dpkg-dev)
  command -v lintian        >/dev/null 2>&1 || need+=(lintian)
fi
command -v swtpm        >/dev/null 2>&1 || need+=(swtpm)
command -v swtpm_setup  >/dev/null 2>&1 || need+=(swtpm-tools)
command -v certtool     >/dev/null 2>&1 || need+=(gnutls-bin)
command -v tpm2_createek >/dev/null 2>&1 || need+=(tpm2-tools)
command -v openssl      >/dev/null 2>&1 || need+=(openssl)
command -v pkg-config   >/dev/null 2>&1 || need+=(pkg-config)
# Crash injection in the tests (tests/tests/faults.rs): strace -e inject=...:signal=KILL.
command -v strace       >/dev/null 2>&1 || need+=(strace)
pkg-config --exists tss2-esys 2>/dev/null || need+=(libtss2-dev)
# The fleet demo and its test put ansible-core (PyPI) in a virtual environment.
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v cc           >/dev/null 2>&1 || need+=(gcc)
# OpenSSL's tpm2 provider: TSS2 PRIVATE KEY files from `byok-agent keyfile` are
# used through it (and tested with it).
[ -e "$(openssl version -m 2>/dev/null | sed -n 's/^MODULESDIR: "\(.*\)"$/\1/p')/tpm2.so" ] \
  || dpkg -s tpm2-openssl >/dev/null 2>&1 || need+=(tpm2-openssl)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "tpm-setup: need root (or sudo) to install: ${need[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "tpm-setup: installing ${need[*]}" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
