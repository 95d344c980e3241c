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
$CAIRN snapshot create "$ID" --name baseline >/dev/null
echo "checkpoint: baseline"
# The risky change: delete, edit, add.
$CAIRN exec "$ID" 'rm -rf /root/app; echo broken > /etc/cairn-image; echo junk > /root/new-file'
# By name: the snapshot is found among yours (say "$ID:baseline" when several of your
# sandboxes have a "baseline").
$CAIRN snapshot restore baseline >/dev/null
after=$(listing)
if [ "$before" = "$after" ]; then echo "restored: files are exactly as at baseline"; else echo "MISMATCH after restore" >&2; diff <(echo "$before") <(echo "$after") >&2; exit 1; fi
$CAIRN destroy --force --with-snapshots "$ID" >/dev/null
