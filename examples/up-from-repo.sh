#!/usr/bin/env bash
# Start a sandbox with a repository checked out (cairnd clones it: the sandbox needs no
# network or git), keep a save point of the fresh checkout, let an agent change it, and go
# back to the save point when the change is bad.
# Usage: examples/up-from-repo.sh REPO_URL [BRANCH] [RUNTIME] [IMAGE]
# (a private repository: CAIRN_REPO_TOKEN=… in the environment)
set -euo pipefail
URL=${1:?usage: up-from-repo.sh REPO_URL [BRANCH] [RUNTIME] [IMAGE]}
BRANCH=${2:-}; RT=${3:-gvisor}; IMAGE=${4:-base}
CAIRN=${CAIRN:-cairn}

ID=$($CAIRN up --image "$IMAGE" --runtime "$RT" --repo "$URL" ${BRANCH:+--branch "$BRANCH"})
echo "sandbox $ID has the checkout at /workspace:"
$CAIRN exec "$ID" 'ls /workspace'
SAVE=$($CAIRN snapshot create "$ID" --name fresh-checkout)

# The agent's risky change, then the check that fails.
$CAIRN exec "$ID" 'cd /workspace && rm -f README && echo broken > BROKEN'
if ! $CAIRN exec "$ID" 'test -f /workspace/README'; then
  echo "the change broke the checkout: back to $SAVE"
  $CAIRN snapshot restore "$SAVE" >/dev/null
fi
$CAIRN exec "$ID" 'test -f /workspace/README && ! test -e /workspace/BROKEN' && echo "the checkout is whole again"
$CAIRN destroy --force "$ID" >/dev/null
