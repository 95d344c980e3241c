#!/usr/bin/env bash
# Benchmark: snapshot export and import vs the plain tools, in one run.
#  1. export of a snapshot of a 1 GiB tree (1024 files of 1 MiB, half random, half text)
#     `cairn snapshot export -o x.tar.gz` vs `tar -C tree -c . | gzip -1`, and
#     `-o x.tar.zst` vs `tar -C tree -c . | zstd -1` (goal <= 1.2x)
#  2. import of those archives (`cairn snapshot import`) vs the matching `tar -x` into a
#     directory of the same pool (goal <= 1.2x)
# Usage (root, after scripts/setup.sh): bench/share.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh" --pool-size 10G --max-snapshot-size 4G --max-account-snapshot-size 100G
W=$(mktemp -d /tmp/cairn-bench-share.XXXXXX)
trap 'rm -rf "$W"; bench_cleanup' EXIT
secs() { echo "scale=2; $1 / 1000000000" | bc; }

ID=$($C up --image base --runtime runc --memory 1G)
$C exec "$ID" 'mkdir /root/d; for i in $(seq 1 512); do head -c 1048576 /dev/urandom > /root/d/r$i; done;
  for i in $(seq 1 512); do yes "line $i of a text file that compresses like source code does" | head -c 1048576 > /root/d/t$i; done'
SNAP=$($C snapshot create "$ID" --name tree)
TREE="$CAIRN_HOME/pool/snapshots/$SNAP/rootfs"
sync
echo "== snapshot of $(du -sh "$TREE" | cut -f1) ($(find "$TREE" | wc -l) entries)"
printf '%-8s %-7s %10s %10s %7s %12s\n' format step cairn_s raw_s ratio archive_MB
for fmt in tar.gz tar.zst; do
  case $fmt in tar.gz) z="gzip -1"; unz="gzip -dc";; tar.zst) z="zstd -1 -q"; unz="zstd -dcq";; esac
  t0=$(now); $C snapshot export "$SNAP" -o "$W/cairn.$fmt"; cairn=$(($(now) - t0))
  t0=$(now); tar -C "$TREE" -c . | $z > "$W/raw.$fmt"; raw=$(($(now) - t0))
  printf '%-8s %-7s %10s %10s %7s %12s\n' $fmt export "$(secs $cairn)" "$(secs $raw)" "$(ratio $cairn $raw)" \
    "$(($(stat -c %s "$W/cairn.$fmt") >> 20))/$(($(stat -c %s "$W/raw.$fmt") >> 20))"
  sync
  t0=$(now); NEW=$($C snapshot import "$W/cairn.$fmt" --name "imported-${fmt/./-}"); cairn=$(($(now) - t0))
  mkdir "$CAIRN_HOME/pool/raw-x"
  t0=$(now); $unz "$W/raw.$fmt" | tar -C "$CAIRN_HOME/pool/raw-x" -x; sync -f "$CAIRN_HOME/pool/raw-x"; raw=$(($(now) - t0))
  printf '%-8s %-7s %10s %10s %7s\n' $fmt import "$(secs $cairn)" "$(secs $raw)" "$(ratio $cairn $raw)"
  rm -rf "$CAIRN_HOME/pool/raw-x" "$W"/*
  $C snapshot delete "$NEW" >/dev/null
done
