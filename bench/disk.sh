#!/usr/bin/env bash
# Benchmark: what disk limits (btrfs simple quotas) cost, in one run. Two daemons, each on its
# own 8 GiB pool: A without quotas (cairnd --no-disk-quota), B with them (every sandbox root
# counted against the shared budget; --default-disk none, so a sandbox without --disk has no
# limit of its own). Three cases, all runc:
#   none     pool A: no accounting at all (the baseline)
#   counted  pool B, no limit of its own (counted, and bounded by the pool's reserve)
#   limited  pool B, --disk 4G
#  1. write throughput: dd of MB MiB of zeros with conv=fsync inside the sandbox (busybox time)
#  2. snapshot create of a sandbox holding 1 GiB in 1024 files: pause -> ready (cairnd's log)
#     and the raw `btrfs subvolume snapshot -r` of the same root on the same pool
#  3. fork to exec-ready: `cairn up --from-snapshot` (wall clock)
# Ratios are against "none" of the same run; each figure is the median of ITERATIONS, taken
# round the three cases in turn. VERBOSE=1 also prints every sample.
# Usage (root, after scripts/setup.sh): bench/disk.sh [ITERATIONS] [MB]
set -euo pipefail
N=${1:-5}
MB=${2:-512}
. "$(dirname "$0")/lib.sh" --pool-size 8G --no-disk-quota --max-snapshot-size 4G --max-account-snapshot-size 100G
HOME_A=$CAIRN_HOME
HOME_B=$(mktemp -d /tmp/cairn-bench-quota.XXXXXX)
CAIRN_HOME=$HOME_B "$BIN/cairnd" --pool-size 8G --default-disk none --max-snapshot-size 4G \
  --max-account-snapshot-size 100G >"$HOME_B/cairnd.log" 2>&1 &
DAEMON_B=$!
cleanup_b() {
  for id in $(CAIRN_HOME=$HOME_B "$C" ls --json 2>/dev/null | jq -r '.[].id'); do
    CAIRN_HOME=$HOME_B "$C" destroy --force --with-snapshots "$id" >/dev/null 2>&1 || true
  done
  kill $DAEMON_B 2>/dev/null || true; wait $DAEMON_B 2>/dev/null || true
  for m in run pool; do umount "$HOME_B/$m" 2>/dev/null || umount -l "$HOME_B/$m" 2>/dev/null || true; done
  rm -rf "$HOME_B"
}
trap 'cleanup_b; bench_cleanup' EXIT
for _ in $(seq 200); do CAIRN_HOME=$HOME_B "$C" ls >/dev/null 2>&1 && break; sleep 0.05; done
CAIRN_HOME=$HOME_B "$C" image import "$ROOTFS_SRC" --name base >/dev/null

CASES="none counted limited"
home_of() { if [ "$1" = none ]; then echo "$HOME_A"; else echo "$HOME_B"; fi; }
# cl CASE ARGS: the cairn CLI against that case's daemon.
cl() { local h; h=$(home_of "$1"); shift; CAIRN_HOME=$h "$C" "$@"; }
up_args() { if [ "$1" = limited ]; then echo "--disk 4G"; fi; }
# secs_of "real 0m 1.23s" (busybox time) -> 1.23
secs_of() { awk '/^real/ { v = $NF; sub(/s$/, "", v); split($2, m, "m"); print m[1] * 60 + v }'; }

declare -A ID WRITES SNAPS RAWS FORKS SNAPID WRITE SNAP RAW FORK
for c in $CASES; do ID[$c]=$(cl $c up --image base --runtime runc --memory 1G $(up_args $c)); done
# Every measurement goes round the three cases in turn, so that a busy moment on the host
# hits them alike; the tables show medians.
# 1. write throughput (MB/s)
for i in $(seq "$N"); do
  for c in $CASES; do
    s=$(cl $c exec "${ID[$c]}" "time sh -c 'dd if=/dev/zero of=/root/w bs=1M count=$MB conv=fsync 2>/dev/null'; rm /root/w; sync" 2>&1 | secs_of)
    WRITES[$c]+="$(echo "scale=1; $MB / $s" | bc) "
  done
done
# 2. snapshots of 1 GiB in 1024 files: pause -> ready from each daemon's log, and raw
for c in $CASES; do
  cl $c exec "${ID[$c]}" 'mkdir /root/d; for i in $(seq 1 1024); do head -c 1048576 /dev/urandom > /root/d/f$i; done'
done
sync
for i in $(seq "$N"); do
  for c in $CASES; do
    cl $c snapshot create "${ID[$c]}" >/dev/null
    h=$(home_of $c)
    t0=$(now); btrfs -q subvolume snapshot -r "$h/pool/sandboxes/${ID[$c]}" "$h/pool/raw-$c-$i" >/dev/null; t=$(( $(now) - t0 ))
    RAWS[$c]+="$(ms $t) "
  done
done
for c in $CASES; do
  h=$(home_of $c)
  SNAPS[$c]=$(grep "sandbox=${ID[$c]}" "$h/cairnd.log" | grep -o 'ready_us=[0-9]*' | cut -d= -f2 | awk '{ printf "%.2f ", $1 / 1000 }')
  for i in $(seq "$N"); do btrfs -q subvolume delete "$h/pool/raw-$c-$i" >/dev/null; done
  SNAPID[$c]=$(cl $c snapshot create "${ID[$c]}")
done
# 3. fork to exec-ready
forks=()
for i in $(seq "$N"); do
  for c in $CASES; do
    t0=$(now); f=$(cl $c up --from-snapshot "${SNAPID[$c]}"); t=$(( $(now) - t0 ))
    FORKS[$c]+="$(ms $t) "; forks+=("$c:$f")
  done
done
for cf in "${forks[@]}"; do cl "${cf%%:*}" destroy --force "${cf#*:}" >/dev/null; done
for c in $CASES; do
  WRITE[$c]=$(echo ${WRITES[$c]} | tr ' ' '\n' | median)
  SNAP[$c]=$(echo ${SNAPS[$c]} | tr ' ' '\n' | median)
  RAW[$c]=$(echo ${RAWS[$c]} | tr ' ' '\n' | median)
  FORK[$c]=$(echo ${FORKS[$c]} | tr ' ' '\n' | median)
done

echo "== disk limits: runc, median of $N; writes of $MB MiB with conv=fsync; snapshots of a 1 GiB tree"
printf '%-8s %12s %8s %14s %8s %12s %10s %8s\n' case write_MB/s ratio snap_ready_ms ratio raw_snap_ms fork_ms ratio
for c in $CASES; do
  printf '%-8s %12s %8s %14s %8s %12s %10s %8s\n' $c "${WRITE[$c]}" "$(ratio "${WRITE[$c]}" "${WRITE[none]}")" \
    "${SNAP[$c]}" "$(ratio "${SNAP[$c]}" "${SNAP[none]}")" "${RAW[$c]}" \
    "${FORK[$c]}" "$(ratio "${FORK[$c]}" "${FORK[none]}")"
done
if [ -n "${VERBOSE:-}" ]; then
  for c in $CASES; do echo "$c: write ${WRITES[$c]}| ready ${SNAPS[$c]}| raw ${RAWS[$c]}| fork ${FORKS[$c]}"; done
fi
