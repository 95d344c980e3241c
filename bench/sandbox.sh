#!/usr/bin/env bash
# Benchmark: sandbox creation and exec through Cairn vs the raw runtime, in one run.
#   up:   `cairn up` (btrfs snapshot + bundle + create + start, until exec-ready)
#         vs raw `btrfs subvolume snapshot` + `<runtime> create` + `<runtime> start` of the same bundle
#   exec: `cairn exec ID true` vs raw `<runtime> exec ID true`
# Prints mean milliseconds and the ratio Cairn/raw per runtime.
# Usage (root, after scripts/setup.sh): bench/sandbox.sh [ITERATIONS]
set -euo pipefail
N=${1:-10}
. "$(dirname "$0")/lib.sh" --pool-size 4G

printf '%-8s %-6s %12s %12s %8s\n' runtime op cairn_ms raw_ms ratio
for rt in runc gvisor; do
  if [ $rt = gvisor ]; then RAW=$RAWSC; else RAW=$RAWRC; fi
  # --- up ---
  ids=(); t0=$(now)
  for i in $(seq "$N"); do ids+=("$("$BIN/cairn" up --image base --runtime $rt)"); done
  cairn_up=$(( ($(now) - t0) / N ))
  # raw: same bundle (config.json of a Cairn sandbox), fresh snapshot each time
  tmpl=$CAIRN_HOME/run/${ids[0]}/config.json
  t_raw=0
  for i in $(seq "$N"); do
    b=$CAIRN_HOME/rawbundle-$rt-$i; mkdir -p "$b"
    root=$CAIRN_HOME/pool/sandboxes/r$i-$rt
    # The raw container runs a shell as its init, not the agent (which would dial the Cairn
    # sandbox's own socket directory).
    jq --arg r "$root" --arg c "/cairn-raw/$rt-$i" '.root.path=$r | .linux.cgroupsPath=$c
      | .process.args=["/bin/sh","-c","exec </dev/null >/dev/null 2>&1; while :; do sleep 3600; done"]
      | .mounts |= map(select(.destination | startswith("/.cairn") | not))' "$tmpl" > "$b/config.json"
    t0=$(now)
    btrfs -q subvolume snapshot "$IMG" "$root" >/dev/null
    $RAW create --bundle "$b" "r$i-$rt" </dev/null >/dev/null 2>&1
    $RAW start "r$i-$rt"
    t_raw=$(( t_raw + $(now) - t0 ))
  done
  raw_up=$(( t_raw / N ))
  printf '%-8s %-6s %12s %12s %8s\n' $rt up "$(ms $cairn_up)" "$(ms $raw_up)" "$(echo "scale=2; $cairn_up / $raw_up" | bc)"
  # --- exec ---
  id=${ids[0]}; t0=$(now)
  for i in $(seq "$N"); do "$BIN/cairn" exec "$id" -- true; done
  cairn_exec=$(( ($(now) - t0) / N ))
  t0=$(now)
  for i in $(seq "$N"); do $RAW exec "r1-$rt" true </dev/null; done
  raw_exec=$(( ($(now) - t0) / N ))
  printf '%-8s %-6s %12s %12s %8s\n' $rt exec "$(ms $cairn_exec)" "$(ms $raw_exec)" "$(echo "scale=2; $cairn_exec / $raw_exec" | bc)"
  for id in "${ids[@]}"; do "$BIN/cairn" destroy --force "$id" >/dev/null; done
  for i in $(seq "$N"); do $RAW delete --force "r$i-$rt" >/dev/null 2>&1 || $RAW delete -force "r$i-$rt" >/dev/null 2>&1 || true; btrfs -q subvolume delete "$CAIRN_HOME/pool/sandboxes/r$i-$rt" >/dev/null 2>&1 || true; done
done

# --- files: a 100 MB file written and read through the files API vs `cat` through exec ---
# (issue 17's goal: the files API at >= 0.8x exec's throughput), both into and out of the
# running sandbox: a gVisor sandbox's writes go through its agent (its sentry caches files),
# its reads come from the host after a flush. MiB/s, mean of N/3 rounds (at least 1); ratio
# files/exec.
F=$(mktemp /tmp/cairn-bench-files.XXXXXX); head -c 100M /dev/urandom > "$F"
SOCK=$CAIRN_HOME/cairnd.sock
R=$(( N / 3 )); [ "$R" -ge 1 ] || R=1
mibps() { echo "scale=1; 100 * $R * 1000000000 / $1" | bc; }
printf '\n%-8s %-6s %12s %12s %8s\n' runtime op files_MiBs exec_MiBs ratio
for rt in runc gvisor; do
  id=$("$C" up --image base --runtime $rt)
  ew=0; er=0; fw=0; fr=0
  for i in $(seq "$R"); do
    t0=$(now); "$C" exec -i "$id" -- sh -c 'cat > /root/big.exec' < "$F"; ew=$(( ew + $(now) - t0 ))
    t0=$(now); "$C" exec "$id" -- cat /root/big.exec > /dev/null; er=$(( er + $(now) - t0 ))
    t0=$(now); curl -sf --unix-socket "$SOCK" -T "$F" "http://cairnd/v1/sandboxes/$id/files?path=/root/big.files" >/dev/null; fw=$(( fw + $(now) - t0 ))
    t0=$(now); curl -sf --unix-socket "$SOCK" -o /dev/null "http://cairnd/v1/sandboxes/$id/files?path=/root/big.files"; fr=$(( fr + $(now) - t0 ))
  done
  printf '%-8s %-6s %12s %12s %8s\n' $rt write "$(mibps $fw)" "$(mibps $ew)" "$(ratio $ew $fw)"
  printf '%-8s %-6s %12s %12s %8s\n' $rt read "$(mibps $fr)" "$(mibps $er)" "$(ratio $er $fr)"
  "$C" destroy --force "$id" >/dev/null
done
rm -f "$F"
