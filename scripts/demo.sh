#!/usr/bin/env bash
# The main demo, on a fresh machine, as root: install, build, make a base
# image, start cairnd, then up / exec / snapshot / restore / fork, a stateful
# snapshot and fork of a running counter, pause --release-memory / resume and
# destroy, on both runtimes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

export CAIRN_HOME=${CAIRN_HOME:-/var/lib/cairn}
BIN=$PWD/target/release
ROOTFS=$(mktemp -d /tmp/cairn-demo-rootfs.XXXXXX)
scripts/make-base-rootfs.sh "$ROOTFS" >/dev/null

if ! "$BIN/cairn" ls >/dev/null 2>&1; then
  "$BIN/cairnd" >"/tmp/cairnd-demo.log" 2>&1 &
  DAEMON=$!
  trap 'kill $DAEMON 2>/dev/null || true' EXIT
  for _ in $(seq 100); do "$BIN/cairn" ls >/dev/null 2>&1 && break; sleep 0.1; done
fi
"$BIN/cairn" image ls --json | jq -e '.[] | select(.name == "base")' >/dev/null 2>&1 \
  || "$BIN/cairn" image import "$ROOTFS" --name base
rm -rf "$ROOTFS"

set -x
for rt in gvisor runc; do
  ID=$("$BIN/cairn" up --image base --runtime "$rt")
  "$BIN/cairn" exec "$ID" -- sh -c 'echo "hello from $(hostname) on '"$rt"'"; uname -sr' || true
  "$BIN/cairn" exec "$ID" -- sh -c 'echo hi; exit 3' || echo "exit code: $?"
  "$BIN/cairn" exec "$ID" 'echo precious > /root/work'
  SNAP=$("$BIN/cairn" snapshot create "$ID" --name baseline)
  "$BIN/cairn" exec "$ID" 'rm /root/work; echo oops > /root/broken'
  "$BIN/cairn" snapshot restore "$SNAP"
  "$BIN/cairn" exec "$ID" 'ls /root; cat /root/work'
  FORKS=$("$BIN/cairn" fork "$SNAP" --count 2)
  "$BIN/cairn" ls
  for F in $FORKS; do "$BIN/cairn" destroy "$F" --force; done
  # Stateful: a running counter is checkpointed with its memory; the fork continues it.
  "$BIN/cairn" exec -d "$ID" 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.1; done'
  sleep 1
  LIVE=$("$BIN/cairn" snapshot create "$ID" --stateful --name counting)
  F=$("$BIN/cairn" up --from-snapshot "$LIVE")
  sleep 1
  "$BIN/cairn" exec "$F" 'echo "the fork continues the count: $(cat /tmp/count)"'
  "$BIN/cairn" destroy "$F" --force
  # Pause with the memory on disk, then resume where it was.
  "$BIN/cairn" pause --release-memory "$ID"
  "$BIN/cairn" resume "$ID"
  "$BIN/cairn" exec "$ID" 'echo "resumed at: $(cat /tmp/count)"'
  "$BIN/cairn" destroy "$ID" --force --with-snapshots
done
set +x
echo "demo finished: cairnd log in /tmp/cairnd-demo.log"
