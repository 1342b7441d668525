#!/usr/bin/env bash
# Check a real TPM host for what byok-agent needs, and say how to fix what is missing.
#   tpm-setup/check-host.sh [DEVICE]   (default /dev/tpmrm0)
set -uo pipefail
dev=${1:-/dev/tpmrm0}
bad=0
ok() { echo "ok    $*"; }
fix() { echo "FIX   $*"; bad=1; }

if [ ! -e "$dev" ]; then
  fix "$dev is missing: enable the TPM 2.0 in firmware, load tpm_tis/tpm_crb, or pass --tcti for another TPM"
elif [ ! -r "$dev" ] || [ ! -w "$dev" ]; then
  fix "$dev is not readable and writable by $(id -un): add the user to group $(stat -c %G "$dev") (usermod -aG $(stat -c %G "$dev") $(id -un)) and log in again"
else
  ok "$dev is accessible"
fi
command -v tpm2_getcap >/dev/null || { fix "tpm2-tools missing: run tpm-setup/install-deps.sh"; exit 1; }
export TPM2TOOLS_TCTI=${TPM2TOOLS_TCTI:-device:$dev}
if tpm2_nvreadpublic 0x1c00002 >/dev/null 2>&1; then
  ok "RSA EK certificate present in NV 0x01c00002"
elif tpm2_nvreadpublic 0x1c0000a >/dev/null 2>&1; then
  fix "only an ECC EK certificate (0x01c0000a): this version of tpm-byok needs the RSA EK certificate"
else
  fix "no EK certificate in NV: ask the platform vendor, or provision one (see docs/operator-guide.md)"
fi
if tpm2_getcap pcrs 2>/dev/null | grep -A1 'sha256' | grep -q '\['; then
  if tpm2_getcap pcrs 2>/dev/null | grep -A1 sha256 | grep -q '\[ *\]'; then
    fix "the sha256 PCR bank is allocated with no PCRs: enable it in firmware (or tpm2_pcrallocate sha256:all) and reboot"
  else
    ok "sha256 PCR bank active"
  fi
else
  fix "no sha256 PCR bank: enable it in firmware (or tpm2_pcrallocate sha256:all) and reboot"
fi
if tpm2_readpublic -c 0x81010001 >/dev/null 2>&1; then
  ok "RSA EK persistent at 0x81010001"
else
  echo "note  no persistent EK at 0x81010001: byok-agent init creates it from the TCG template and persists it (needs owner auth empty)"
fi
exit $bad
