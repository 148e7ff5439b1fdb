#!/usr/bin/env bash
# Installs what Ferry's tests and demo need and is missing: PostgreSQL 15 server binaries, the
# wal2json and decoderbufs output plugins, and cargo-nextest. Idempotent; needs root (or sudo)
# for the Debian packages. Set FERRY_PG_BIN to use PostgreSQL binaries from elsewhere.
#   --no-nextest   skip cargo-nextest (the demo does not need it)
set -euo pipefail

WITH_NEXTEST=1
[ "${1:-}" = "--no-nextest" ] && WITH_NEXTEST=0

PG_MAJOR=${FERRY_PG_MAJOR:-15}
PG_BIN=${FERRY_PG_BIN:-/usr/lib/postgresql/$PG_MAJOR/bin}
PG_LIB=$(dirname "$PG_BIN")/lib

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
[ -x "$PG_BIN/postgres" ] && [ -x "$PG_BIN/initdb" ] || missing+=("postgresql-$PG_MAJOR")
[ -f "$PG_LIB/wal2json.so" ] || missing+=("postgresql-$PG_MAJOR-wal2json")
[ -f "$PG_LIB/decoderbufs.so" ] || missing+=("postgresql-$PG_MAJOR-decoderbufs")
command -v psql >/dev/null 2>&1 || missing+=("postgresql-client-$PG_MAJOR")

if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing: ${missing[*]}; install them with your package manager (no apt-get here)" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}" >&2
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Tests run the server as the postgres OS user when they run as root.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd -r -m -d /var/lib/postgresql -s /bin/bash postgres
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "installing the Rust toolchain (rustup, stable)" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >&2 || {
      echo "cannot install Rust: install a stable toolchain (https://rustup.rs) and run this again" >&2
      exit 1
    }
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

if [ "$WITH_NEXTEST" = 1 ] && ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi
