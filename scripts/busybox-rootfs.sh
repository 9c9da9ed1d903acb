#!/usr/bin/env bash
# Writes a small busybox root file system, made from Debian's busybox-static
# package, as a deterministic tarball: same bytes on every run and machine
# with the same package (sorted entries, fixed times, owners and modes).
# Usage: scripts/busybox-rootfs.sh OUT.tar
set -euo pipefail
out=${1:?usage: $0 OUT.tar}
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "$busybox not found: apt-get install busybox-static" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,dev,sys,home,var}
install -m 0755 "$busybox" "$root/bin/busybox"
# BUSYBOX_LIST: a busybox this machine runs, to list the applets of a
# foreign one (scripts/busybox-arm64.sh).
for applet in $("${BUSYBOX_LIST:-$busybox}" --list-full); do
  [ "$applet" = bin/busybox ] && continue
  mkdir -p "$root/$(dirname "$applet")"
  ln -sfn /bin/busybox "$root/$applet"
done
# Debian's busybox leaves out the adduser applet; a small stand-in does
# `adduser [-D] [-u UID] NAME`, which the tests use.
cat >"$root/usr/sbin/adduser" <<'SH'
#!/bin/sh
uid=
while [ $# -gt 1 ]; do
  case "$1" in -D) ;; -u) shift; uid=$1 ;; *) echo "adduser: unsupported option $1" >&2; exit 1 ;; esac
  shift
done
name=$1
[ -n "$name" ] || { echo "usage: adduser [-D] [-u UID] NAME" >&2; exit 1; }
grep -q "^$name:" /etc/passwd && { echo "adduser: user '$name' in use" >&2; exit 1; }
[ -n "$uid" ] || uid=$(awk -F: 'BEGIN { m = 999 } $3 > m && $3 < 60000 { m = $3 } END { print m + 1 }' /etc/passwd)
echo "$name:x:$uid:$uid:Linux User,,,:/home/$name:/bin/sh" >>/etc/passwd
echo "$name:x:$uid:" >>/etc/group
mkdir -p "/home/$name" && chown "$uid:$uid" "/home/$name"
SH
chmod 0755 "$root/usr/sbin/adduser"
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' \
  >"$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$root/etc/group"
find "$root" -type d -exec chmod 0755 {} +
chmod 0644 "$root/etc/passwd" "$root/etc/group"
chmod 0700 "$root/root"
chmod 1777 "$root/tmp"

# A test fixture, not part of strata: GNU tar's flags make it reproducible.
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=ustar \
  -C "$root" -cf "$out" .
