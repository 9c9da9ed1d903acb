#!/usr/bin/env bash
# Run as root: scripts/bench.sh with a BuildKit column. Starts a private
# Debian dockerd (scripts/dockerd.sh), lets the test user (BENCH_USER,
# strata-test) use its socket, and runs bench.sh as that user with
# DOCKER_HOST set; bench.sh `docker load`s its busybox base (nothing is
# pulled) and times `DOCKER_BUILDKIT=1 /usr/bin/docker build --network host`
# beside strata and buildah. The socket is root's daemon: a bench machine only.
set -euo pipefail
cd "$(dirname "$0")/.."
user=${BENCH_USER:-strata-test}
source scripts/dockerd.sh
trap 'stop_dockerd || true' EXIT
start_dockerd
chmod 711 "$DOCKERD_RUN"; chown "$user" "$DOCKERD_RUN/sock"
# su without -l keeps the environment: DOCKER_HOST, STRATA and BENCH_* pass.
export STRATA=${STRATA:-$PWD/strata}
su "$user" -s /bin/bash -c "cd '$PWD' && bash scripts/bench.sh"
