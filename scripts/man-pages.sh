#!/usr/bin/env bash
# Writes strata's man pages (strata.1, strata-build.1, ...) into DIR
# (default target/man), generated from the CLI definition by the hidden
# `strata man-pages` command. Install with e.g.
#   sudo cp target/man/*.1 /usr/local/share/man/man1/
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/man}
cargo build --release --bins -q
"${CARGO_TARGET_DIR:-target}/release/strata" man-pages "$out"
echo "man pages in $out: $(ls "$out" | wc -l)"
