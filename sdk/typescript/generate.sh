#!/usr/bin/env bash
# Regenerates the API's types under the SDK (src/schema.ts) from the committed API document,
# docs/openapi.json (or $CAIRN_OPENAPI), with the pinned openapi-typescript (and TypeScript 5) of package-lock.json,
# found in ./node_modules or in /opt/cairn-sdk-ts/node_modules (scripts/setup.sh installs it).
#
#   sdk/typescript/generate.sh            # rewrite src/schema.ts (commit the result)
#   sdk/typescript/generate.sh FILE       # write it to FILE instead (crates/cairn/tests/sdk_ts.rs
#                                         # compares that with the committed file)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/src/schema.ts}"
bin=""
for d in "$here/node_modules" "${CAIRN_SDK_TS:-/opt/cairn-sdk-ts}/node_modules"; do
  if [ -x "$d/.bin/openapi-typescript" ]; then bin="$d/.bin/openapi-typescript"; break; fi
done
if [ -z "$bin" ]; then
  echo "openapi-typescript is not installed: run scripts/setup.sh (or 'npm ci' in sdk/typescript)" >&2
  exit 1
fi
"$bin" "${CAIRN_OPENAPI:-$here/../../docs/openapi.json}" --output "$out" --root-types --alphabetize >/dev/null
