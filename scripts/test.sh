#!/usr/bin/env bash
# Runs Ferry's whole test suite against real PostgreSQL clusters that the tests start
# themselves (see crates/ferry-testkit). Installs what is missing first.
# Extra arguments go to cargo nextest, e.g. scripts/test.sh -p ferry-pgwire.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
exec cargo nextest run --workspace --no-fail-fast "$@"
