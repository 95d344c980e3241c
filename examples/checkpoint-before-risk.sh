#!/usr/bin/env bash
# Checkpoint before risk: snapshot a known-good state, let the agent break
# things, then roll back in place. Usage: examples/checkpoint-before-risk.sh [RUNTIME] [IMAGE]
set -euo pipefail
RT=${1:-gvisor}; IMAGE=${2:-base}
CAIRN=${CAIRN:-cairn}
ID=$($CAIRN up --image "$IMAGE" --runtime "$RT")
$CAIRN exec "$ID" 'mkdir -p /root/app && echo "print(1)" > /root/app/main.py && echo ok > /root/app/tests-pass'
listing() { $CAIRN exec "$ID" 'find /root /etc -xdev -type f -exec md5sum {} + | sort'; }
before=$(listing)
SNAP=$($CAIRN snapshot create "$ID" --name baseline-passing)
echo "checkpoint: $SNAP"
# The risky change: delete, edit, add.
$CAIRN exec "$ID" 'rm -rf /root/app; echo broken > /etc/cairn-image; echo junk > /root/new-file'
$CAIRN snapshot restore "$SNAP" >/dev/null
after=$(listing)
if [ "$before" = "$after" ]; then echo "restored: files are exactly as at $SNAP"; else echo "MISMATCH after restore" >&2; diff <(echo "$before") <(echo "$after") >&2; exit 1; fi
$CAIRN destroy --force --with-snapshots "$ID" >/dev/null
