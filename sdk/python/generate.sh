#!/usr/bin/env bash
# Regenerates the low-level client under the SDK (src/cairn/_api) from the committed API
# document, docs/openapi.json, with the pinned openapi-python-client and ruff in
# /opt/cairn-venv (scripts/setup.sh installs scripts/sdk-requirements.txt there).
#
#   sdk/python/generate.sh            # rewrite src/cairn/_api (commit the result)
#   sdk/python/generate.sh DIR        # write it to DIR instead (crates/cairn/tests/sdk.rs
#                                     # compares that with the committed code)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/src/cairn/_api}"
venv="${CAIRN_VENV:-/opt/cairn-venv}"
if [ ! -x "$venv/bin/openapi-python-client" ]; then
  echo "openapi-python-client is not in $venv: run scripts/setup.sh" >&2
  exit 1
fi
export PATH="$venv/bin:$PATH"
# Generated (and formatted by its ruff hooks) in a directory of its own, so that no ruff or
# project setting around the destination changes the output; then moved into place.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Its warnings name the operations it leaves out (the byte streams: exec's NDJSON, file
# contents, archives), which the hand-written layer serves with httpx directly.
"$venv/bin/openapi-python-client" generate \
  --path "$here/../../docs/openapi.json" \
  --config "$here/openapi-python-client.yaml" \
  --meta none --overwrite --output-path "$work/_api" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
find "$work/_api" -name __pycache__ -prune -exec rm -rf {} +
rm -rf "$out"
mkdir -p "$(dirname "$out")"
cp -r "$work/_api" "$out"
