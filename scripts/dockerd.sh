#!/usr/bin/env bash
# A private Debian dockerd for tests, as root. Source this file, then:
#
#   start_dockerd   starts dockerd with its socket, exec root and data root
#                   all in one new directory, $DOCKERD_RUN (/tmp/strata-
#                   dockerd.XXXXXX), with no iptables, masquerading or
#                   bridge: it touches nothing of the machine's own Docker
#                   nor another test's dockerd, and any number can run at
#                   once (one per shell). Exports DOCKER_HOST for `docker`
#                   and the tests; returns 1, with the daemon's log on
#                   stderr, if dockerd is missing or does not answer in 20 s.
#   stop_dockerd    removes its containers, stops it, unmounts what it left
#                   mounted and removes $DOCKERD_RUN, data root included:
#                   nothing stays behind. A no-op when nothing was started:
#                   call it from the EXIT trap of the shell that started it.
#
# In between: nothing is pulled (the machines cannot reach Docker Hub).
# Give the daemon images with `strata save REF | docker load`, then
# `docker run --network host` (or `none`: there is no bridge) by the loaded
# name or id. Loading again in each run is cheaper than keeping a data root.
DOCKERD_PID=
DOCKERD_RUN=

start_dockerd() {
  command -v dockerd >/dev/null || { echo "dockerd not found: apt-get install docker.io" >&2; return 1; }
  # The socket path must be short (108 bytes).
  DOCKERD_RUN=$(mktemp -d /tmp/strata-dockerd.XXXXXX)
  export DOCKER_HOST=unix://$DOCKERD_RUN/sock
  dockerd --host "$DOCKER_HOST" --data-root "$DOCKERD_RUN/data" --exec-root "$DOCKERD_RUN/exec" \
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
  stop_dockerd
  return 1
}

stop_dockerd() {
  [ -n "$DOCKERD_RUN" ] || return 0
  if [ -n "$DOCKERD_PID" ]; then
    # Containers left by a failed test go with their daemon.
    docker ps -aq 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1
    # wait reports the SIGTERM as 143, and grep below finds nothing on a
    # clean stop: neither may end a `set -e` caller's EXIT trap.
    kill "$DOCKERD_PID" 2>/dev/null && { wait "$DOCKERD_PID" 2>/dev/null || true; }
  fi
  # dockerd leaves its network namespace mounted under the exec root, and
  # one killed uncleanly its overlay mounts under the data root: unmount
  # them, deepest first, so that rm removes files, not what they show.
  findmnt -rn -o TARGET | grep "^$DOCKERD_RUN/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$DOCKERD_RUN"
  DOCKERD_PID= DOCKERD_RUN=
}
