#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run) on a fresh Debian machine,
# as root or as a sudo-capable user. Ends with one line `N passed, N failed`.
#   lint:      cargo fmt --check, cargo clippy -D warnings
#   units:     the library's and the parser's own tests, as the caller
#   tests/:    every whole-binary test as the unprivileged user strata-test
#              (rootless_*, interop_*, registry_* against a real registry),
#              and rootless_nosubid_* as strata-nosub, who has no subuid range
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-machine.sh || exit 1
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
source scripts/registry.sh
STAGE=$(mktemp -d /tmp/strata-tests.XXXXXX)
LOG=$STAGE/log
trap 'stop_registry; rm -rf "$STAGE"' EXIT
broken=0  # steps that failed other than by a failing test: each counts as one
step() {
  echo "== $*"
  "$@" 2>&1 | tee "$STAGE/out"
  local rc=${PIPESTATUS[0]}
  cat "$STAGE/out" >>"$LOG"
  if [ "$rc" -ne 0 ] && ! grep -qE '^test result: .* [1-9][0-9]* failed' "$STAGE/out"; then
    echo "== failed: $*"; broken=$((broken + 1))
  fi
}

step cargo fmt --all -- --check
step cargo clippy --workspace --all-targets -- -D warnings
step cargo test -p strata --lib --bins
step cargo test -p strata-parser

# Whole-binary tests run from a world-readable copy: the checkout may sit in
# a home directory the test users cannot enter.
chmod 755 "$STAGE"
cargo build --bins -q && cp "${CARGO_TARGET_DIR:-target}/debug/strata" "$STAGE/" || broken=$((broken + 1))
mapfile -t bins < <(cargo test -p strata --tests --no-run --message-format=json 2>/dev/null |
  jq -r 'select(.reason == "compiler-artifact" and .target.kind == ["test"]) | .executable')
cp -r "${bins[@]}" scripts testdata "$STAGE/" 2>/dev/null
start_registry || broken=$((broken + 1))
as_user() {
  local user=$1; shift
  $SUDO setpriv --reuid="$user" --regid="$user" --init-groups --reset-env -- \
    env STRATA_BIN="$STAGE/strata" STRATA_PROJECT_DIR="$STAGE" CI="${CI:-}" \
    STRATA_TEST_REGISTRY="${REGISTRY_ADDR:-}" "$@"
}
for bin in "${bins[@]}"; do
  exe="$STAGE/$(basename "$bin")"
  step as_user strata-test "$exe" --skip rootless_nosubid_
  step as_user strata-nosub "$exe" rootless_nosubid_
done

read -r passed failed < <(grep -E '^test result: ' "$LOG" |
  sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/' |
  awk '{p += $1; f += $2} END {print p + 0, f + 0}')
[ "${#bins[@]}" -gt 0 ] || { echo "no whole-binary test was built"; broken=$((broken + 1)); }
echo "$passed passed, $((failed + broken)) failed"
[ "$failed" -eq 0 ] && [ "$broken" -eq 0 ]
