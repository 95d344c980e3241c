#!/usr/bin/env bash
# Share a snapshot with a teammate: export it on your Cairn, import it on theirs, and they
# fork it and see your files. Then the same through a signed URL that plain curl downloads
# (when your cairnd has a TCP listener, `cairnd --listen ADDR`).
# Usage: TEAMMATE_HOME=/var/lib/cairn-bob examples/share-with-a-teammate.sh [RUNTIME] [IMAGE]
# (TEAMMATE_HOME is the teammate's data directory: their cairnd; on another machine, copy
# the archive there instead.)
set -euo pipefail
RT=${1:-gvisor}; IMAGE=${2:-base}
CAIRN=${CAIRN:-cairn}
: "${TEAMMATE_HOME:?set TEAMMATE_HOME to the data directory of the teammate cairnd}"
mine() { $CAIRN "$@"; }
theirs() { CAIRN_HOME=$TEAMMATE_HOME $CAIRN "$@"; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

ID=$(mine up --image "$IMAGE" --runtime "$RT")
mine exec "$ID" 'mkdir -p /root/app && echo "print(42)" > /root/app/main.py && echo ok > /root/app/tests-pass'
SNAP=$(mine snapshot create "$ID" --name ready-for-review)
mine snapshot export "$SNAP" -o "$work/review.tar.gz"
echo "exported $SNAP to review.tar.gz ($(du -h "$work/review.tar.gz" | cut -f1))"

check() { # FORK: the teammate's sandbox sees the files
  local got; got=$(theirs exec "$1" 'cat /root/app/main.py /root/app/tests-pass')
  if [ "$got" = $'print(42)\nok' ]; then echo "teammate's $1 sees the same files"; else echo "MISMATCH in $1: $got" >&2; exit 1; fi
}
IMPORTED=$(theirs snapshot import "$work/review.tar.gz")
# (Read whole first: `| grep -q` stops reading at the match, and with pipefail the writer's
# broken pipe would fail the script.)
grep -q "imported from $SNAP" <<<"$(theirs snapshot inspect "$IMPORTED")"
FORK=$(theirs up --from-snapshot "$IMPORTED")
check "$FORK"

# The URL variant: no token needed to download, valid for 1 hour at most.
if URL=$(mine snapshot url "$SNAP" --expires 10m 2>/dev/null); then
  curl -fsS -o "$work/via-url.tar.zst" "$URL"
  IMPORTED2=$(theirs snapshot import "$work/via-url.tar.zst" --name via-url)
  FORK2=$(theirs up --from-snapshot "$IMPORTED2")
  check "$FORK2"
  theirs destroy --force "$FORK2" >/dev/null
else
  echo "your cairnd has no TCP listener (cairnd --listen ADDR): no URL variant"
fi
theirs destroy --force "$FORK" >/dev/null
mine destroy --force --with-snapshots "$ID" >/dev/null
