#!/usr/bin/env bash
# Starts Debian's docker-registry on 127.0.0.1, on a free port, with its own
# temporary storage. Sourced by test.sh: sets REGISTRY_ADDR and registers
# stop_registry, which the caller runs from its EXIT trap.
REGISTRY_DIR=$(mktemp -d /tmp/strata-registry.XXXXXX)
REGISTRY_PID=

free_port() {
  local p
  for p in $(shuf -i 20000-60000 -n 100); do
    # A refused connection means nothing listens there.
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  return 1
}

start_registry() {
  local port
  port=$(free_port)
  REGISTRY_ADDR=127.0.0.1:$port
  cat >"$REGISTRY_DIR/config.yml" <<YAML
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $REGISTRY_DIR/data }
  delete: { enabled: true }
http: { addr: "$REGISTRY_ADDR" }
YAML
  docker-registry serve "$REGISTRY_DIR/config.yml" >"$REGISTRY_DIR/log" 2>&1 &
  REGISTRY_PID=$!
  for _ in $(seq 100); do
    curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 && return 0
    kill -0 "$REGISTRY_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "registry did not start; its log:" >&2
  cat "$REGISTRY_DIR/log" >&2
  return 1
}

stop_registry() {
  # wait reports the registry's SIGTERM as 143: under a caller's set -e, in
  # its EXIT trap, that status would end the trap (and the script, exit 143).
  [ -n "$REGISTRY_PID" ] && kill "$REGISTRY_PID" 2>/dev/null && { wait "$REGISTRY_PID" 2>/dev/null || true; }
  rm -rf "$REGISTRY_DIR"
}
