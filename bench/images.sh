#!/usr/bin/env bash
# Benchmark: images from the real world, in one run.
#  pull    a ~200 MB image (busybox base + 3 layers of random data) pushed to a local
#          docker-registry (127.0.0.1, throw-away config): `cairn image pull` vs
#          `skopeo copy docker://… oci:DIR` + `umoci unpack` of it (goal <= 1.3x)
#  shared  a second image sharing those layers plus one new 1 MB layer: the bytes its pull
#          downloads (goal: only the new layer)
#  template: a template built from a small Cairnfile; then, alternating, $TEMPLATE_N (10)
#     sandboxes `up --template T` and as many `up --from-snapshot SNAP` (SNAP: the template's
#     snapshot), each destroyed after; the mean time to a running sandbox of each and their
#     ratio (goal <= 1.1), per runtime ($RUNTIMES: "runc gvisor").
# Usage (root, after scripts/setup.sh): bench/images.sh; ONLY="pull shared" runs those parts.
set -euo pipefail
for t in docker-registry skopeo umoci; do
  command -v $t >/dev/null || { echo "$t is missing: run scripts/setup.sh" >&2; exit 1; }
done
REG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
REG_DIR=$(mktemp -d /tmp/cairn-bench-registry.XXXXXX)
cat >"$REG_DIR/config.yml" <<CONF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REG_DIR/data
http:
  addr: 127.0.0.1:$REG_PORT
CONF
docker-registry serve "$REG_DIR/config.yml" >"$REG_DIR/log" 2>&1 &
REG=$!
trap 'kill $REG 2>/dev/null || true; rm -rf "$REG_DIR"' EXIT
REG_HOST=127.0.0.1:$REG_PORT
for _ in $(seq 100); do curl -s -o /dev/null "http://$REG_HOST/v2/" && break; sleep 0.1; done
. "$(dirname "$0")/lib.sh" --pool-size 10G --insecure-registry "$REG_HOST"
W=$(mktemp -d /tmp/cairn-bench-images.XXXXXX)
trap 'rm -rf "$W"; bench_cleanup; kill $REG 2>/dev/null || true; wait $REG 2>/dev/null || true; rm -rf "$REG_DIR"' EXIT
secs() { echo "scale=2; $1 / 1000000000" | bc; }
L="$W/layout"

# An image derived from tag $1 as tag $2, its new layer made by the command $3 in rootfs/.
derive() {
  umoci unpack --image "$L:$1" "$W/bundle" >/dev/null
  (cd "$W/bundle/rootfs" && eval "$3")
  umoci repack --image "$L:$2" "$W/bundle"
  rm -rf "$W/bundle"
}
if want pull || want shared; then
  umoci init --layout "$L"
  umoci new --image "$L:big"
  derive big big "cp -a $ROOTFS_SRC/. ."
  for i in 1 2 3; do derive big big "head -c 64M /dev/urandom > layer$i.bin"; done
  skopeo copy --quiet --dest-tls-verify=false "oci:$L:big" "docker://$REG_HOST/bench/big:v1"
  derive big big2 "head -c 1M /dev/urandom > new.bin"
  skopeo copy --quiet --dest-tls-verify=false "oci:$L:big2" "docker://$REG_HOST/bench/big2:v1"
fi

if want pull; then
  echo "== pull of $REG_HOST/bench/big:v1 ($(du -sh "$L/blobs" | cut -f1) of blobs in the layout)"
  printf '%-24s %10s\n' step seconds
  sync
  t0=$(now); skopeo copy --quiet --src-tls-verify=false "docker://$REG_HOST/bench/big:v1" "oci:$W/raw:big"
  umoci unpack --image "$W/raw:big" "$W/raw-bundle" >/dev/null; sync -f "$W"; raw=$(($(now) - t0))
  printf '%-24s %10s\n' "skopeo copy + umoci" "$(secs $raw)"
  t0=$(now); $C image pull "$REG_HOST/bench/big:v1" --name big --json > "$W/pull.json"; sync -f "$CAIRN_HOME/pool"; cairn=$(($(now) - t0))
  printf '%-24s %10s\n' "cairn image pull" "$(secs $cairn)"
  echo "ratio cairn/raw: $(ratio $cairn $raw) (goal <= 1.3); downloaded $(jq .pull.downloaded_bytes "$W/pull.json") bytes in $(jq .pull.layers_downloaded "$W/pull.json") layers"
  rm -rf "$W/raw" "$W/raw-bundle"
fi

if want shared; then
  want pull || $C image pull "$REG_HOST/bench/big:v1" --name big >/dev/null
  echo "== a second image sharing the base layers (+ one 1 MiB layer)"
  t0=$(now); $C image pull "$REG_HOST/bench/big2:v1" --name big2 --json > "$W/pull2.json"; t=$(($(now) - t0))
  echo "pulled in $(secs $t) s: $(jq .pull.layers_downloaded "$W/pull2.json") of $(jq .pull.layers "$W/pull2.json") layers downloaded, $(jq .pull.downloaded_bytes "$W/pull2.json") bytes (goal: only the new layer, ~1 MiB)"
fi

TN=${TEMPLATE_N:-10}
RUNTIMES=${RUNTIMES:-runc gvisor}
if want template; then
echo "== up --template vs up --from-snapshot of the template's snapshot, mean of $TN"
cat > "$W/Cairnfile" <<'CAIRNFILE'
FROM base
RUN mkdir -p /app && echo ready > /app/state
COPY Cairnfile /app/
ENV MODE=bench
WORKDIR /app
CAIRNFILE
printf '%-8s %4s %14s %18s %7s\n' runtime n template_ms from_snapshot_ms ratio
for rt in $RUNTIMES; do
  $C template build "bench-$rt" -f "$W/Cairnfile" "$W" --runtime "$rt" >/dev/null 2>&1
  SNAP=$($C template inspect "bench-$rt" --json | jq -r .snapshot)
  # One of each first, not counted (caches warm).
  for a in "--template bench-$rt" "--from-snapshot $SNAP"; do
    id=$($C up $a); $C destroy --force "$id" >/dev/null
  done
  tt=0; ts=0
  for _ in $(seq "$TN"); do
    t0=$(now); id=$($C up --template "bench-$rt"); tt=$((tt + $(now) - t0)); $C destroy --force "$id" >/dev/null
    t0=$(now); id=$($C up --from-snapshot "$SNAP"); ts=$((ts + $(now) - t0)); $C destroy --force "$id" >/dev/null
  done
  printf '%-8s %4s %14s %18s %7s\n' "$rt" "$TN" "$(ms $((tt / TN)))" "$(ms $((ts / TN)))" "$(ratio $tt $ts)"
done
fi
