#!/usr/bin/env bash
# Provision a swtpm TPM 2.0 state directory with RSA and ECC EKs and EK certificates
# signed by a project-local CA kept inside that directory (never the system-wide
# swtpm-localca directory).
#
#   tpm-setup/provision.sh DIR [--ca CA_DIR]
#
# Creates DIR/state (the swtpm state), DIR/ca (the local CA: root + intermediate,
# unless --ca names an existing one to reuse, so two TPMs can share one manufacturer)
# and DIR/ca-bundle.pem (the CA certificates to pass to `byok-verifier --roots`).
set -euo pipefail

dir=${1:?usage: provision.sh DIR [--ca CA_DIR]}
shift
ca=""
while [ $# -gt 0 ]; do
  case "$1" in
    --ca) ca=$2; shift 2 ;;
    *) echo "provision.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[ -n "$ca" ] || ca="$dir/ca"
mkdir -p "$ca" "$dir/state"
ca=$(cd "$ca" && pwd)
if [ -e "$dir/state/tpm2-00.permall" ]; then
  echo "provision.sh: $dir/state already holds a TPM state" >&2
  exit 1
fi

cat > "$dir/swtpm-localca.conf" <<CONF
statedir = $ca
signingkey = $ca/signkey.pem
issuercert = $ca/issuercert.pem
certserial = $ca/certserial
CONF
cat > "$dir/swtpm-localca.options" <<CONF
--platform-manufacturer tpm-byok
--platform-version 2.1
--platform-model swtpm
CONF
cat > "$dir/swtpm_setup.conf" <<CONF
create_certs_tool = $(command -v swtpm_localca)
create_certs_tool_config = $dir/swtpm-localca.conf
create_certs_tool_options = $dir/swtpm-localca.options
CONF

# swtpm_localca takes a lock file in its statedir; flock keeps parallel
# provisioning against one shared CA safe.
flock "$ca/.lock" swtpm_setup --tpm2 --tpmstate "$dir/state" \
  --create-ek-cert --create-platform-cert --lock-nvram \
  --config "$dir/swtpm_setup.conf" --logfile "$dir/swtpm_setup.log" >/dev/null

# The local CA is a root (self-signed) and an intermediate that signs EK certificates.
cat "$ca/swtpm-localca-rootca-cert.pem" "$ca/issuercert.pem" > "$dir/ca-bundle.pem"
echo "$dir/ca-bundle.pem"
