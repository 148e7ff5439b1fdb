#!/usr/bin/env bash
# The README's first command: installs what is missing (PostgreSQL 15, the Rust toolchain),
# builds Ferry in release mode and runs `ferry demo`: two throwaway local clusters, a live
# workload, a full+incremental pipeline, and a verification at the end. Ctrl-C stops it and
# deletes both clusters. Extra arguments go to `ferry demo` (e.g. --duration 60s).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --no-nextest
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
echo "building ferry (release)..." >&2
cargo build --release --locked -p ferry --quiet
exec target/release/ferry demo "$@"
