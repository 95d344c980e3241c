#!/usr/bin/env bash
# Benchmark: snapshots and forks through Cairn vs raw btrfs/runtime, in one run.
#  1. snapshot create (pause -> ready) of a runc sandbox with 1 MiB and 1 GiB written,
#     vs raw `btrfs subvolume snapshot -r` of the same subvolume; 1 GiB / 1 MiB ratio;
#     the pause window cairnd logs (runtime pause .. resume, an upper bound of what the sandbox sees)
#  2. fork to exec-ready (`cairn up --from-snapshot`) vs raw btrfs snapshot + create + start, per runtime
#  3. 100 forks of one snapshot (`cairn fork --count 100`, one request, runc; goal <= 1.0 s): total
#     time, per fork beside the raw btrfs snapshot + runc create + start floor, pool growth per fork,
#     and the same 100 made by the raw tools 4 at a time (the floor of a batch here)
#  4. 20 snapshots of a 1 GiB tree with 1% rewritten between each: pool bytes used vs one copy
# Usage (root, after scripts/setup.sh): bench/snapshot.sh [ITERATIONS]
# ONLY="1 2" bench/snapshot.sh runs only those parts.
set -euo pipefail
N=${1:-5}
. "$(dirname "$0")/lib.sh" --pool-size 12G --max-snapshot-size 4G --max-account-snapshot-size 100G
used() { btrfs filesystem du -s --raw "$CAIRN_HOME/pool" 2>/dev/null | awk 'NR==2 {print $2 + $3}'; }
pool_used() { sync; btrfs filesystem sync "$CAIRN_HOME/pool" >/dev/null; btrfs filesystem usage -b "$CAIRN_HOME/pool" 2>/dev/null | awk '/Used:/ {print $2; exit}'; }

if want 1; then
echo "== 1. snapshot create (runc), mean of $N"
printf '%-8s %12s %12s %14s %12s %8s %14s\n' tree cli_ms capture_ms pause_ready_ms raw_ms ratio max_pause_ms
declare -A SNAPMS
for tree in 1M 1G; do
  ID=$($C up --image base --runtime runc --memory 1G)
  if [ $tree = 1M ]; then $C exec "$ID" 'dd if=/dev/urandom of=/root/data bs=1M count=1 2>/dev/null'
  else $C exec "$ID" 'mkdir /root/d; for i in $(seq 1 1024); do head -c 1048576 /dev/urandom > /root/d/f$i; done'; fi
  sync   # both sides start from flushed data (a snapshot of unflushed data pays the flush)
  t=0
  for i in $(seq "$N"); do t0=$(now); $C snapshot create "$ID" >/dev/null; t=$((t + $(now) - t0)); done
  cairn=$((t / N))
  t=0
  for i in $(seq "$N"); do
    t0=$(now); btrfs -q subvolume snapshot -r "$CAIRN_HOME/pool/sandboxes/$ID" "$CAIRN_HOME/pool/raw-$tree-$i" >/dev/null; t=$((t + $(now) - t0))
  done
  raw=$((t / N))
  for i in $(seq "$N"); do btrfs -q subvolume delete "$CAIRN_HOME/pool/raw-$tree-$i" >/dev/null; done
  pause=$(grep "sandbox=$ID" "$CAIRN_HOME/cairnd.log" | grep -o 'paused_us[^0-9]*[0-9]*' | grep -o '[0-9]*$' | sort -n | tail -1)
  # Server side: pause -> ready (pause, snapshot, resume, sizes, limits, database), and the whole
  # capture (also the manifest and the flush of dirty data before the pause).
  ready=$(grep "sandbox=$ID" "$CAIRN_HOME/cairnd.log" | grep -o 'ready_us=[0-9]*' | cut -d= -f2 | awk '{s+=$1} END {print int(s/NR)}')
  capture=$(grep "sandbox=$ID" "$CAIRN_HOME/cairnd.log" | grep -o 'capture_us=[0-9]*' | cut -d= -f2 | awk '{s+=$1} END {print int(s/NR)}')
  SNAPMS[$tree]=$((ready * 1000))
  printf '%-8s %12s %12s %14s %12s %8s %14s\n' $tree "$(ms $cairn)" "$(echo "scale=2; $capture / 1000" | bc)" "$(echo "scale=2; $ready / 1000" | bc)" "$(ms $raw)" "$(ratio $((ready * 1000)) $raw)" "$(echo "scale=2; $pause / 1000" | bc)"
  $C destroy --force --with-snapshots "$ID" >/dev/null
done
echo "1 GiB / 1 MiB snapshot time: $(ratio ${SNAPMS[1G]} ${SNAPMS[1M]})"

fi
if want 2; then
echo "== 2. fork to exec-ready, mean of $N"
printf '%-8s %12s %12s %8s\n' runtime cairn_ms raw_ms ratio
for rt in runc gvisor; do
  if [ $rt = gvisor ]; then RAW=$RAWSC; else RAW=$RAWRC; fi
  SRC=$($C up --image base --runtime $rt)
  SNAP=$($C snapshot create "$SRC")
  SNAPDIR=$CAIRN_HOME/pool/snapshots/$SNAP/rootfs
  forks=(); t=0
  for i in $(seq "$N"); do t0=$(now); forks+=("$($C up --from-snapshot "$SNAP")"); t=$((t + $(now) - t0)); done
  cairn=$((t / N))
  tmpl=$CAIRN_HOME/run/${forks[0]}/config.json
  t=0
  for i in $(seq "$N"); do
    b=$CAIRN_HOME/rawbundle-$rt-$i; mkdir -p "$b"; root=$CAIRN_HOME/pool/sandboxes/f$i-$rt
    jq --arg r "$root" --arg c "/cairn-raw/f$i-$rt" '.root.path=$r | .linux.cgroupsPath=$c' "$tmpl" > "$b/config.json"
    t0=$(now)
    btrfs -q subvolume snapshot "$SNAPDIR" "$root" >/dev/null
    $RAW create --bundle "$b" "f$i-$rt" </dev/null >/dev/null 2>&1
    $RAW start "f$i-$rt"
    t=$((t + $(now) - t0))
  done
  raw=$((t / N))
  printf '%-8s %12s %12s %8s\n' $rt "$(ms $cairn)" "$(ms $raw)" "$(ratio $cairn $raw)"
  for i in $(seq "$N"); do $RAW delete --force "f$i-$rt" >/dev/null 2>&1 || $RAW delete -force "f$i-$rt" >/dev/null 2>&1 || true; btrfs -q subvolume delete "$CAIRN_HOME/pool/sandboxes/f$i-$rt" >/dev/null 2>&1 || true; done
  for f in "${forks[@]}"; do $C destroy --force "$f" >/dev/null; done
  $C destroy --force --with-snapshots "$SRC" >/dev/null
done

fi
if want 3; then
echo "== 3. 100 forks of one snapshot (runc)"
SRC=$($C up --image base --runtime runc --memory 64M)
$C exec "$SRC" 'head -c 10485760 /dev/urandom > /root/ten-mib'
SNAP=$($C snapshot create "$SRC")
before=$(pool_used)
t0=$(now)
$C fork "$SNAP" --count 100 > "$CAIRN_HOME/forks.txt"
total=$(( $(now) - t0 ))
after=$(pool_used)
echo "100 forks: $(ms $total) ms total, $(echo "scale=1; $total / 100000000" | bc) ms per fork; pool growth $(( (after - before) / 100 )) bytes per fork (tree holds 10 MiB)"
# The floor: what one fork costs the raw tools, one after another (btrfs snapshot of the
# snapshot's tree, runc create, runc start, with the forks' own config.json).
tmpl=$CAIRN_HOME/run/$(head -1 "$CAIRN_HOME/forks.txt")/config.json
RAWN=20; t=0
for i in $(seq $RAWN); do
  b=$CAIRN_HOME/rawfloor-$i; mkdir -p "$b"; root=$CAIRN_HOME/pool/sandboxes/floor-$i
  jq --arg r "$root" --arg c "/cairn-raw/floor-$i" '.root.path=$r | .linux.cgroupsPath=$c | .mounts |= map(if .destination=="/tmp" then .source=($r + "/tmp") else . end)' "$tmpl" > "$b/config.json"
  t0=$(now)
  btrfs -q subvolume snapshot "$CAIRN_HOME/pool/snapshots/$SNAP/rootfs" "$root" >/dev/null
  $RAWRC create --bundle "$b" "floor-$i" </dev/null >/dev/null 2>&1
  $RAWRC start "floor-$i"
  t=$((t + $(now) - t0))
done
echo "per fork: cairn $(echo "scale=1; $total / 100000000" | bc) ms (100 at once), raw btrfs snapshot + runc create + start $(echo "scale=1; $t / $RAWN / 1000000" | bc) ms (one at a time); ratio $(ratio $((total / 100)) $((t / RAWN)))"
for i in $(seq $RAWN); do $RAWRC delete --force "floor-$i" >/dev/null 2>&1 || true; btrfs -q subvolume delete "$CAIRN_HOME/pool/sandboxes/floor-$i" >/dev/null 2>&1 || true; done
# The same 100 made by the raw tools as Cairn makes them, 4 at a time (btrfs snapshot, then
# `runc run --detach`, Cairn's config.json): the floor of a batch on this machine.
for i in $(seq 100); do
  b=$CAIRN_HOME/rawbatch-$i; mkdir -p "$b"; root=$CAIRN_HOME/pool/sandboxes/batch-$i
  jq --arg r "$root" --arg c "/cairn-raw/batch-$i" '.root.path=$r | .linux.cgroupsPath=$c | .mounts |= map(if .destination=="/tmp" then .source=($r + "/tmp") else . end)' "$tmpl" > "$b/config.json"
done
one_raw_fork() { # I
  btrfs -q subvolume snapshot "$CAIRN_HOME/pool/snapshots/$SNAP/rootfs" "$CAIRN_HOME/pool/sandboxes/batch-$1" >/dev/null &&
    $RAWRC run --detach --bundle "$CAIRN_HOME/rawbatch-$1" "batch-$1" </dev/null >/dev/null
}
export -f one_raw_fork; export CAIRN_HOME SNAP RAWRC
t0=$(now)
seq 100 | xargs -P4 -I{} bash -c 'one_raw_fork {}'
batch=$(( $(now) - t0 ))
echo "100 raw forks, 4 at a time (btrfs snapshot + runc run --detach): $(ms $batch) ms; cairn/raw $(ratio $total $batch) (goal: cairn <= 1000 ms)"
for i in $(seq 100); do $RAWRC delete --force "batch-$i" >/dev/null 2>&1 || true; btrfs -q subvolume delete "$CAIRN_HOME/pool/sandboxes/batch-$i" >/dev/null 2>&1 || true; done
for f in $(cat "$CAIRN_HOME/forks.txt"); do $C destroy --force "$f" >/dev/null; done
$C destroy --force --with-snapshots "$SRC" >/dev/null

fi
if want 4; then
echo "== 4. 20 snapshots of a 1 GiB tree, 1% rewritten between each (runc)"
ID=$($C up --image base --runtime runc --memory 1G)
base_used=$(pool_used)
$C exec "$ID" 'mkdir /root/d; for i in $(seq 1 1024); do head -c 1048576 /dev/urandom > /root/d/f$i; done'
one_copy=$(( $(pool_used) - base_used ))
for s in $(seq 1 20); do
  $C exec "$ID" "for i in \$(seq 1 10); do n=\$(( (RANDOM % 1024) + 1 )); head -c 1048576 /dev/urandom > /root/d/f\$n; done"
  $C snapshot create "$ID" >/dev/null
done
all=$(( $(pool_used) - base_used ))
echo "one copy: $one_copy bytes; live tree + 20 snapshots: $all bytes; ratio $(ratio $all $one_copy)"
fi
