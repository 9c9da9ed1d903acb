#!/usr/bin/env bash
# Case h: two independent CPU-bound stages (about 2 s of CPU each) and a
# final stage copying from both, built --no-cache with --jobs 1 and
# --jobs 2, runs alternating; prints the medians and their ratio (the
# target: --jobs 2 at most 0.65 of --jobs 1, on two free cores).
# BENCH_LOOPS sets the work per stage, BENCH_RUNS the runs per setting.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${BENCH_RUNS:-3} loops=${BENCH_LOOPS:-1700000}
strata=${STRATA:-$PWD/target/release/strata}
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
export STRATA_ROOT=$w/store
bash scripts/busybox-rootfs.sh "$w/bb.tar"
"$strata" import "$w/bb.tar" busybox >/dev/null
spin="i=0; while [ \$i -lt $loops ]; do i=\$((i + 1)); done"
printf 'FROM busybox AS a\nRUN %s; echo a > /a\nFROM busybox AS b\nRUN %s; echo b > /b\nFROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n' \
  "$spin" "$spin" >"$w/Dockerfile"
timed() {
  local t0; t0=$(date +%s.%N)
  "$strata" build --no-cache --jobs "$1" -q "$w" >/dev/null
  echo "$(date +%s.%N) - $t0" | bc
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
one= two=
for _ in $(seq "$runs"); do one+="$(timed 1) "; two+="$(timed 2) "; done
one=$(tr ' ' '\n' <<<"$one" | grep . | median); two=$(tr ' ' '\n' <<<"$two" | grep . | median)
printf '%-30s %10s %10s %8s\n' case jobs2_s jobs1_s ratio
printf '%-30s %10.2f %10.2f %8.2f\n' "h two stages, --jobs 2 vs 1" "$two" "$one" "$(echo "$two / $one" | bc -l)"
