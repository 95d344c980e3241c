# Shared set-up of the benchmarks (sourced, not run): builds Cairn, makes a throw-away
# $CAIRN_HOME with a busybox base image, starts cairnd with "$@", and removes everything
# (Cairn's sandboxes, raw containers under $CAIRN_HOME/run/raw-runc and raw-runsc, the
# runtime state tmpfs cairnd mounts on run/, the pool)
# when the benchmark exits. Defines BIN, C (the cairn CLI), DAEMON and the helpers below.
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins -q
scripts/build-agent.sh --release >/dev/null
BIN=$PWD/target/release
C="$BIN/cairn"
export CAIRN_HOME=$(mktemp -d /tmp/cairn-bench.XXXXXX)
# The base image's files live outside the data directory, which cairnd never imports from.
ROOTFS_SRC=$(mktemp -d /tmp/cairn-bench-rootfs.XXXXXX)
scripts/make-base-rootfs.sh "$ROOTFS_SRC" >/dev/null
"$BIN/cairnd" "$@" >"$CAIRN_HOME/cairnd.log" 2>&1 &
DAEMON=$!
bench_cleanup() {
  for id in $("$C" ls --json 2>/dev/null | jq -r '.[].id'); do "$C" destroy --force "$id" >/dev/null 2>&1 || true; done
  for r in runc runsc; do
    for id in $($r --root "$CAIRN_HOME/run/raw-$r" list --quiet 2>/dev/null); do
      $r --root "$CAIRN_HOME/run/raw-$r" delete --force "$id" >/dev/null 2>&1 || $r --root "$CAIRN_HOME/run/raw-$r" delete -force "$id" >/dev/null 2>&1 || true
    done
  done
  kill $DAEMON 2>/dev/null || true; wait $DAEMON 2>/dev/null || true
  for m in run pool; do umount "$CAIRN_HOME/$m" 2>/dev/null || umount -l "$CAIRN_HOME/$m" 2>/dev/null || true; done
  rm -rf "$CAIRN_HOME" "$ROOTFS_SRC"
}
trap bench_cleanup EXIT
for _ in $(seq 200); do "$C" ls >/dev/null 2>&1 && break; sleep 0.05; done
"$C" image import "$ROOTFS_SRC" --name base >/dev/null
IMG=$(ls -d "$CAIRN_HOME"/pool/images/img-*)
# Raw runtimes with Cairn's flags, keeping their state beside Cairn's, in the tmpfs cairnd
# mounts on $CAIRN_HOME/run (where runc's own default, /run/runc, is on most hosts).
RAWSC="runsc --root $CAIRN_HOME/run/raw-runsc --platform=systrap --overlay2=none --host-uds=open --network=none"
RAWRC="runc --root $CAIRN_HOME/run/raw-runc"
# want N: part N is selected by $ONLY (all parts when it is empty).
want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
now() { date +%s%N; }
ms() { echo "scale=2; $1 / 1000000" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }
# median of the numbers on stdin, one a line
median() { sort -n | awk 'BEGIN { OFMT = "%.6f" } { v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
