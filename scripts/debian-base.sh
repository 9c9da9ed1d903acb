#!/usr/bin/env bash
# Makes the local Debian base image the in-container tests and
# scripts/strata-image.sh build on: a debootstrap of bookworm (minbase, plus
# procps), from Debian's mirror, as a rootfs tarball. Made once per machine
# and cached (nothing comes from Docker Hub); prints the tarball's path.
# Usage: scripts/debian-base.sh   (STRATA_DEBIAN_BASE sets the cache path)
set -euo pipefail
out=${STRATA_DEBIAN_BASE:-/var/cache/strata/debian-bookworm.tar}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ -s "$out" ]; then echo "$out"; exit 0; fi
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
command -v debootstrap >/dev/null || { echo "debootstrap not found: apt-get install debootstrap" >&2; exit 1; }
$SUDO mkdir -p "$(dirname "$out")"
root=$(mktemp -d /tmp/strata-debootstrap.XXXXXX)
trap '$SUDO rm -rf "$root"' EXIT
echo "debian-base: debootstrap bookworm into $root (once per machine)" >&2
$SUDO debootstrap --variant=minbase --include=procps bookworm "$root" "$mirror" >&2
# As Docker's debian images: no package cache, no lists, no device nodes
# (a container runtime makes /dev).
$SUDO rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/dev/*
$SUDO tar --numeric-owner --xattrs -C "$root" -cf "$out.tmp" .
$SUDO mv "$out.tmp" "$out"
echo "$out"
