#!/usr/bin/env bash
# Build a python-ish template from a Cairnfile once, then start three sandboxes from it:
# each is a fork of the template's snapshot (no image unpack, no steps run again), with the
# template's files, environment and working directory, and (built with --stateful) its
# "kernel" already running. Uses only the busybox tools of the test root filesystem, so it
# runs on the `base` image (scripts/make-base-rootfs.sh).
# Usage: examples/up-from-template.sh [RUNTIME] [IMAGE]
set -euo pipefail
RT=${1:-gvisor}; IMAGE=${2:-base}
CAIRN=${CAIRN:-cairn}
CTX=$(mktemp -d)
trap 'rm -rf "$CTX"' EXIT

mkdir -p "$CTX/lib"
cat > "$CTX/lib/greet.sh" <<'SH'
greet() { echo "hello from the template, $1"; }
SH
cat > "$CTX/Cairnfile" <<CAIRNFILE
# A stand-in for "python with my packages, warmed up".
FROM $IMAGE
RUN mkdir -p /opt/py/site-packages && echo 'numpy-ish 1.0' > /opt/py/site-packages/INSTALLED
COPY lib /opt/py/lib
ENV PYTHONPATH=/opt/py/lib LANG=C.UTF-8
WORKDIR /work
# The "kernel": a background loop that is already running in every sandbox (--stateful).
RUN setsid sh -c 'n=0; while :; do n=\$((n+1)); echo \$n > /tmp/kernel-ticks; sleep 1; done' >/dev/null 2>&1 &
CAIRNFILE

$CAIRN template build py -f "$CTX/Cairnfile" "$CTX" --runtime "$RT" --stateful
# A second build finds every step cached and is instant.
$CAIRN template build py -f "$CTX/Cairnfile" "$CTX" --runtime "$RT" --stateful
$CAIRN template ls

IDS=()
for i in 1 2 3; do
  IDS+=("$($CAIRN up --template py)")
done
for id in "${IDS[@]}"; do
  $CAIRN exec "$id" '. $PYTHONPATH/greet.sh; greet "$(hostname)"; cat /opt/py/site-packages/INSTALLED; echo "cwd $(pwd), kernel ticks $(cat /tmp/kernel-ticks)"'
done
for id in "${IDS[@]}"; do $CAIRN destroy --force "$id" >/dev/null; done
$CAIRN template rm py
