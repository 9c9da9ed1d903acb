#!/usr/bin/env bash
# The CI case of scripts/bench.sh: a cold runner (empty store, the base
# image loaded) builds with a remote cache another runner filled, then
# pushes; strata --cache-from/--cache-to (mode=max) vs buildah --layers
# --cache-from/--cache-to, same loopback registry. Prints median wall time,
# the ratio, and the blob bytes each downloaded (from the registry's log).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
source scripts/registry.sh
trap 'stop_registry; rm_work' EXIT
start_registry; r=$REGISTRY_ADDR/bench
mkdir -p "$w/ctx/src"
for i in $(seq "$(n 2000)"); do head -c 10000 /dev/urandom >"$w/ctx/src/$i"; done
printf '%b' "FROM busybox\nRUN head -c $(n 100000000) /dev/urandom > /deps\n\
COPY src /src\nRUN ls /src | wc -l > /count\nENV DONE=1\nRUN cat /count\n" >"$w/ctx/Dockerfile"
fresh() { # a new runner: nothing but the base image
  rm -rf "$w/store"; buildah rmi -a -f >/dev/null 2>&1 || true
  STRATA_ROOT=$w/store "$strata" load -i "$w/bb-save.tar" >/dev/null
  buildah pull -q "docker-archive:$w/bb-save.tar" >/dev/null
}
s_ci() {
  STRATA_ROOT=$w/store "$strata" build --cache-from "$r/scache" \
    --cache-to "type=registry,ref=$r/scache,mode=max" -t "$r/sapp:$1" --push "$w/ctx"
}
b_ci() {
  buildah bud --layers --isolation chroot --tls-verify=false --cache-from "$r/bcache" \
    --cache-to "$r/bcache" -t "$r/bapp:$1" "$w/ctx" &&
    buildah push --tls-verify=false "$r/bapp:$1"
}
blob_bytes() { # bytes of blob GETs in the registry's access log after line $1
  tail -n +"$(($1 + 1))" "$REGISTRY_DIR/log" | awk -F'"' '$2 ~ /^GET \/v2\/.*\/blobs\// {
    split($3, a, " "); if (a[1] ~ /^2/) s += a[2] } END { print s + 0 }'
}
fresh; s_ci seed >/dev/null 2>&1; b_ci seed >/dev/null 2>&1  # runner A fills both caches
declare -A T B
for i in $(seq "$runs"); do
  for tool in s b; do
    fresh; lines=$(wc -l <"$REGISTRY_DIR/log"); t0=$(date +%s.%N)
    "${tool}_ci" "run$i" >"$w/out" 2>&1 || { echo "bench: $tool failed" >&2; cat "$w/out" >&2; exit 1; }
    T[$tool]+="$(echo "$(date +%s.%N) - $t0" | bc) "; B[$tool]+="$(blob_bytes "$lines") "
  done
done
s=$(median <<<"${T[s]}"); b=$(median <<<"${T[b]}")
printf '%-30s %10.2f %10.2f %8.2f\n' "g CI cold runner, cache" "$s" "$b" "$(echo "$s / $b" | bc -l)"
printf '%-30s %10s %10s\n' "  blob bytes downloaded" "$(median <<<"${B[s]}")" "$(median <<<"${B[b]}")"
