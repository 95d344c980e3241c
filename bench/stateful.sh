#!/usr/bin/env bash
# Benchmark: stateful snapshots and forks vs the raw runtime, in one run, for each runtime.
#  - stateful snapshot (`cairn snapshot create --stateful`) vs raw `runsc checkpoint --leave-running
#    --compression=none` (what Cairn asks runsc for: 2-3x faster than its default flate stream,
#    to write and to restore) / `runc checkpoint --leave-running` (CRIU) of a raw twin container
#  - stateful fork to running (`cairn up --from-snapshot`) vs raw `runsc restore` / `runc restore`
#    of the same checkpoint onto a btrfs snapshot of the snapshot's root (timed, as Cairn's is);
#  raw checkpoints are written into the same btrfs pool as Cairn's;
#  raw+syncfs adds the flush to disk that Cairn does before a snapshot is ready (crash safety);
#  frozen is how long Cairn kept the sandbox paused for the snapshot (from cairnd's log): the
#  raw command's whole time is the comparable pause, as runc/runsc freeze for all of it
# for a detached process holding ~10 MB and ~512 MB resident (MEMORY=random: random bytes,
# which no compression shrinks; MEMORY=text: text that compresses ~3x; default: one
# repeated byte).
# snap#1 is the sandbox's first stateful snapshot (no parent: all its memory is written),
# against the first raw checkpoint of a raw container set up the same way (from the
# sandbox's bundle, without the agent, whose connection a raw checkpoint cannot take);
# the snapshot row is the median of the next ones, whose unchanged pages (runc) are shared
# with the snapshot before (this process does not change its memory in between: the best
# case; pages that change cost what snap#1's do).
# Cairn's and the raw runs alternate (so a slow moment of the disk hits both), and the
# figures are medians of ITERATIONS (large-memory runs on a VM vary by 2-3x between runs).
# Then the cycle a user repeats: a sandbox running a counter (a shell loop that starts `mv`
# and `sleep` 20 times a second), stateful snapshot, fork it, run a command in the fork
# (exec-ready), destroy the fork; CYCLES (10) times, each cycle's snapshot and
# fork-to-exec-ready times printed, and the tenth against the first (goal: <= 1.10).
# Usage (root, after scripts/setup.sh): bench/stateful.sh [ITERATIONS]   (ONLY="gvisor runc")
#   CYCLE_ONLY=1 bench/stateful.sh   runs only the snapshot -> fork cycle
set -euo pipefail
N=${1:-5}
CYCLES=${CYCLES:-10}
. "$(dirname "$0")/lib.sh" --pool-size 12G --max-snapshot-size 8G --max-account-snapshot-size 100G

echo "== stateful snapshot -> fork -> exec -> destroy the fork, $CYCLES cycles of a counter"
printf '%-8s %6s %12s %12s %14s\n' runtime cycle snapshot_ms fork_exec_ms state_bytes
for rt in gvisor runc; do
  want $rt || continue
  ID=$($C up --image base --runtime $rt)
  $C exec -d "$ID" 'i=1000; while :; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/c; sleep 0.05; done' >/dev/null
  sleep 1
  snaps=""; forks=""
  for i in $(seq "$CYCLES"); do
    t0=$(now); S=$($C snapshot create "$ID" --stateful); t1=$(now)
    F=$($C up --from-snapshot "$S"); $C exec "$F" true >/dev/null; t2=$(now)
    # What the runtime saved besides memory pages (gVisor: its kernel's state file).
    state=$(stat -c %s "$CAIRN_HOME/pool/snapshots/$S/checkpoint/checkpoint.img" 2>/dev/null || echo -)
    printf '%-8s %6s %12s %12s %14s\n' $rt $i "$(ms $((t1 - t0)))" "$(ms $((t2 - t1)))" "$state"
    snaps="$snaps $((t1 - t0))"; forks="$forks $((t2 - t1))"
    $C destroy --force "$F" >/dev/null
  done
  first() { echo $1; }
  last() { shift $(($# - 1)); echo $1; }
  echo "$rt tenth/first: snapshot $(ratio $(last $snaps) $(first $snaps)), fork-to-exec-ready $(ratio $(last $forks) $(first $forks))"
  # The floor, in the same run: the raw runtime restores the last snapshot's checkpoint into a
  # btrfs snapshot of its root (Cairn's bundle), then runs `true` in it.
  if [ $rt = gvisor ]; then RAW=$RAWSC; else RAW=$RAWRC; fi
  F=$($C up --from-snapshot "$S"); tmpl=$CAIRN_HOME/run/$F/config.json
  raws=""
  for i in $(seq 3); do
    b=$CAIRN_HOME/rawcycle-$rt-$i; mkdir -p "$b"; root=$CAIRN_HOME/pool/sandboxes/rc$i-$rt
    jq --arg r "$root" --arg c "/cairn-raw/rc$i-$rt" '.root.path=$r | .linux.cgroupsPath=$c | .mounts |= map(if .destination=="/tmp" then .source=($r + "/tmp") else . end)' "$tmpl" > "$b/config.json"
    ck=$CAIRN_HOME/pool/snapshots/$S/checkpoint
    t0=$(now)
    btrfs -q subvolume snapshot "$CAIRN_HOME/pool/snapshots/$S/rootfs" "$root" >/dev/null
    if [ $rt = gvisor ]; then $RAW restore --image-path "$ck" --bundle "$b" -detach "rc$i-$rt" </dev/null >/dev/null 2>&1
    else $RAW restore --detach --image-path "$ck" --work-path "$b/criu" --bundle "$b" "rc$i-$rt" </dev/null >/dev/null 2>&1; fi
    $RAW exec "rc$i-$rt" /bin/true </dev/null >/dev/null 2>&1 || echo "warning: raw exec in rc$i-$rt failed" >&2
    raws="$raws $(( $(now) - t0 ))"
    $RAW delete -force "rc$i-$rt" >/dev/null 2>&1 || $RAW delete --force "rc$i-$rt" >/dev/null 2>&1 || true
    btrfs -q subvolume delete "$root" >/dev/null 2>&1 || true
  done
  $C destroy --force "$F" >/dev/null
  rawmed=$(echo $raws | tr ' ' '\n' | grep . | sort -n | sed -n 2p)
  echo "$rt fork-to-exec-ready: cairn last $(ms $(last $forks)) ms, raw restore + exec floor $(ms $rawmed) ms (median of 3), ratio $(ratio $(last $forks) $rawmed)"
  $C destroy --force --with-snapshots "$ID" >/dev/null
done
[ -z "${CYCLE_ONLY:-}" ] || exit 0

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.0f\n", (a[NR/2]+a[NR/2+1])/2}'; }
# (base64 of random bytes: 3/4 of the size in random bytes gives the size in text)
# (text: a hex dump of the busybox program, over and over: zstd shrinks it ~3x, at ~260 MB/s
# a thread, like a heap of strings and pointers)
case "${MEMORY:-}" in
  random) FILL="head -c \$((mb * 786432)) /dev/urandom | base64" ;;
  text) FILL="while od -An -tx1 -v /bin/busybox; do :; done | head -c \$((mb * 1048576))" ;;
  *) FILL="head -c \$((mb * 1048576)) /dev/zero | tr '\\0' a" ;;
esac
printf '%-8s %-8s %-9s %12s %12s %8s %16s %8s %10s %8s\n' runtime memory op cairn_ms raw_ms ratio raw+syncfs_ms ratio frozen_ms ratio
for rt in gvisor runc; do
want $rt || continue
if [ $rt = gvisor ]; then RAW=$RAWSC; else RAW=$RAWRC; fi
for mb in 10 512; do
  # Cairn's sandbox, and a raw container set up alike from its bundle (same image, limits,
  # mounts), whose init is the same detached shell. The raw checkpoints are of the raw
  # container: a Cairn sandbox's agent holds a connection to cairnd's socket, which Cairn
  # quiesces before its own checkpoints but a raw `runsc checkpoint` cannot (runsc
  # 20240729 panics on it; CRIU refuses the external socket). The raw snap#1 is the raw
  # container's first checkpoint, so that both snap#1 figures are a sandbox's first
  # (runsc's first checkpoint of a sandbox is slower than its next ones).
  ID=$($C up --image base --runtime $rt --memory 2G)
  # A detached shell that keeps $mb MB in a variable, then waits on one sleep (a loop of
  # sleeps would copy 512 MB of page tables a second: gVisor pays that in its sentry).
  # It says when the variable is full: a checkpoint taken before would fork a shell still
  # filling it (each fork burning CPU while the next one is timed).
  HOLD="mb=$mb; x=\$($FILL); touch /tmp/filled; sleep 1000000 & wait"
  $C exec -d "$ID" "$HOLD"
  TWIN=tw-$rt-$mb; twb=$CAIRN_HOME/rawtwin-$rt-$mb; twroot=$CAIRN_HOME/pool/sandboxes/$TWIN; mkdir -p "$twb"
  btrfs -q subvolume snapshot "$IMG" "$twroot" >/dev/null; mkdir -p "$twroot/tmp"
  cp "$CAIRN_HOME/run/$ID/criu.conf" "$twb/" 2>/dev/null || true
  jq --arg r "$twroot" --arg c "/cairn-raw/$TWIN" --arg hold "exec </dev/null >/dev/null 2>&1; $HOLD" --arg crc "$twb/criu.conf" \
    '.root.path=$r | .linux.cgroupsPath=$c | .process.args=["/bin/sh","-c",$hold] | .process.terminal=false
     | .mounts |= map(select(.destination | startswith("/.cairn") or . == "/run/secrets" | not)
                      | if .destination=="/tmp" then .source=($r + "/tmp") else . end)
     | .annotations |= (if . then with_entries(if .key=="org.criu.config" then .value=$crc else . end) else . end)' \
    "$CAIRN_HOME/run/$ID/config.json" > "$twb/config.json"
  $RAW run --detach --bundle "$twb" "$TWIN" </dev/null >/dev/null
  for _ in $(seq 600); do $C exec "$ID" "test -e /tmp/filled" >/dev/null 2>&1 && [ -e "$twroot/tmp/filled" ] && break; sleep 0.5; done
  rss=$($C exec "$ID" "cat /proc/[0-9]*/status 2>/dev/null | awk '/^VmRSS/ {print \$2}' | sort -n | tail -1")
  echo "resident: ${rss:-0} kB" >&2
  [ "${rss:-0}" -ge $((mb * 900)) ] || echo "warning: only ${rss:-0} kB resident, $((mb * 1024)) kB wanted" >&2
  [ -e "$twroot/tmp/filled" ] || echo "warning: the raw twin's variable is not full" >&2
  raw_checkpoint() { # CONTAINER NAME
    if [ $rt = gvisor ]; then $RAW checkpoint --compression=none --image-path "$CAIRN_HOME/pool/raw-ck-$2" --leave-running "$1"
    else $RAW checkpoint --image-path "$CAIRN_HOME/pool/raw-ck-$2" --work-path "$CAIRN_HOME/pool/raw-wk-$2" --leave-running "$1"; fi
  }
  sync -f "$CAIRN_HOME/pool"
  t0=$(now); raw_checkpoint "$TWIN" "$rt-$mb-twin"; raw1=$(( $(now) - t0 )); sync -f "$CAIRN_HOME/pool"; rawsync1=$(( $(now) - t0 ))
  cs=""; rs=""; rss_=""; fz=""; snaps=()
  for i in $(seq "$N"); do
    t0=$(now); snaps+=("$($C snapshot create "$ID" --stateful)"); cs="$cs $(( $(now) - t0 ))"
    fz="$fz $(grep "snapshot=${snaps[-1]} paused_us=" "$CAIRN_HOME/cairnd.log" | grep -oE '[0-9]+$')000"
    t0=$(now); raw_checkpoint "$TWIN" "$rt-$mb-$i"
    rs="$rs $(( $(now) - t0 ))"; sync -f "$CAIRN_HOME/pool"; rss_="$rss_ $(( $(now) - t0 ))"
  done
  # The first snapshot has no parent; each next one (the median row) shares with the one
  # before it the memory pages that did not change: here all of them, as the process idles.
  first() { echo $1; }
  cairn=$(first $cs); raw=$raw1; rawsync=$rawsync1; frozen=$(first $fz)
  printf '%-8s %-8s %-9s %12s %12s %8s %16s %8s %10s %8s\n' $rt "${mb}MB" "snap#1" "$(ms $cairn)" "$(ms $raw)" "$(ratio $cairn $raw)" "$(ms $rawsync)" "$(ratio $cairn $rawsync)" "$(ms $frozen)" "$(ratio $frozen $raw)"
  rest() { shift; echo "$@"; }
  cairn=$(rest $cs | median); raw=$(rest $rs | median); rawsync=$(rest $rss_ | median); frozen=$(rest $fz | median)
  printf '%-8s %-8s %-9s %12s %12s %8s %16s %8s %10s %8s\n' $rt "${mb}MB" snapshot "$(ms $cairn)" "$(ms $raw)" "$(ratio $cairn $raw)" "$(ms $rawsync)" "$(ratio $cairn $rawsync)" "$(ms $frozen)" "$(ratio $frozen $raw)"
  forks=(); cs=""; rs=""
  for i in $(seq "$N"); do
    t0=$(now); forks+=("$($C up --from-snapshot "${snaps[0]}")"); cs="$cs $(( $(now) - t0 ))"
    tmpl=$CAIRN_HOME/run/${forks[0]}/config.json
    b=$CAIRN_HOME/rawb-$rt-$mb-$i; mkdir -p "$b"; root=$CAIRN_HOME/pool/sandboxes/r$i-$mb
    jq --arg r "$root" --arg c "/cairn-raw/r$i-$mb" '.root.path=$r | .linux.cgroupsPath=$c | .mounts |= map(if .destination=="/tmp" then .source=($r + "/tmp") else . end)' "$tmpl" > "$b/config.json"
    ck=$CAIRN_HOME/pool/snapshots/${snaps[0]}/checkpoint
    t0=$(now)
    btrfs -q subvolume snapshot "$CAIRN_HOME/pool/snapshots/${snaps[0]}/rootfs" "$root" >/dev/null
    if [ $rt = gvisor ]; then $RAW restore --image-path "$ck" --bundle "$b" -detach "r$i-$mb" </dev/null >/dev/null 2>&1
    else $RAW restore --detach --image-path "$ck" --work-path "$b/criu" --bundle "$b" "r$i-$mb" </dev/null >/dev/null 2>&1; fi
    rs="$rs $(( $(now) - t0 ))"
  done
  cairn=$(echo $cs | median); raw=$(echo $rs | median)
  $RAW state "r1-$mb" 2>/dev/null | grep -q '"status": "running"' || echo "warning: the raw restore did not leave r1-$mb running" >&2
  printf '%-8s %-8s %-9s %12s %12s %8s\n' $rt "${mb}MB" fork "$(ms $cairn)" "$(ms $raw)" "$(ratio $cairn $raw)"
  for f in "${forks[@]}"; do $C destroy --force "$f" >/dev/null; done
  $RAW delete -force "$TWIN" >/dev/null 2>&1 || $RAW delete --force "$TWIN" >/dev/null 2>&1 || true
  btrfs -q subvolume delete "$twroot" >/dev/null 2>&1 || true
  for i in $(seq "$N"); do $RAW delete -force "r$i-$mb" >/dev/null 2>&1 || $RAW delete --force "r$i-$mb" >/dev/null 2>&1 || true; btrfs -q subvolume delete "$CAIRN_HOME/pool/sandboxes/r$i-$mb" >/dev/null 2>&1 || true; done
  rm -rf "$CAIRN_HOME"/pool/raw-ck-* "$CAIRN_HOME"/pool/raw-wk-*
  $C destroy --force --with-snapshots "$ID" >/dev/null
done
done
