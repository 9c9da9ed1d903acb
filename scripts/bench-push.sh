#!/usr/bin/env bash
# The push path: first push of a fresh three-layer image (two random
# layers, one text layer; 300 MB at BENCH_SCALE=1) to a loopback registry,
# gzip and zstd, and a pull of it into an empty store; strata vs buildah.
# Each timed run starts from a freshly built image (untimed) so nothing is
# compressed yet; the random layers differ per build, so no blob is known
# to the registry. Prints median wall time, ratio, and peak RSS (MB, from
# /usr/bin/time -v) in scripts/bench.sh's row format.
# Case s (BENCH_BIG=0 skips it): peak RSS of strata's push, pull and save
# of an image with one 1 GB random layer (BENCH_SCALE-scaled); bound 100 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
source scripts/registry.sh
trap 'stop_registry; rm_work' EXIT
start_registry; r=$REGISTRY_ADDR/benchpush
mkdir -p "$w/ctx"
printf '%b' "FROM busybox\nRUN head -c $(n 100000000) /dev/urandom > /r1\n\
RUN head -c $(n 100000000) /dev/urandom > /r2\n\
RUN (head -c 16 /dev/urandom | od -An -tx1; seq 1 $(n 12800000)) > /text\n" >"$w/ctx/Dockerfile"
fresh() { # an empty store holding the base image and a new build of the image
  rm -rf "$w/store"; buildah rmi -a -f >/dev/null 2>&1 || true
  STRATA_ROOT=$w/store "$strata" load -i "$w/bb-save.tar" >/dev/null
  buildah pull -q "docker-archive:$w/bb-save.tar" >/dev/null
  STRATA_ROOT=$w/store "$strata" build -q -t img "$w/ctx" >/dev/null
  buildah bud --layers --isolation chroot -q -t img "$w/ctx" >/dev/null
}
s_push() { STRATA_ROOT=$w/store "$strata" push --compression-format "$1" img "$r/s$1:$2"; }
b_push() { buildah push -q --tls-verify=false --compression-format "$1" img "$r/b$1:$2"; }
s_pull() { rm -rf "$w/store"; STRATA_ROOT=$w/store "$strata" pull "$r/sgzip:$2"; }
b_pull() { buildah rmi -a -f >/dev/null 2>&1 || true; buildah pull -q --tls-verify=false "$r/sgzip:$2"; }
export -f s_push b_push s_pull b_pull; export w r strata
declare -A T M
timed() { # timed KEY FUNCTION ARGS...: one run; wall seconds and peak RSS (of the
  # process tree's largest process) appended to KEY
  local key=$1 t0; shift; t0=$(date +%s.%N)
  /usr/bin/time -v -o "$w/rss" bash -c '"$@"' _ "$@" >"$w/out" 2>&1 || { echo "bench: $* failed" >&2; cat "$w/out" >&2; exit 1; }
  T[$key]+="$(echo "$(date +%s.%N) - $t0" | bc) "
  M[$key]+="$(awk '/Maximum resident/ { printf "%d", $NF / 1024 }' "$w/rss") "
}
for i in $(seq "$runs"); do
  # A fresh build per format: buildah would otherwise reuse its gzip blobs
  # for a zstd push (1.28 has no --force-compression).
  for c in gzip zstd; do fresh; timed "s$c" s_push "$c" "$i"; timed "b$c" b_push "$c" "$i"; done
  timed spull s_pull gzip "$i"; timed bpull b_pull gzip "$i"
done
row() { # row LABEL KEY
  local s b; s=$(median <<<"${T[s$2]}"); b=$(median <<<"${T[b$2]}")
  printf '%-30s %10.2f %10.2f %8.2f\n' "$1" "$s" "$b" "$(echo "$s / $b" | bc -l)"
  printf '%-30s %10s %10s\n' "  peak RSS MB" "$(median <<<"${M[s$2]}")" "$(median <<<"${M[b$2]}")"
}
row "p first push, gzip" gzip
row "q first push, zstd" zstd
row "r pull into an empty store" pull
[ "${BENCH_BIG:-1}" = 0 ] && exit 0
mkdir -p "$w/big"
printf 'FROM busybox\nRUN head -c %s /dev/urandom > /big\n' "$(n 1000000000)" >"$w/big/Dockerfile"
rm -rf "$w/store"; STRATA_ROOT=$w/store "$strata" load -i "$w/bb-save.tar" >/dev/null
STRATA_ROOT=$w/store "$strata" build -q -t big "$w/big" >/dev/null
s_bigpush() { STRATA_ROOT=$w/store "$strata" push big "$r/big:1"; }
s_bigsave() { STRATA_ROOT=$w/store "$strata" save -o "$w/big.tar" big; }
s_bigpull() { rm -rf "$w/pstore"; STRATA_ROOT=$w/pstore "$strata" pull "$r/big:1"; }
export -f s_bigpush s_bigsave s_bigpull
for k in bigpush bigsave bigpull; do timed "$k" "s_$k"; done
rm -f "$w/big.tar"
printf '%-30s %10s %10s %10s\n' "s 1 GB layer, peak RSS MB" \
  "push $(median <<<"${M[bigpush]}")" "pull $(median <<<"${M[bigpull]}")" "save $(median <<<"${M[bigsave]}")"
printf '%-30s %10.2f %10.2f %10.2f\n' "  seconds" "$(median <<<"${T[bigpush]}")" "$(median <<<"${T[bigpull]}")" "$(median <<<"${T[bigsave]}")"
