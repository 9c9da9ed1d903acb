#!/usr/bin/env bash
# Writes the arm64 busybox root file system the multi-platform tests use,
# offline from Debian's busybox-static for arm64 (downloaded from the
# machine's apt sources, unpacked with dpkg-deb, never installed), as
# scripts/busybox-rootfs.sh writes the host's. Cached: an existing OUT is
# kept. Run as root (it adds the arm64 architecture to dpkg if missing).
# Usage: scripts/busybox-arm64.sh OUT.tar
set -euo pipefail
out=${1:?usage: $0 OUT.tar}
[ -s "$out" ] && exit 0
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
  apt-get update -qq
fi
# _apt downloads into a directory it can write.
chmod 777 "$work"
(cd "$work" && apt-get download -qq busybox-static:arm64 2>/dev/null ||
  { apt-get update -qq && apt-get download -qq busybox-static:arm64; })
dpkg-deb -x "$work"/busybox-static_*_arm64.deb "$work/root"
mkdir -p "$(dirname "$out")"
# The host's busybox lists the applets (same package version, same list),
# so making the tarball needs no emulation.
BUSYBOX=$work/root/bin/busybox BUSYBOX_LIST=${BUSYBOX_LIST:-/bin/busybox} \
  bash "$here/busybox-rootfs.sh" "$out.tmp"
mv "$out.tmp" "$out"
