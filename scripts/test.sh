#!/usr/bin/env bash
# The test command: unit tests and the end-to-end tests that drive the real
# cairnd and cairn against runsc and runc on a real btrfs pool (needs root
# and the packages scripts/setup.sh installs). Ends with one summary line.
set -uo pipefail
cd "$(dirname "$0")/.."
# On a fresh machine this installs the packages the tests use; when they are there it is a no-op.
CAIRN_SKIP_BUILD=1 scripts/setup.sh >/dev/null
# The engine's own tests run on plain directories and a fake runtime: they must need no
# root, so they run as nobody (before the end-to-end tests, which need root).
engine_tests=$(cargo test -p cairn-engine --no-run --message-format=json \
    | jq -r 'select(.reason == "compiler-artifact" and .profile.test == true) | .executable // empty')
if [ -z "$engine_tests" ]; then
    echo "cairn: could not build the engine's tests (cargo test -p cairn-engine --no-run)" >&2
    exit 1
fi
for bin in $engine_tests; do
    if ! (cd / && setpriv --reuid=65534 --regid=65534 --clear-groups "$bin" -q); then
        echo "cairn: $(basename "$bin") failed as an ordinary user (nobody): the engine's tests must run without root (DirStorage, FakeRuntime)" >&2
        exit 1
    fi
done
# The static agent every sandbox runs as its init; cairnd finds it beside its own build.
scripts/build-agent.sh >/dev/null
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --lib --bins --tests --no-fail-fast -- --test-threads="${CAIRN_TEST_THREADS:-4}" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -E '^test result:' "$log" | sed -E 's/.* ([0-9]+) passed.*/\1/' | paste -sd+ - | bc)
failed=$(grep -E '^test result:' "$log" | sed -E 's/.* ([0-9]+) failed.*/\1/' | paste -sd+ - | bc)
echo
echo "cairn: ${passed:-0} passed, ${failed:-0} failed"
exit "$status"
