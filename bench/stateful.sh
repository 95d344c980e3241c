#!/usr/bin/env bash
# Benchmark: stateful snapshots and forks vs the raw runtime, in one run, for each runtime.
#  - stateful snapshot (`cairn snapshot create --stateful`) vs raw `runsc checkpoint --leave-running`
#    / `runc checkpoint --leave-running` (CRIU) of the same container
#  - stateful fork to running (`cairn up --from-snapshot`) vs raw `runsc restore` / `runc restore`
#    of the same checkpoint onto a btrfs snapshot of the snapshot's root (timed, as Cairn's is);
#  raw checkpoints are written into the same btrfs pool as Cairn's;
#  raw+syncfs adds the flush to disk that Cairn does before a snapshot is ready (crash safety)
# for a detached process holding ~10 MB and ~512 MB resident.
# Usage (root, after scripts/setup.sh): bench/stateful.sh [ITERATIONS]
set -euo pipefail
N=${1:-3}
. "$(dirname "$0")/lib.sh" --pool-size 12G --max-snapshot-size 8G --max-account-snapshot-size 100G
printf '%-8s %-8s %-9s %12s %12s %8s %16s %8s\n' runtime memory op cairn_ms raw_ms ratio raw+syncfs_ms ratio
for rt in gvisor runc; do
if [ $rt = gvisor ]; then RAW=$RAWSC; LIVE="runsc --root $CAIRN_HOME/run/runsc"; else RAW=$RAWRC; LIVE="runc --root $CAIRN_HOME/run/runc"; fi
for mb in 10 512; do
  ID=$($C up --image base --runtime $rt --memory 2G)
  # A detached shell that keeps $mb MB in a variable, then sleeps.
  $C exec -d "$ID" "x=\$(head -c $((mb * 1048576)) /dev/zero | tr '\\0' a); while :; do sleep 1; done"
  rss=0
  for _ in $(seq 120); do
    rss=$($C exec "$ID" "cat /proc/[0-9]*/status 2>/dev/null | awk '/^VmRSS/ {print \$2}' | sort -n | tail -1")
    [ "${rss:-0}" -ge $((mb * 900)) ] && break; sleep 0.5
  done
  echo "resident: ${rss:-0} kB" >&2
  t=0; snaps=()
  for i in $(seq "$N"); do t0=$(now); snaps+=("$($C snapshot create "$ID" --stateful)"); t=$((t + $(now) - t0)); done
  cairn=$((t / N))
  sync -f "$CAIRN_HOME/pool"; t=0; ts=0
  for i in $(seq "$N"); do
    if [ $rt = gvisor ]; then t0=$(now); $LIVE checkpoint --image-path "$CAIRN_HOME/pool/raw-ck-$rt-$mb-$i" --leave-running "$ID"
    else t0=$(now); $LIVE checkpoint --image-path "$CAIRN_HOME/pool/raw-ck-$rt-$mb-$i" --work-path "$CAIRN_HOME/pool/raw-wk-$rt-$mb-$i" --leave-running "$ID"; fi
    t=$((t + $(now) - t0)); sync -f "$CAIRN_HOME/pool"; ts=$((ts + $(now) - t0))
  done
  raw=$((t / N)); rawsync=$((ts / N))
  printf '%-8s %-8s %-9s %12s %12s %8s %16s %8s\n' $rt "${mb}MB" snapshot "$(ms $cairn)" "$(ms $raw)" "$(ratio $cairn $raw)" "$(ms $rawsync)" "$(ratio $cairn $rawsync)"
  t=0; forks=()
  for i in $(seq "$N"); do t0=$(now); forks+=("$($C up --from-snapshot "${snaps[0]}")"); t=$((t + $(now) - t0)); done
  cairn=$((t / N))
  tmpl=$CAIRN_HOME/run/${forks[0]}/config.json
  t=0
  for i in $(seq "$N"); do
    b=$CAIRN_HOME/rawb-$rt-$mb-$i; mkdir -p "$b"; root=$CAIRN_HOME/pool/sandboxes/r$i-$mb
    jq --arg r "$root" --arg c "/cairn-raw/r$i-$mb" '.root.path=$r | .linux.cgroupsPath=$c | .mounts |= map(if .destination=="/tmp" then .source=($r + "/tmp") else . end)' "$tmpl" > "$b/config.json"
    ck=$CAIRN_HOME/pool/snapshots/${snaps[0]}/checkpoint
    t0=$(now)
    btrfs -q subvolume snapshot "$CAIRN_HOME/pool/snapshots/${snaps[0]}/rootfs" "$root" >/dev/null
    if [ $rt = gvisor ]; then $RAW restore --image-path "$ck" --bundle "$b" -detach "r$i-$mb" </dev/null >/dev/null 2>&1
    else $RAW restore --detach --image-path "$ck" --work-path "$b/criu" --bundle "$b" "r$i-$mb" </dev/null >/dev/null 2>&1; fi
    t=$((t + $(now) - t0))
  done
  raw=$((t / N))
  $RAW state "r1-$mb" 2>/dev/null | grep -q '"status": "running"' || echo "warning: the raw restore did not leave r1-$mb running" >&2
  printf '%-8s %-8s %-9s %12s %12s %8s\n' $rt "${mb}MB" fork "$(ms $cairn)" "$(ms $raw)" "$(ratio $cairn $raw)"
  for f in "${forks[@]}"; do $C destroy --force "$f" >/dev/null; done
  for i in $(seq "$N"); do $RAW delete -force "r$i-$mb" >/dev/null 2>&1 || $RAW delete --force "r$i-$mb" >/dev/null 2>&1 || true; btrfs -q subvolume delete "$CAIRN_HOME/pool/sandboxes/r$i-$mb" >/dev/null 2>&1 || true; done
  $C destroy --force --with-snapshots "$ID" >/dev/null
done
done
