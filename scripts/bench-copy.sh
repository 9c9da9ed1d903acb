#!/usr/bin/env bash
# The cold COPY of scripts/bench.sh near the hardware limit: a COPY of
# 20,000 files (500 MB) and of one 1 GB file into an empty store, strata vs
# rootless buildah (--no-cache), with the floor measured in the same run:
# read+hash the context (sha256sum) plus writing it (cp -r). Wall time and
# peak RSS (/usr/bin/time) are medians over BENCH_RUNS; rows in bench.sh's
# table format. Run as an unprivileged user with subuid ranges.
set -euo pipefail; shopt -s inherit_errexit
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
buildah pull -q "docker-archive:$w/bb-save.tar" >/dev/null
for c in many one; do mkdir -p "$w/$c/d"; printf 'FROM busybox\nCOPY d /d/\n' >"$w/$c/Dockerfile"; done
for i in $(seq "$(n 20000)"); do head -c 25000 /dev/urandom >"$w/many/d/$i"; done
head -c "$(n 1000000000)" /dev/urandom >"$w/one/d/big"

s_cold() { # an empty store holding only the base image
  rm -rf "$w/store"; STRATA_ROOT=$w/store "$strata" load -i "$w/bb-save.tar" >/dev/null
  STRATA_ROOT=$w/store measure "$strata" build --no-cache -t c "$w/$1"
}
b_cold() { buildah rmi -f c >/dev/null 2>&1 || true; measure buildah bud --layers --isolation chroot --no-cache -t c "$w/$1"; }
floor() { # read+hash, then write: each part measured, the sum printed
  local h c; rm -rf "$w/cp"
  h=$(measure sh -c "find '$w/$1/d' -type f -print0 | xargs -0 sha256sum >/dev/null" | cut -d' ' -f1)
  c=$(measure cp -r "$w/$1/d" "$w/cp" | cut -d' ' -f1)
  echo "$(echo "$h + $c" | bc) 0"
}
declare -A T M
for _ in $(seq "$runs"); do
  for c in many one; do
    for tool in floor s_cold b_cold; do
      r=$("$tool" "$c"); read -r t m <<<"$r"; T[$c.$tool]+="$t "; M[$c.$tool]+="$m "
    done
  done
done
med() { median <<<"$1"; }
for c in many one; do
  case $c in many) name="i cold COPY $(n 20000) files" ;; one) name="j cold COPY 1 file $(n 1000)MB" ;; esac
  s=$(med "${T[$c.s_cold]}") b=$(med "${T[$c.b_cold]}") f=$(med "${T[$c.floor]}")
  printf '%-30s %10.2f %10.2f %8.2f\n' "$name" "$s" "$b" "$(echo "$s / $b" | bc -l)"
  printf '%-30s %10.2f %10s %8.2f\n' "  floor (sha256sum + cp -r)" "$f" "" "$(echo "$s / $f" | bc -l)"
  printf '%-30s %10s %10s\n' "  peak RSS MB" "$(med "${M[$c.s_cold]}")" "$(med "${M[$c.b_cold]}")"
done
