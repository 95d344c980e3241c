#!/usr/bin/env bash
# Installs everything Cairn needs on a fresh Debian 12 machine (run as root):
# gVisor's runsc from bookworm-backports, runc, btrfs-progs, busybox-static
# (for the base image), debootstrap, curl, jq, python3 (scripts/unused-deps.py), iproute2 and nftables (nat
# networking), iputils-ping (the tests ping without privileges from a sandbox's
# namespace), docker-registry, umoci and skopeo (image pulls' tests, bench/images.sh); CRIU >= 4.1 for stateful snapshots of runc sandboxes
# (scripts/install-criu.sh); the e2b Python SDK (PyPI, in /opt/cairn-venv) and JS SDK (npm,
# in /opt/cairn-e2b-js) for the E2B API's tests; moto's S3 server (PyPI, in /opt/cairn-moto)
# for the remote tier's tests; Cairn's Python SDK's dependencies and generator (PyPI, in
# /opt/cairn-venv) and TypeScript SDK's (npm, in /opt/cairn-sdk-ts); then builds Cairn.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh must run as root (it installs packages): sudo scripts/setup.sh" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/cairn-backports.list
fi
need_update=1
install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$need_update" = 1 ]; then apt-get update -qq; need_update=0; fi
  apt-get install -y -qq "${missing[@]}" >/dev/null
}
install runc btrfs-progs busybox-static debootstrap curl jq bc iproute2 util-linux nftables iputils-ping python3 git
# Image pulls' tests and bench (issue 21): a local registry, and the tools that build and push
# images to it. Debian's registry service listens on every interface by default: the tests
# start their own on 127.0.0.1 with a throw-away config, so the packaged one stays off.
install docker-registry umoci skopeo
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now docker-registry >/dev/null 2>&1 || true; fi
if ! dpkg -s runsc >/dev/null 2>&1 || ! runsc --version 2>/dev/null | grep -q 2024; then
  if [ "$need_update" = 1 ]; then apt-get update -qq; need_update=0; fi
  apt-get install -y -qq -t bookworm-backports runsc >/dev/null
fi
"$(dirname "$0")/install-criu.sh"
# The remote tier's tests run against a real S3-compatible server: moto's, from PyPI,
# pinned with all it pulls in (scripts/moto-requirements.txt), in a venv of its own (apart
# from the E2B SDK's, whose pins it must not move).
moto_version() { "$1" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null; }
have_moto() {
  command -v moto_server >/dev/null 2>&1 || return 1
  for py in /opt/cairn-moto/bin/python3 python3; do
    [ "$(moto_version "$py")" = 5.2.1 ] && return 0
  done
  return 1
}
if ! have_moto; then
  install python3-venv
  [ -x /opt/cairn-moto/bin/pip ] || python3 -m venv /opt/cairn-moto
  /opt/cairn-moto/bin/pip install -q --disable-pip-version-check -r "$(dirname "$0")/moto-requirements.txt"
  ln -sf /opt/cairn-moto/bin/moto_server /usr/local/bin/moto_server
fi
modprobe loop 2>/dev/null || true
modprobe btrfs 2>/dev/null || true
# The E2B tests drive cairnd with the unmodified e2b Python SDK from PyPI, pinned with all it
# pulls in (scripts/e2b-requirements.txt), in a venv.
if ! /opt/cairn-venv/bin/python -c 'import importlib.metadata as m; assert m.version("e2b") == "2.63.0"' 2>/dev/null; then
  install python3-venv
  [ -x /opt/cairn-venv/bin/pip ] || python3 -m venv /opt/cairn-venv
  /opt/cairn-venv/bin/pip install -q --disable-pip-version-check -r "$(dirname "$0")/e2b-requirements.txt"
fi
# Cairn's own Python SDK (sdk/python): its dependencies, its generator (openapi-python-client,
# ruff) and the API document's validator, pinned (scripts/sdk-requirements.txt), in the same venv.
if ! /opt/cairn-venv/bin/python -c 'import importlib.metadata as m; assert m.version("openapi-python-client") == "0.29.1" and m.version("openapi-spec-validator") == "0.9.0"' 2>/dev/null; then
  install python3-venv
  [ -x /opt/cairn-venv/bin/pip ] || python3 -m venv /opt/cairn-venv
  /opt/cairn-venv/bin/pip install -q --disable-pip-version-check -r "$(dirname "$0")/sdk-requirements.txt"
fi
# ... and with the unmodified e2b JS SDK from npm, pinned by its lock file, in /opt/cairn-e2b-js.
js_lock="$(dirname "$0")/../crates/cairn/tests/e2b/js/package-lock.json"
if ! cmp -s "$js_lock" /opt/cairn-e2b-js/package-lock.json || [ ! -d /opt/cairn-e2b-js/node_modules/e2b ]; then
  command -v npm >/dev/null 2>&1 || install nodejs npm
  mkdir -p /opt/cairn-e2b-js
  cp "$js_lock" "$(dirname "$js_lock")/package.json" /opt/cairn-e2b-js/
  (cd /opt/cairn-e2b-js && npm ci --no-audit --no-fund --silent >/dev/null)
fi

# Cairn's own TypeScript SDK (sdk/typescript): openapi-fetch and undici at run time, its
# generator (openapi-typescript with TypeScript 5) and tsc, pinned by its lock file, in
# /opt/cairn-sdk-ts (crates/cairn/tests/sdk_ts.rs runs the SDK's tests with them).
ts_lock="$(dirname "$0")/../sdk/typescript/package-lock.json"
if ! cmp -s "$ts_lock" /opt/cairn-sdk-ts/package-lock.json || [ ! -x /opt/cairn-sdk-ts/node_modules/.bin/tsc ]; then
  command -v npm >/dev/null 2>&1 || install nodejs npm
  mkdir -p /opt/cairn-sdk-ts
  cp "$ts_lock" "$(dirname "$ts_lock")/package.json" /opt/cairn-sdk-ts/
  (cd /opt/cairn-sdk-ts && npm ci --no-audit --no-fund --silent >/dev/null)
fi
# The SDK installed from its folder, as a user does (sdk_ts.rs, npm install --offline): npm
# reads its dependencies' registry documents, which npm ci (tarballs, by the lock file) leaves
# out of the cache with some npm versions (npm 11 asks for the full documents). One such
# install here fills the cache; it downloads nothing when the cache has it all.
ts_warm=$(mktemp -d)
mkdir -p "$ts_warm/app/sdk/typescript"
cp "$ts_lock" "$(dirname "$ts_lock")/package.json" "$ts_warm/app/sdk/typescript/"
echo '{"name": "app", "private": true, "type": "module"}' > "$ts_warm/app/package.json"
(cd "$ts_warm/app" && npm install --prefer-offline --no-audit --no-fund --silent ./sdk/typescript >/dev/null)
rm -rf "$ts_warm"

# The web console's browser tests (issue 20, console): Debian's chromium driven by playwright
# from PyPI, pinned (scripts/console-requirements.txt), in /opt/cairn-venv.
install chromium
if ! /opt/cairn-venv/bin/python -c 'import importlib.metadata as m; assert m.version("playwright") == "1.65.2"' 2>/dev/null; then
  install python3-venv
  [ -x /opt/cairn-venv/bin/pip ] || python3 -m venv /opt/cairn-venv
  /opt/cairn-venv/bin/pip install -q --disable-pip-version-check -r "$(dirname "$0")/console-requirements.txt"
fi

cd "$(dirname "$0")/.."
if [ -z "${CAIRN_SKIP_BUILD:-}" ]; then
  cargo build --release --workspace --bins
  scripts/build-agent.sh --release >/dev/null
fi
echo "setup done: $(runsc --version | head -1); $(runc --version | head -1); criu $(criu --version | awk '/^Version:/ {print $2}'); $(mkfs.btrfs --version)"
