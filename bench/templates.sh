#!/usr/bin/env bash
# Benchmark: `cairn up --template` vs `cairn up --from-snapshot` of the same snapshot.
#  template: a template built from a small Cairnfile; then, alternating, $N (10) sandboxes
#     `up --template T` and $N `up --from-snapshot SNAP` (SNAP: the template's snapshot),
#     each destroyed after; the mean time to a running sandbox of each and their ratio
#     (goal <= 1.1), per runtime ($RUNTIMES: "runc gvisor").
# Usage (root, after scripts/setup.sh): bench/templates.sh; ONLY="template" runs the part
# (the lead merges it into bench/images.sh as its `want template` part).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${N:-10}
RUNTIMES=${RUNTIMES:-runc gvisor}
W=$(mktemp -d /tmp/cairn-bench-templates.XXXXXX)
trap 'rm -rf "$W"; bench_cleanup' EXIT

if want template; then
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
  for _ in $(seq "$N"); do
    t0=$(now); id=$($C up --template "bench-$rt"); tt=$((tt + $(now) - t0)); $C destroy --force "$id" >/dev/null
    t0=$(now); id=$($C up --from-snapshot "$SNAP"); ts=$((ts + $(now) - t0)); $C destroy --force "$id" >/dev/null
  done
  printf '%-8s %4s %14s %18s %7s\n' "$rt" "$N" "$(ms $((tt / N)))" "$(ms $((ts / N)))" "$(ratio $tt $ts)"
done
fi
