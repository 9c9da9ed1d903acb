#!/usr/bin/env bash
# strata vs rootless buildah (--layers, --isolation chroot), same machine,
# same local busybox base, runs alternating; prints medians and ratios.
# Run as an unprivileged user with subuid ranges. BENCH_SCALE=0.1 for a
# quick run (sizes scale, file counts too); BENCH_RUNS runs per case.
# Then runs the case scripts (bench-cache/jobs/copy/push.sh; BENCH_CACHE=0,
# BENCH_JOBS=0, BENCH_COPY=0, BENCH_PUSH=0 skip one). Every script prints
# rows as: printf '%-30s %10.2f %10.2f %8.2f\n' "x case" strata_s other_s ratio
# with indented sub-rows ("  peak RSS MB", "  floor ...") under a case.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
export STRATA_ROOT=$w/store
"$strata" import "$w/bb.tar" busybox >/dev/null
buildah pull -q "docker-archive:$w/bb-save.tar" >/dev/null
tools="s b" # with DOCKER_HOST set (scripts/bench-root.sh), BuildKit too
[ -z "${DOCKER_HOST:-}" ] || { tools+=" k"; /usr/bin/docker load -q -i "$w/bb-save.tar" >/dev/null; }

mk() { mkdir -p "$w/$1"; printf '%b' "$2" >"$w/$1/Dockerfile"; }
mk a "FROM busybox\nRUN head -c $(n 200000000) /dev/urandom > /data\n"
mk b "FROM busybox\nCOPY . /ctx/\n"
mkdir -p "$w/b/files"
for i in $(seq "$(n 20000)"); do head -c 25000 /dev/urandom >"$w/b/files/$i"; done
f="FROM busybox\n"
for i in $(seq 10); do f+="RUN echo $i > /r$i\nENV V$i=$i\nCOPY Dockerfile /c$i\n"; done
mk f "$f"

time_of() { # one retry: buildah's chroot RUN fails now and then (memfd sealing)
  local t0
  for _ in 1 2; do
    t0=$(date +%s.%N)
    "$@" >"$w/out" 2>&1 && { echo "$(date +%s.%N) - $t0" | bc; return; }
  done
  echo "bench: failed: $*" >&2; cat "$w/out" >&2; exit 1
}
s_build() { "$strata" build "$@"; }
b_build() { buildah bud --layers --isolation chroot "$@"; }
k_build() { DOCKER_BUILDKIT=1 /usr/bin/docker build --network host "$@"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
declare -A T
case_run() { # name, setup (run before each timing), build args...
  local name=$1 setup=$2; shift 2
  for _ in $(seq "$runs"); do
    for tool in $tools; do eval "$setup"; T[$name.$tool]+="$(time_of "${tool}_build" "$@") "; done
  done
}
for tool in $tools; do "${tool}_build" -t warm-b "$w/b" >/dev/null 2>&1; done
case_run "a cold RUN $(n 200)MB" : --no-cache -t a "$w/a"
case_run "b COPY $(n 20000) files" : --no-cache -t b "$w/b"
case_run "c cached rebuild of b" : -t b "$w/b"
case_run "d b after one file changes" 'echo x >>"$w/b/files/1"' -t b "$w/b"
case_run "e --no-cache rebuild of b" : --no-cache -t b "$w/b"
case_run "f 30 small steps" : --no-cache -t f "$w/f"
printf '%-30s %10s %10s %8s\n' case strata_s buildah_s ratio
for k in "a cold RUN $(n 200)MB" "b COPY $(n 20000) files" "c cached rebuild of b" "d b after one file changes" "e --no-cache rebuild of b" "f 30 small steps"; do
  s=$(tr ' ' '\n' <<<"${T[$k.s]}" | grep . | median); b=$(tr ' ' '\n' <<<"${T[$k.b]}" | grep . | median)
  printf '%-30s %10.2f %10.2f %8.2f\n' "$k" "$s" "$b" "$(echo "$s / $b" | bc -l)"
  [ -z "${T[$k.k]:-}" ] || { b=$(tr ' ' '\n' <<<"${T[$k.k]}" | grep . | median)
    printf '%-30s %10s %10.2f %8.2f\n' "  BuildKit" "" "$b" "$(echo "$s / $b" | bc -l)"; }
done
# g: the CI case (a cold runner with a remote cache), in a script of its own.
[ "${BENCH_CACHE:-1}" = 0 ] || STRATA=$strata bash scripts/bench-cache.sh
# h: independent stages at once (--jobs), strata alone.
[ "${BENCH_JOBS:-1}" = 0 ] || STRATA=$strata bash scripts/bench-jobs.sh
# i, j: cold COPY against the floor; p, q, r: first push and pull.
[ "${BENCH_COPY:-1}" = 0 ] || STRATA=$strata bash scripts/bench-copy.sh
[ "${BENCH_PUSH:-1}" = 0 ] || STRATA=$strata bash scripts/bench-push.sh
