#!/usr/bin/env bash
# Installs CRIU >= 4.1, which stateful snapshots of runc sandboxes need, on Debian 12
# (run as root). Debian 12's criu 3.17 fails on kernels >= 6.13 ("vdso: Unexpected rt
# vDSO area bounds"), so this builds the upstream tarball of Debian sid's criu source
# package against bookworm's libraries, wraps the criu binary in a .deb (version
# <upstream>-0cairn1, replacing bookworm's criu package), installs it with apt so dpkg
# knows it, and holds it so that no later apt-get downgrades it.
# Only a deb-src line for sid is added: nothing binary comes from sid.
# Does nothing when `criu --version` already says >= 4.1. Takes ~1 min otherwise.
set -euo pipefail

MIN=4.1
SRC_LIST=/etc/apt/sources.list.d/cairn-sid-src.sources
BUILD_DEPS=(build-essential pkgconf dpkg-dev xz-utils python3 protobuf-compiler libprotobuf-dev
  protobuf-c-compiler libprotobuf-c-dev libnl-3-dev libnet1-dev libcap-dev libbsd-dev
  libnftables-dev libgnutls28-dev uuid-dev)

criu_version() { criu --version 2>/dev/null | awk '/^Version:/ {print $2; exit}'; }

have=$(criu_version || true)
if [ -n "$have" ] && dpkg --compare-versions "$have" ge "$MIN"; then
  echo "criu $have already installed ($(command -v criu))"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-criu.sh must run as root (it installs packages): sudo scripts/install-criu.sh" >&2
  exit 1
fi

work=$(mktemp -d /tmp/cairn-criu.XXXXXX)
log=$work/build.log
step=starting
on_error() {
  echo "install-criu.sh: failed while $step; the last lines of $log:" >&2
  tail -n 25 "$log" >&2 || true
  echo "(the work directory $work is kept for inspection)" >&2
}
trap on_error ERR

export DEBIAN_FRONTEND=noninteractive
step="adding a deb-src line for Debian sid ($SRC_LIST) and running apt-get update"
if ! grep -rqsE --exclude="$(basename "$SRC_LIST")" '^[^#]*deb-src.*[[:space:]](sid|unstable)[[:space:]]' \
  /etc/apt/sources.list /etc/apt/sources.list.d/; then
  cat > "$SRC_LIST" <<'EOF'
# Added by Cairn's scripts/install-criu.sh: source packages only (criu >= 4.1 is built from them).
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi
apt-get update -qq >>"$log" 2>&1

step="finding criu's upstream tarball in sid's source index"
# One line per file: 'URI' NAME SIZE SHA256:HASH. The index is signed, so the hash is trusted.
uris=$(apt-get source --print-uris -qq criu 2>>"$log" || true)
line=$(grep -E "criu_[0-9.]+\.orig\.tar\.[a-z0-9]+ " <<<"$uris" | tr -d "'" || true)
read -r uri name _ hash <<<"$line" || true
version=${name:-missing}
version=${version#criu_}
version=${version%.orig.tar.*}
if [ -z "$line" ] || ! dpkg --compare-versions "$version" ge "$MIN"; then
  echo "install-criu.sh: no criu source >= $MIN in apt's source index (found: $version); is $SRC_LIST there and reachable? see $log" >&2
  exit 1
fi
echo "installing criu $version (replacing ${have:-no criu}): building sid's source against bookworm, ~1 min; log in $log"

step="installing the build dependencies from bookworm"
apt-get install -y -qq --no-install-recommends "${BUILD_DEPS[@]}" >>"$log" 2>&1

step="downloading $uri"
/usr/lib/apt/apt-helper download-file "$uri" "$work/$name" "$hash" >>"$log" 2>&1
tar -C "$work" -xf "$work/$name"
src=$work/criu-$version

step="building criu $version (make criu)"
make -C "$src" -j"$(nproc)" criu >>"$log" 2>&1
"$src/criu/criu" --version >>"$log" 2>&1

step="packaging criu $version as a .deb"
pkg=$work/pkg
arch=$(dpkg --print-architecture)
deb_version=$version-0cairn1
install -D -m 0755 -s "$src/criu/criu" "$pkg/usr/sbin/criu"
install -D -m 0644 "$src/COPYING" "$pkg/usr/share/doc/criu/copyright"
mkdir -p "$work/shlibs/debian" "$pkg/DEBIAN"
printf 'Source: criu\n\nPackage: criu\nArchitecture: any\n' > "$work/shlibs/debian/control"
depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O "$pkg/usr/sbin/criu" 2>>"$log" | sed -n 's/^shlibs:Depends=//p')
cat > "$pkg/DEBIAN/control" <<EOF
Package: criu
Version: $deb_version
Architecture: $arch
Maintainer: Cairn <cairn@localhost>
Depends: $depends
Section: admin
Priority: optional
Homepage: https://criu.org/
Description: checkpoint and restore in userspace (criu binary only)
 CRIU $version built from Debian sid's source package against Debian 12's
 libraries by Cairn's scripts/install-criu.sh, for runc checkpoint/restore on
 kernels where Debian 12's criu 3.17 fails.
EOF
dpkg-deb --root-owner-group --build "$pkg" "$work/criu_${deb_version}_$arch.deb" >>"$log" 2>&1

step="installing criu_${deb_version}_$arch.deb"
apt-get install -y -qq "$work/criu_${deb_version}_$arch.deb" >>"$log" 2>&1
apt-mark hold criu >>"$log" 2>&1

step="checking the installed criu"
now=$(criu_version)
if [ "$(command -v criu)" != /usr/sbin/criu ] || ! dpkg --compare-versions "${now:-0}" ge "$MIN"; then
  echo "install-criu.sh: after installing, 'criu' on PATH is $(command -v criu || echo missing) version ${now:-unknown}, expected /usr/sbin/criu >= $MIN" >&2
  exit 1
fi
check=$(criu check 2>&1 | tail -n 1)
trap - ERR
rm -rf "$work"
echo "criu $now installed at /usr/sbin/criu as package criu $deb_version (held); criu check: $check"
