#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run) on a fresh Debian machine,
# as root or as a sudo-capable user. Ends by naming each failed test, then
# one line `N passed, N failed`; the full log stays in target/test-logs/.
#   lint:      cargo fmt --check, cargo clippy -D warnings
#   units:     the library's and the parser's own tests, as the caller
#   tests/:    every whole-binary test as the unprivileged user strata-test
#              (rootless_*, interop_*, registry_* against a real registry),
#              and rootless_nosubid_* as strata-nosub, who has no subuid range;
#              incontainer_* as root, against a private dockerd holding
#              strata's image (scripts/dockerd.sh, scripts/strata-image.sh)
# `scripts/test.sh --only FILE [FILTER]` runs just tests/FILE.rs (for
# developers; lint and units are skipped).
set -uo pipefail
cd "$(dirname "$0")/.."
ONLY=; FILTER=
[ "${1:-}" = --only ] && { ONLY=$2; FILTER=${3:-}; }
bash scripts/setup-machine.sh || exit 1
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
source scripts/registry.sh
source scripts/dockerd.sh
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p "$TARGET/test-logs"
LOG=$(realpath "$TARGET/test-logs")/test-$(date +%Y%m%d-%H%M%S)-$$.log
STAGE=$(mktemp -d /tmp/strata-tests.XXXXXX)
trap 'stop_dockerd; stop_registry; rm -rf "$STAGE"' EXIT
broken=()  # steps that failed other than by a failing test
step() {
  echo "== $*"
  # One file per shell: the in-container tier runs beside the others.
  local out=$STAGE/out.$BASHPID
  "$@" 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  cat "$out" >>"$LOG"
  if [ "$rc" -ne 0 ] && ! grep -qE '^test result: .* [1-9][0-9]* failed' "$out"; then
    echo "== failed: $*"; broken+=("$*")
  fi
}

if [ -z "$ONLY" ]; then
  step cargo fmt --all -- --check
  step cargo clippy --workspace --all-targets -- -D warnings
  step cargo test -p strata --lib --bins
  step cargo test -p strata-parser
fi

# Whole-binary tests run from a world-readable copy: the checkout may sit in
# a home directory the test users cannot enter.
chmod 755 "$STAGE"
cargo build --bins -q && cp "$TARGET/debug/strata" "$STAGE/" || broken+=("cargo build")
mapfile -t bins < <(cargo test -p strata --no-run --message-format=json ${ONLY:+--test "$ONLY"} ${ONLY:---tests} 2>/dev/null |
  jq -r 'select(.reason == "compiler-artifact" and .target.kind == ["test"]) | .executable')
cp -r "${bins[@]}" scripts testdata "$STAGE/" 2>/dev/null
start_registry || broken+=("start_registry")
# The busybox base most tests import: made once per run, in the stage dir
# (removed with it), rather than once per test process.
BUSYBOX_TAR=$STAGE/busybox.tar
scripts/busybox-rootfs.sh "$BUSYBOX_TAR" >>"$LOG" 2>&1 && chmod 644 "$BUSYBOX_TAR" || broken+=("scripts/busybox-rootfs.sh")
# The multi-platform tests' arm64 base (made once, kept between runs).
ARM64_TAR=${STRATA_ARM64_TAR:-/var/cache/strata/busybox-arm64.tar}
$SUDO scripts/busybox-arm64.sh "$ARM64_TAR" >>"$LOG" 2>&1 || broken+=("scripts/busybox-arm64.sh")
as_user() {
  local user=$1; shift
  $SUDO setpriv --reuid="$user" --regid="$user" --init-groups --reset-env -- \
    env STRATA_BIN="$STAGE/strata" STRATA_PROJECT_DIR="$STAGE" CI="${CI:-}" \
    STRATA_TEST_REGISTRY="${REGISTRY_ADDR:-}" STRATA_TEST_ARM64_TAR="$ARM64_TAR" \
    STRATA_TEST_BUSYBOX_TAR="$BUSYBOX_TAR" "$@"
}
# The in-container tier: strata's image (built by the strata just built, in
# a store kept between runs so its apt layer is cached) loaded into a
# private dockerd, and the Debian base pushed to the test registry.
IMAGE_STORE=${STRATA_IMAGE_STORE:-/var/cache/strata/image-store}
incontainer() {
  local exe=$1 base
  [ "$(id -u)" -eq 0 ] || { broken+=("the incontainer tier runs dockerd: run scripts/test.sh as root"); return; }
  start_dockerd || { broken+=("start_dockerd"); return; }
  base=$REGISTRY_ADDR/debian:bookworm
  if ! { STRATA_ROOT=$IMAGE_STORE STRATA_BIN=target/debug/strata scripts/strata-image.sh strata-test:latest >/dev/null &&
         "$STAGE/strata" --root "$IMAGE_STORE" save strata-test:latest | docker load -q &&
         "$STAGE/strata" --root "$IMAGE_STORE" tag localhost/debian:bookworm "$base" &&
         "$STAGE/strata" --root "$IMAGE_STORE" push "$base"; } >>"$LOG" 2>&1; then
    broken+=("making strata's image (see the log)"); stop_dockerd; return
  fi
  # The store keeps the image's apt layer for next time, not every run's
  # strata image and registry tag.
  { "$STAGE/strata" --root "$IMAGE_STORE" rmi "$base" &&
    "$STAGE/strata" --root "$IMAGE_STORE" system prune -f; } >>"$LOG" 2>&1
  step env STRATA_BIN="$STAGE/strata" STRATA_PROJECT_DIR="$STAGE" CI="${CI:-}" \
    STRATA_TEST_REGISTRY="$REGISTRY_ADDR" STRATA_TEST_IMAGE=strata-test:latest \
    STRATA_TEST_BASE="$base" DOCKER_HOST="$DOCKER_HOST" "$exe" ${FILTER:+"$FILTER"}
  stop_dockerd
}
# It runs in the background, beside the other tiers (it mostly waits on
# dockerd and disk), with its own log and list of broken steps, both
# added to the run's when it is done.
incontainer_pid=
# Started first, so that it overlaps as much of the rest as it can.
[ ${#bins[@]} -eq 0 ] || mapfile -t bins < <(printf '%s\n' "${bins[@]}" | grep '/incontainer_'; printf '%s\n' "${bins[@]}" | grep -v '/incontainer_')
for bin in "${bins[@]}"; do
  exe="$STAGE/$(basename "$bin")"
  case "$(basename "$bin")" in incontainer_*)
    (
      trap stop_dockerd EXIT
      LOG=$STAGE/incontainer.log broken=()
      incontainer "$exe" >"$STAGE/incontainer.out" 2>&1
      [ ${#broken[@]} -eq 0 ] || printf '%s\n' "${broken[@]}" >"$STAGE/incontainer.broken"
    ) &
    incontainer_pid=$!
    continue ;;
  esac
  step as_user strata-test "$exe" --skip rootless_nosubid_ ${FILTER:+"$FILTER"}
  case "$FILTER" in ""|*nosubid*) step as_user strata-nosub "$exe" "${FILTER:-rootless_nosubid_}" ;; esac
done

if [ -n "$incontainer_pid" ]; then
  wait "$incontainer_pid"
  cat "$STAGE/incontainer.out"
  cat "$STAGE/incontainer.log" >>"$LOG" 2>/dev/null
  [ -s "$STAGE/incontainer.broken" ] && mapfile -t -O "${#broken[@]}" broken <"$STAGE/incontainer.broken"
fi

read -r passed failed < <(grep -E '^test result: ' "$LOG" |
  sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/' |
  awk '{p += $1; f += $2} END {print p + 0, f + 0}')
[ "${#bins[@]}" -gt 0 ] || broken+=("no whole-binary test was built")
grep -E '^test .* \.\.\. FAILED$' "$LOG" | sed -E 's/^test (.*) \.\.\. FAILED$/failed: \1/' | sort -u
for b in "${broken[@]}"; do echo "failed: $b"; done
echo "full log: $LOG"
echo "$passed passed, $((failed + ${#broken[@]})) failed"
[ "$failed" -eq 0 ] && [ "${#broken[@]}" -eq 0 ]
