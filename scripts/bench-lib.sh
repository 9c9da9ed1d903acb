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
# measure CMD...: one run of CMD (not a shell function: /usr/bin/time execs
# it); prints "seconds peak_RSS_MB" (RSS of the largest process in its
# tree); its output goes to $w/out, shown on failure.
measure() {
  /usr/bin/time -f '%e %M' -o "$w/time" "$@" >"$w/out" 2>&1 || {
    echo "bench: failed: $*" >&2; cat "$w/out" >&2; return 1; }
  awk '{ printf "%s %.0f\n", $1, $2 / 1024 }' "$w/time"
}
# median of the numbers on stdin, separated by spaces or newlines
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
