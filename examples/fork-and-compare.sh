#!/usr/bin/env bash
# Branching experiments: set up once, snapshot, fork three times, try a
# different approach in each, keep the winner. Usage: examples/fork-and-compare.sh [RUNTIME] [IMAGE]
set -euo pipefail
RT=${1:-gvisor}; IMAGE=${2:-base}
CAIRN=${CAIRN:-cairn}
SRC=$($CAIRN up --image "$IMAGE" --runtime "$RT")
$CAIRN exec "$SRC" 'mkdir -p /root/work && echo "expensive setup done" > /root/work/setup'
$CAIRN snapshot create "$SRC" --name ready-to-experiment >/dev/null
# SANDBOX:NAME always says which snapshot, whatever other sandboxes call theirs.
# (Captured first, so that a failed fork stops the script.)
OUT=$($CAIRN fork "$SRC:ready-to-experiment" --count 3)
mapfile -t FORKS <<<"$OUT"
i=0; best=""; best_score=-1
for F in "${FORKS[@]}"; do
  i=$((i + 1))
  # Each approach writes its own file; the "check" scores it.
  $CAIRN exec "$F" "echo approach-$i > /root/work/approach; cat /root/work/setup >/dev/null"
  score=$($CAIRN exec "$F" "ls /root/work | wc -l; ls /root/work/approach >/dev/null" | head -1)
  score=$((score * 10 + i))   # deterministic tie-break: the last approach wins
  echo "$F: approach-$i score $score"
  if [ "$score" -gt "$best_score" ]; then best=$F; best_score=$score; fi
done
for F in "${FORKS[@]}"; do [ "$F" = "$best" ] || $CAIRN destroy --force "$F" >/dev/null; done
echo "winner: $best ($($CAIRN exec "$best" 'cat /root/work/approach'))"
$CAIRN destroy --force "$best" >/dev/null
$CAIRN destroy --force --with-snapshots "$SRC" >/dev/null
