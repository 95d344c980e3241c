#!/usr/bin/env bash
# The test command: unit tests and the end-to-end tests that drive the real
# cairnd and cairn against runsc and runc on a real btrfs pool (needs root
# and the packages scripts/setup.sh installs).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --workspace -- --test-threads="${CAIRN_TEST_THREADS:-4}" "$@"
