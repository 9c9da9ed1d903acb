#!/usr/bin/env bash
# The one command that makes strata's container image, with strata itself:
#   strata build -t TAG -f Containerfile .
# on a Debian base: BASE if given (e.g. debian:bookworm-slim, pulled as
# usual), else the local debootstrap of scripts/debian-base.sh, imported
# once as localhost/debian:bookworm (nothing from Docker Hub).
# STRATA_BIN is the strata binary that builds and goes in (default: a
# release build made now). Then `strata save TAG | docker load` gives it
# to Docker, or `strata push TAG REGISTRY/strata` to a registry.
# Usage: scripts/strata-image.sh [TAG]   (default strata:latest)
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-strata:latest}
if [ -z "${STRATA_BIN:-}" ]; then
  cargo build --release --bins -q
  STRATA_BIN=target/release/strata
fi
case "$STRATA_BIN" in
  target/release/strata|target/debug/strata) ;;
  *) echo "STRATA_BIN must be target/release/strata or target/debug/strata (the context lets only those in)" >&2; exit 1 ;;
esac
strata() { "./$STRATA_BIN" "$@"; }
base=${BASE:-}
if [ -z "$base" ]; then
  base=localhost/debian:bookworm
  strata inspect "$base" >/dev/null 2>&1 || strata import "$(scripts/debian-base.sh)" "$base" >/dev/null
fi
strata build -q -t "$tag" -f Containerfile --build-arg BASE="$base" --build-arg STRATA_BIN="$STRATA_BIN" .
