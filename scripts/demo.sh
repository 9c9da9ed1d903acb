#!/usr/bin/env bash
# The README's first command: installs what strata needs, builds it in
# release mode, makes a local busybox base image, builds examples/hello
# (a multi-stage Dockerfile) and runs it. Offline: nothing is pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-machine.sh --packages-only
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked
strata=target/release/strata
step() { echo "== $*"; "$@"; }

step "$strata" info
base=$(mktemp -d)
trap 'rm -rf "$base"' EXIT
bash scripts/busybox-rootfs.sh "$base/busybox.tar"
step "$strata" import --change 'CMD ["/bin/sh"]' "$base/busybox.tar" busybox
step "$strata" build -t hello examples/hello
step "$strata" run --rm hello
step "$strata" images
