#!/usr/bin/env bash
# Start or stop a swtpm for a provisioned directory (see provision.sh).
#
#   tpm-setup/swtpm.sh start DIR   # prints the TCTI string (and, on stderr, the CA
#                                  # bundle path); writes DIR/tcti and DIR/swtpm.pid
#   tpm-setup/swtpm.sh stop DIR
#
# Ports are chosen at random in 20000-59999 and retried when taken, so any
# number of swtpm instances can run side by side.
set -euo pipefail

cmd=${1:?usage: swtpm.sh start|stop DIR}
dir=${2:?usage: swtpm.sh start|stop DIR}
dir=$(cd "$dir" && pwd)

case "$cmd" in
  start)
    for _ in $(seq 1 20); do
      port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
      rm -f "$dir/swtpm.pid"
      if swtpm socket --tpm2 --tpmstate dir="$dir/state" \
          --server type=tcp,port=$port,bindaddr=127.0.0.1 \
          --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
          --flags not-need-init,startup-clear \
          --pid file="$dir/swtpm.pid" --log file="$dir/swtpm.log" --daemon 2>>"$dir/swtpm.log"; then
        for _ in $(seq 1 50); do
          [ -s "$dir/swtpm.pid" ] && break
          sleep 0.05
        done
        tcti="swtpm:host=127.0.0.1,port=$port"
        echo "$tcti" > "$dir/tcti"
        echo "$tcti"
        [ -f "$dir/ca-bundle.pem" ] && echo "swtpm.sh: TCTI $tcti; CA bundle for --roots: $dir/ca-bundle.pem" >&2
        exit 0
      fi
    done
    echo "swtpm.sh: could not start swtpm (see $dir/swtpm.log)" >&2
    exit 1
    ;;
  stop)
    if [ -s "$dir/swtpm.pid" ]; then
      # TPM2_Shutdown(CLEAR) first: a TPM stopped without it counts the stop
      # as a dictionary-attack failure (three in a row lock DA-protected
      # objects out on swtpm's defaults).
      if [ -s "$dir/tcti" ] && command -v tpm2_shutdown >/dev/null 2>&1; then
        TPM2TOOLS_TCTI=$(cat "$dir/tcti") TSS2_LOG=all+none tpm2_shutdown >/dev/null 2>&1 \
          || echo "swtpm.sh: TPM2_Shutdown failed; stopping swtpm anyway (an unclean stop)" >&2
      fi
      kill "$(cat "$dir/swtpm.pid")" 2>/dev/null || true
      rm -f "$dir/swtpm.pid"
    fi
    ;;
  *) echo "usage: swtpm.sh start|stop DIR" >&2; exit 2 ;;
esac
