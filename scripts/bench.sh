#!/usr/bin/env bash
# strata vs rootless buildah (--layers, --isolation chroot), same machine,
# same local bases (busybox; Debian from scripts/debian-base.sh), runs
# alternating; prints medians, ratios and peak RSS (/usr/bin/time: the
# largest process of each tool's tree). Run as an unprivileged user with
# subuid ranges. BENCH_SCALE=0.1 for a quick run (sizes scale, file counts
# too); BENCH_RUNS runs per case. Then runs the case scripts
# (bench-cache/jobs/copy/push.sh; BENCH_CACHE=0, BENCH_JOBS=0, BENCH_COPY=0,
# BENCH_PUSH=0 skip one). Every script prints rows as:
# printf '%-30s %10.2f %10.2f %8.2f\n' "x case" strata_s other_s ratio
# with indented sub-rows ("  peak RSS MB", "  floor ...") under a case.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
export STRATA_ROOT=$w/store
tools="s b" # with DOCKER_HOST set (scripts/bench-root.sh), BuildKit too
[ -z "${DOCKER_HOST:-}" ] || tools+=" k"
STRATA_ROOT=$w/seed "$strata" import "$(bash scripts/debian-base.sh)" debian >/dev/null
STRATA_ROOT=$w/seed "$strata" save -o "$w/deb-save.tar" debian
for t in bb deb; do # each tool gets both bases from strata's docker-archive
  "$strata" load -i "$w/$t-save.tar" >/dev/null
  buildah pull -q "docker-archive:$w/$t-save.tar" >/dev/null
  [ -z "${DOCKER_HOST:-}" ] || /usr/bin/docker load -q -i "$w/$t-save.tar" >/dev/null
done

mk() { mkdir -p "$w/$1"; printf '%b' "$2" >"$w/$1/Dockerfile"; }
mk a "FROM busybox\nRUN head -c $(n 200000000) /dev/urandom > /data\n"
mk b "FROM busybox\nCOPY . /ctx/\n"
mkdir -p "$w/b/files"
for i in $(seq "$(n 20000)"); do head -c 25000 /dev/urandom >"$w/b/files/$i"; done
f="FROM busybox\n"
for i in $(seq 10); do f+="RUN echo $i > /r$i\nENV V$i=$i\nCOPY Dockerfile /c$i\n"; done
mk f "$f"
# k-m: a 10-step app build on Debian: an app dir of small sources and one
# larger asset, files made and parts of the base deleted by RUN.
mk k "FROM debian\nENV APP_HOME=/srv/app LANG=C.UTF-8\nWORKDIR /srv/app\n\
RUN mkdir /var/data && for i in \$(seq $(n 5000)); do echo \"row \$i\" > /var/data/f\$i; done\n\
RUN rm -rf /usr/share/doc /usr/share/man /usr/share/info /usr/share/locale\n\
COPY app/ ./\nRUN find . -type f -exec sha256sum {} + > /srv/app.sums\n\
ENV PATH=/srv/app/bin:\$PATH\nRUN useradd -r -d /srv/app app && chown -R app /var/data\n\
CMD [\"cat\", \"/srv/app.sums\"]\n"
mkdir -p "$w/k/app/src" "$w/k/app/bin"
for i in $(seq "$(n 4000)"); do head -c 3000 /dev/urandom | base64 >"$w/k/app/src/$i.txt"; done
head -c "$(n 50000000)" /dev/urandom >"$w/k/app/bin/asset"
# n: memory, strata alone: a COPY of a 1 GB context (4,000 files of 250 kB)
mk n "FROM busybox\nCOPY . /ctx/\n"
for i in $(seq "$(n 4000)"); do head -c 250000 /dev/urandom >"$w/n/$i"; done

cmd_s=("$strata" build)
cmd_b=(buildah bud --layers --isolation chroot)
cmd_k=(env DOCKER_BUILDKIT=1 /usr/bin/docker build --network host)
declare -A T M; cases=()
case_run() { # name, setup (run before each timing), build args...; $only limits the tools
  local name=$1 setup=$2 tool r t m; shift 2; cases+=("$name")
  for _ in $(seq "$runs"); do
    for tool in ${only:-$tools}; do
      local -n cmd=cmd_$tool; eval "$setup"
      # one retry: buildah's chroot RUN fails now and then (memfd sealing)
      r=$(measure "${cmd[@]}" "$@" 2>/dev/null || measure "${cmd[@]}" "$@")
      read -r t m <<<"$r"; T[$name.$tool]+="$t "; M[$name.$tool]+="$m "
      unset -n cmd
    done
  done
}
runs=1 case_run warm : -t warm-b "$w/b"
case_run "a cold RUN $(n 200)MB" : --no-cache -t a "$w/a"
case_run "b COPY $(n 20000) files" : --no-cache -t b "$w/b"
case_run "c cached rebuild of b" : -t b "$w/b"
case_run "d b after one file changes" 'echo x >>"$w/b/files/1"' -t b "$w/b"
case_run "e --no-cache rebuild of b" : --no-cache -t b "$w/b"
case_run "f 30 small steps" : --no-cache -t f "$w/f"
case_run "k debian 10 steps, cold" : --no-cache -t k "$w/k"
case_run "l k cached" : -t k "$w/k"
case_run "m k after one file changes" 'echo x >>"$w/k/app/src/1.txt"' -t k "$w/k"
only=s case_run "n COPY $(n 1000)MB, peak RSS" : --no-cache -t n "$w/n"
printf '%-30s %10s %10s %8s\n' case strata_s buildah_s ratio
for k in "${cases[@]}"; do
  [ "$k" != warm ] || continue
  s=$(median <<<"${T[$k.s]}")
  if [ -z "${T[$k.b]:-}" ]; then printf '%-30s %10.2f\n' "$k" "$s"; else
    b=$(median <<<"${T[$k.b]}")
    printf '%-30s %10.2f %10.2f %8.2f\n' "$k" "$s" "$b" "$(echo "$s / $b" | bc -l)"
  fi
  [ -z "${T[$k.k]:-}" ] || { b=$(median <<<"${T[$k.k]}")
    printf '%-30s %10s %10.2f %8.2f\n' "  BuildKit" "" "$b" "$(echo "$s / $b" | bc -l)"; }
  # BuildKit's memory is its daemon's, not the docker client's: not measured
  printf '%-30s %10s %10s\n' "  peak RSS MB" "$(median <<<"${M[$k.s]}")" "$(median <<<"${M[$k.b]:-}")"
done
# g: the CI case (a cold runner with a remote cache), in a script of its own.
[ "${BENCH_CACHE:-1}" = 0 ] || STRATA=$strata bash scripts/bench-cache.sh
# h: independent stages at once (--jobs), strata alone.
[ "${BENCH_JOBS:-1}" = 0 ] || STRATA=$strata bash scripts/bench-jobs.sh
# i, j: cold COPY against the floor; p, q, r: first push and pull.
[ "${BENCH_COPY:-1}" = 0 ] || STRATA=$strata bash scripts/bench-copy.sh
[ "${BENCH_PUSH:-1}" = 0 ] || STRATA=$strata bash scripts/bench-push.sh
