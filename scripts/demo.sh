#!/usr/bin/env bash
# The README's first command: installs what strata needs, builds it in
# release mode and shows what it sees on this machine, offline.
# (Once `strata build` lands, this also builds and runs examples/hello.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-machine.sh --packages-only
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked
strata=target/release/strata
echo "== $strata info"
"$strata" info
echo "== $strata unshare id   (root inside strata's user namespace)"
"$strata" unshare id
