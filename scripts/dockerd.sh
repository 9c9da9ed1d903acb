#!/usr/bin/env bash
# Starts Debian's dockerd on a private socket and data root, with no
# iptables, masquerading or bridge (containers use --network host or none),
# so it touches nothing of the machine's own Docker, if any. Sourced by
# test.sh: sets DOCKER_HOST and registers stop_dockerd, which the caller
# runs from its EXIT trap. The data root is kept between runs
# (STRATA_DOCKERD_DIR), so images loaded once are there next time.
DOCKERD_DIR=${STRATA_DOCKERD_DIR:-/var/tmp/strata-dockerd}
DOCKERD_PID=

start_dockerd() {
  command -v dockerd >/dev/null || { echo "dockerd not found: apt-get install docker.io" >&2; return 1; }
  mkdir -p "$DOCKERD_DIR"
  # The socket path must be short (108 bytes) and private to this run.
  DOCKERD_RUN=$(mktemp -d /tmp/strata-dockerd.XXXXXX)
  export DOCKER_HOST=unix://$DOCKERD_RUN/sock
  dockerd --host "$DOCKER_HOST" --data-root "$DOCKERD_DIR/data" --exec-root "$DOCKERD_RUN/exec" \
    --pidfile "$DOCKERD_RUN/pid" --iptables=false --ip-masq=false --bridge=none \
    >"$DOCKERD_RUN/log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 200); do
    docker version >/dev/null 2>&1 && return 0
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "dockerd did not start; its log:" >&2
  tail -20 "$DOCKERD_RUN/log" >&2
  return 1
}

stop_dockerd() {
  [ -n "$DOCKERD_PID" ] || return 0
  # Containers left by a failed test go with their daemon.
  docker ps -aq 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1
  kill "$DOCKERD_PID" 2>/dev/null && wait "$DOCKERD_PID" 2>/dev/null
  # dockerd leaves its network namespace mounted under the exec root.
  find "$DOCKERD_RUN/exec/netns" -mindepth 1 -maxdepth 1 -exec umount {} \; 2>/dev/null
  rm -rf "$DOCKERD_RUN"
  DOCKERD_PID=
}
