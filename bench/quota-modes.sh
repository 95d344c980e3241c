#!/usr/bin/env bash
# Experiment behind Cairn's choice of btrfs *simple* quotas for disk limits: the same access
# pattern on raw btrfs (no Cairn) with no quotas, simple quotas and full qgroup accounting.
# A root made as a snapshot of an "image" joins a level-1 group (as every sandbox root joins
# the shared budget), gets 1 GiB in 1024 files, then 20 read-only snapshots with 1% rewritten
# between each, 256 MiB of the 20x-shared data overwritten with fsync, and everything
# deleted. Prints per mode: snapshot + commit time, the rewrite, the deletion until btrfs has
# dropped the trees, and whether the kernel marked the quota counts inconsistent (a rescan of
# the whole file system needed before limits can be trusted).
# Simple quotas need Linux 6.7+; btrfs-progs 6.2 cannot turn them on, so python3 makes the
# ioctl (BTRFS_IOC_QUOTA_CTL, BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA).
# Usage (root): bench/quota-modes.sh
set -euo pipefail
WORK=$(mktemp -d /tmp/cairn-quota-modes.XXXXXX)
trap 'umount "$WORK"/m-* 2>/dev/null || true; rm -rf "$WORK"' EXIT
now() { date +%s%N; }
simple_quotas() {
  python3 - "$1" <<'PY'
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.ioctl(fd, (3 << 30) | (16 << 16) | (0x94 << 8) | 40, bytearray(struct.pack("QQ", 4, 0)))
PY
}
for mode in none simple full; do
  img=$WORK/$mode.img; m=$WORK/m-$mode
  truncate -s 8G "$img"; mkfs.btrfs -q -f "$img" >/dev/null; mkdir -p "$m"; mount -o loop "$img" "$m"
  losetup --direct-io=on "$(findmnt -no SOURCE "$m")" 2>/dev/null || true
  case $mode in simple) simple_quotas "$m";; full) btrfs quota enable "$m";; esac
  btrfs -q subvolume create "$m/image"
  G=()
  if [ $mode != none ]; then btrfs qgroup create 1/100 "$m"; G=(-i 1/100); fi
  btrfs -q subvolume snapshot "${G[@]}" "$m/image" "$m/root"
  mkdir "$m/root/d"; for i in $(seq 1 1024); do head -c 1048576 /dev/urandom > "$m/root/d/f$i"; done; sync
  t=0
  for s in $(seq 1 20); do
    for i in $(seq 1 10); do head -c 1048576 /dev/urandom > "$m/root/d/f$(( (RANDOM % 1024) + 1 ))"; done
    sync
    t0=$(now); btrfs -q subvolume snapshot -r "$m/root" "$m/s$s"; btrfs filesystem sync "$m"; t=$((t + $(now) - t0))
  done
  snap=$((t / 20 / 1000))
  t0=$(now)
  for i in $(seq 1 256); do dd if=/dev/urandom of="$m/root/d/f$i" bs=1M count=1 conv=notrunc,fsync status=none; done
  btrfs filesystem sync "$m"
  rewrite=$(( ($(now) - t0) / 1000000 ))
  fsid=$(btrfs filesystem show "$m" | awk '/uuid/ {print $NF}')
  incons=$(cat "/sys/fs/btrfs/$fsid/qgroups/inconsistent" 2>/dev/null || echo -)
  t0=$(now)
  for s in $(seq 1 20); do btrfs -q subvolume delete "$m/s$s"; done
  btrfs -q subvolume delete "$m/root"; btrfs subvolume sync "$m" >/dev/null
  del=$(( ($(now) - t0) / 1000000 ))
  printf '%-7s snapshot+commit %6d us  rewrite 256 MiB of 20x-shared data %6d ms  delete 21 trees until dropped %6d ms  inconsistent=%s\n' \
    $mode $snap $rewrite $del "$incons"
  umount "$m"; rm -f "$img"
done
