#!/usr/bin/env bash
# Builds the static cairn-agent (the init of every sandbox) where cairnd looks for it:
# target/x86_64-unknown-linux-gnu/<profile>/cairn-agent, beside target/<profile>/cairnd.
# glibc statically (no musl target here): -C target-feature=+crt-static, which needs an
# explicit --target so that build scripts and proc macros stay dynamic.
# Usage: scripts/build-agent.sh [--release]
set -euo pipefail
cd "$(dirname "$0")/.."
triple="$(uname -m)-unknown-linux-gnu"
profile=debug
[ "${1:-}" = "--release" ] && profile=release
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build -q -p cairn-agent --bin cairn-agent --target "$triple" ${1:+"$1"}
bin="target/$triple/$profile/cairn-agent"
if ldd "$bin" 2>&1 | grep -q '=>'; then
  echo "cairn: $bin is dynamically linked; sandboxes need a static agent" >&2
  exit 1
fi
echo "$bin"
