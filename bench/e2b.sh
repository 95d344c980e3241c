#!/usr/bin/env bash
# Benchmark: E2B's Python SDK against Cairn, in one run.
#   run: `sandbox.commands.run("true")` through the unmodified e2b SDK (one warm Python
#        process, its HTTP connection pooled) vs `cairn exec ID true` (a CLI process each)
#        on the same sandbox (gVisor, the default runtime).
# Prints mean milliseconds and the ratio SDK/CLI.
# Usage (root, after scripts/setup.sh, which installs the SDK in /opt/cairn-venv):
#   bench/e2b.sh [ITERATIONS]
set -euo pipefail
N=${1:-20}
PY=/opt/cairn-venv/bin/python
"$PY" -c 'import e2b' 2>/dev/null || { echo "the e2b SDK is missing: run scripts/setup.sh" >&2; exit 1; }
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
. "$(dirname "$0")/lib.sh" --pool-size 4G --listen "127.0.0.1:$PORT"
"$C" image import "$ROOTFS_SRC" --name e2b-base --public >/dev/null
KEY=$("$BIN/cairnd" token create --account bench)
export E2B_API_URL=http://127.0.0.1:$PORT/e2b E2B_SANDBOX_URL=http://127.0.0.1:$PORT/e2b/envd E2B_API_KEY=$KEY
read -r ID SDK_NS < <("$PY" - "$N" <<'PY'
import sys, time
from e2b import Sandbox
n = int(sys.argv[1])
s = Sandbox.create(template="e2b-base")
s.commands.run("true")  # warm
t0 = time.perf_counter_ns()
for _ in range(n):
    s.commands.run("true")
print(s.sandbox_id, (time.perf_counter_ns() - t0) // n)
PY
)
# The sandbox is bench's: the CLI reaches it over TCP with the same key.
CLI=("$C" --host "http://127.0.0.1:$PORT" --token "$KEY")
"${CLI[@]}" exec "$ID" true
t0=$(now)
for _ in $(seq "$N"); do "${CLI[@]}" exec "$ID" true; done
CLI_NS=$(( ($(now) - t0) / N ))
printf '%-22s %12s %12s %8s\n' op sdk_ms cli_ms ratio
printf '%-22s %12s %12s %8s\n' 'run("true")' "$(ms "$SDK_NS")" "$(ms "$CLI_NS")" "$(ratio "$SDK_NS" "$CLI_NS")"
"${CLI[@]}" destroy --force "$ID" >/dev/null
