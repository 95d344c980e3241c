#!/usr/bin/env bash
# Writes a minimal root filesystem (static busybox with all its applets) into DIR.
# Usage: scripts/make-base-rootfs.sh DIR
set -euo pipefail
D=${1:?usage: make-base-rootfs.sh DIR}
[ -x /bin/busybox ] || { echo "/bin/busybox is missing: apt-get install busybox-static" >&2; exit 1; }
mkdir -p "$D"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var/tmp}
chmod 1777 "$D/tmp" "$D/var/tmp"
cp /bin/busybox "$D/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$D/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$D/etc/passwd"
echo 'root:x:0:' > "$D/etc/group"
echo "base rootfs written to $D"
