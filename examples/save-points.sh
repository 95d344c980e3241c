#!/usr/bin/env bash
# Iterative loop with save points: after every step that passes, snapshot;
# when a step fails, restore the latest snapshot and go on.
# Usage: examples/save-points.sh [RUNTIME] [IMAGE]
set -euo pipefail
RT=${1:-gvisor}; IMAGE=${2:-base}
CAIRN=${CAIRN:-cairn}
ID=$($CAIRN up --image "$IMAGE" --runtime "$RT")
$CAIRN snapshot create "$ID" --name step-0 >/dev/null
for step in 1 2 3 4 5; do
  # Step 3 is the agent's bad idea: it damages the tree and its check fails.
  if [ $step = 3 ]; then cmd='rm -f /root/step-*; exit 1'; else cmd="echo $step > /root/step-$step"; fi
  if $CAIRN exec "$ID" "$cmd"; then
    $CAIRN snapshot create "$ID" --name "step-$step" >/dev/null
    echo "step $step passed: saved"
  else
    # The last listed is the latest ready snapshot taken by you (automatic and failed
    # ones are listed with --all only).
    latest=$($CAIRN snapshot list "$ID" --json | jq -r '.[-1].id')
    $CAIRN snapshot restore "$latest" >/dev/null
    echo "step $step failed: restored $latest"
  fi
done
$CAIRN exec "$ID" 'ls /root | tr "\n" " "'; echo
$CAIRN destroy --force --with-snapshots "$ID" >/dev/null
