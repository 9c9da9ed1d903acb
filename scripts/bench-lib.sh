# Sourced by the bench case scripts after `cd` to the project root: the
# settings (BENCH_SCALE, BENCH_RUNS, STRATA), a work dir $w removed at exit
# (rm_work; a script that adds to the trap calls it too), n() to scale a
# size, and the local busybox base: $w/bb.tar and, saved by strata,
# $w/bb-save.tar for buildah. buildah gets a private store in $w (a
# wrapper first on PATH, so /usr/bin/time finds it too), so a bench never
# lists, reuses or `rmi -a`s the user's own buildah images (the interop
# tests' busybox, when a test run shares the machine). The private store's
# files belong to subordinate ids, so rm_work removes $w in buildah's
# namespace.
scale=${BENCH_SCALE:-1} runs=${BENCH_RUNS:-3}
strata=${STRATA:-$PWD/target/release/strata}
w=$(mktemp -d)
rm_work() { buildah unshare rm -rf "$w" 2>/dev/null || rm -rf "$w"; }
trap rm_work EXIT
mkdir -p "$w/bin"
printf '#!/bin/sh\nexec %s --root "%s" --runroot "%s" "$@"\n' \
  "$(command -v buildah)" "$w/buildah" "$w/buildah-run" >"$w/bin/buildah"
chmod +x "$w/bin/buildah"
export PATH="$w/bin:$PATH"
n() { awk -v x="$1" -v s="$scale" 'BEGIN { printf "%d", x * s }'; }
bash scripts/busybox-rootfs.sh "$w/bb.tar"
STRATA_ROOT=$w/seed "$strata" import "$w/bb.tar" busybox >/dev/null
STRATA_ROOT=$w/seed "$strata" save -o "$w/bb-save.tar" busybox
