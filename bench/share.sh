#!/usr/bin/env bash
# Benchmark: snapshot export and import vs the plain tools, in one run.
#  1. export of a snapshot of a 1 GiB tree (1024 files of 1 MiB, half random, half text)
#     `cairn snapshot export -o x.tar.gz` vs `tar -C tree -c . | gzip -1`, and
#     `-o x.tar.zst` vs `tar -C tree -c . | zstd -1` (goal <= 1.2x); the tree in the page
#     cache for both, the median of $EXPORT_RUNS (3) turns each
#  2. import of those archives (`cairn snapshot import`) vs the matching `tar -x` into a
#     directory of the same pool (goal <= 1.2x)
#  3. the remote tier, against moto's S3 server on loopback: $REMOTE_ROUNDS (20) snapshots
#     of a tree of $REMOTE_FILES (1024) files of 1 MiB of random data, 1 % of the files
#     rewritten between each, each pushed: the bucket's bytes vs one copy (goal <= 1.3x);
#     a second push of the last uploads nothing; a fork on a second host with none of the
#     data vs (downloading its chunks from the store with curl + a local fork), both printed.
# Usage (root, after scripts/setup.sh): bench/share.sh; ONLY="archive" or ONLY="remote"
# runs one part.
set -euo pipefail
command -v moto_server >/dev/null || { echo "moto_server is missing: run scripts/setup.sh" >&2; exit 1; }
MOTO_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
MOTO_LOG=$(mktemp /tmp/cairn-bench-moto.XXXXXX)
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$MOTO_LOG" 2>&1 &
MOTO=$!
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
S3="http://127.0.0.1:$MOTO_PORT"
S3_AUTH="Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
for _ in $(seq 100); do curl -s -o /dev/null "$S3" && break; sleep 0.1; done
curl -sf -H "$S3_AUTH" -X PUT "$S3/bench" >/dev/null
REMOTE_ARGS=(--remote s3://bench/team --remote-endpoint "$S3")
. "$(dirname "$0")/lib.sh" --pool-size 10G --max-snapshot-size 4G --max-account-snapshot-size 100G "${REMOTE_ARGS[@]}"
W=$(mktemp -d /tmp/cairn-bench-share.XXXXXX)
trap 'rm -rf "$W"; remote_cleanup; bench_cleanup; kill $MOTO; wait $MOTO 2>/dev/null; rm -f "$MOTO_LOG"' EXIT
H2=""
remote_cleanup() {
  [ -n "$H2" ] || return 0
  for id in $(CAIRN_HOME=$H2 "$C" ls --json 2>/dev/null | jq -r '.[].id'); do CAIRN_HOME=$H2 "$C" destroy --force "$id" >/dev/null 2>&1 || true; done
  kill "$D2" 2>/dev/null || true; wait "$D2" 2>/dev/null || true
  for m in run pool; do umount "$H2/$m" 2>/dev/null || umount -l "$H2/$m" 2>/dev/null || true; done
  rm -rf "$H2"
}
secs() { echo "scale=2; $1 / 1000000000" | bc; }

if want archive; then
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
  # Both sides read the tree from the page cache (the snapshot's files are other inodes than
  # the sandbox's that wrote them: whoever went first read them from disk), and take turns
  # $EXPORT_RUNS times (3); the medians are compared.
  tar -C "$TREE" -c . > /dev/null
  cs=(); rs=()
  for _ in $(seq "${EXPORT_RUNS:-3}"); do
    rm -f "$W/cairn.$fmt" "$W/raw.$fmt"
    t0=$(now); $C snapshot export "$SNAP" -o "$W/cairn.$fmt" >/dev/null; cs+=($(($(now) - t0)))
    t0=$(now); tar -C "$TREE" -c . | $z > "$W/raw.$fmt"; rs+=($(($(now) - t0)))
  done
  cairn=$(printf '%s\n' "${cs[@]}" | median); raw=$(printf '%s\n' "${rs[@]}" | median)
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
fi

# Bytes stored under a prefix of the bucket.
bucket_bytes() {
  local total=0 token="" xml
  while :; do
    xml=$(curl -sf -H "$S3_AUTH" "$S3/bench?list-type=2&prefix=$1${token:+&continuation-token=$(jq -rn --arg t "$token" '$t|@uri')}")
    total=$((total + $(grep -o '<Size>[0-9]*</Size>' <<<"$xml" | tr -dc '0-9\n' | paste -sd+ | bc)))
    token=$(grep -o '<NextContinuationToken>[^<]*' <<<"$xml" | sed 's/.*>//' || true)
    [ -n "$token" ] || break
  done
  echo "$total"
}

if want remote; then
  FILES=${REMOTE_FILES:-1024}; ROUNDS=${REMOTE_ROUNDS:-20}
  CHANGE=$((FILES / 100)); [ "$CHANGE" -ge 1 ] || CHANGE=1
  RID=$($C up --image base --runtime runc --memory 1G)
  $C exec "$RID" "mkdir /root/r; for i in \$(seq 1 $FILES); do head -c 1048576 /dev/urandom > /root/r/f\$i; done"
  echo "== remote: $ROUNDS snapshots of $FILES files of 1 MiB, $CHANGE rewritten between each, pushed to moto"
  printf '%-6s %12s %12s %9s %10s\n' push stream_MB uploaded_MB seconds bucket_MB
  for round in $(seq 1 "$ROUNDS"); do
    if [ "$round" -gt 1 ]; then
      $C exec "$RID" "for i in \$(shuf -i 1-$FILES -n $CHANGE); do head -c 1048576 /dev/urandom > /root/r/f\$i; done"
    fi
    S=$($C snapshot create "$RID" --name "r$round")
    P=$($C snapshot push "$S" --json)
    [ "$round" -gt 1 ] || ONE=$(jq .uploaded_bytes <<<"$P")
    printf '%-6s %12s %12s %9.2f %10s\n' "$round" "$(($(jq .bytes <<<"$P") >> 20))" "$(($(jq .uploaded_bytes <<<"$P") >> 20))" \
      "$(jq .seconds <<<"$P")" "$(($(bucket_bytes team/) >> 20))"
  done
  STORED=$(bucket_bytes team/)
  echo "bucket: $((STORED >> 20)) MB for $ROUNDS snapshots; one copy: $((ONE >> 20)) MB; ratio $(ratio "$STORED" "$ONE") (goal <= 1.3)"
  AGAIN=$($C snapshot push "$S" --json)
  echo "second push of $S: uploaded $(jq .uploaded_bytes <<<"$AGAIN") bytes (already_pushed: $(jq .already_pushed <<<"$AGAIN"))"

  # A second host on the same bucket, with none of the data.
  H2=$(mktemp -d /tmp/cairn-bench-h2.XXXXXX)
  CAIRN_HOME=$H2 "$BIN/cairnd" --pool-size 10G --max-snapshot-size 4G --max-account-snapshot-size 100G "${REMOTE_ARGS[@]}" >"$H2/cairnd.log" 2>&1 &
  D2=$!
  for _ in $(seq 200); do CAIRN_HOME=$H2 "$C" ls >/dev/null 2>&1 && break; sleep 0.05; done
  t0=$(now); CAIRN_HOME=$H2 "$C" fork "$S" >/dev/null; remote_fork=$(($(now) - t0))
  t0=$(now); CAIRN_HOME=$H2 "$C" fork "$S" >/dev/null; local_fork=$(($(now) - t0))
  # The store's speed: the same chunks downloaded by curl, 4 at a time (as cairnd does).
  curl -sf -H "$S3_AUTH" "$S3/bench/team/local/snapshots/$S.json" | jq -r '.chunks[].hash' >"$W/chunks"
  t0=$(now)
  xargs -P 4 -I{} curl -sf -H "$S3_AUTH" -o /dev/null "$S3/bench/team/local/chunks/{}" <"$W/chunks"
  download=$(($(now) - t0))
  printf '%-34s %9s\n' step seconds
  printf '%-34s %9s\n' "fork on a host without the data" "$(secs $remote_fork)" \
    "download of its chunks (curl)" "$(secs $download)" "local fork (data now here)" "$(secs $local_fork)"
  echo "ratio fork / (download + local fork): $(ratio $remote_fork $((download + local_fork)))"
fi
