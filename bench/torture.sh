#!/usr/bin/env bash
# torture.sh -- soak the seeded torture test (crates/ferry/tests/torture.rs) with fresh seeds.
#
# Each case is a random schema and a random concurrent workload on a real source, the real
# `ferry sync` killed and restarted at random points, then a digest of every table compared
# between source and target. This loops over fresh seeds until the time is up, rotating the
# plugins given, and prints every failing seed with its replay line. Exit status 1 when any
# case failed.
#
# Usage: bash bench/torture.sh [--minutes M] [--plugin P]... [--workload-secs S] [--first-seed N]
#   --minutes        how long to soak (default 10)
#   --plugin         pgoutput, wal2json or decoderbufs (repeatable; default all three)
#   --workload-secs  workload length per case (default 20)
#   --first-seed     the first seed (default: from the clock, printed)
# FERRY_TORTURE_FEATURES passes through (e.g. "-kill_ferry" or "none,toast").
# Results: $BENCH_DIR/results/torture.tsv (seed, plugin, outcome, seconds).
# Each case runs through cargo: do not edit or build this tree while it soaks.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/ferry-bench}
MINUTES=10
PLUGINS=()
WORKLOAD_SECS=20
SEED=$(( $(date +%s) % 1000000 * 1000 ))
while [ $# -gt 0 ]; do
    case $1 in
        --minutes) MINUTES=$2; shift 2 ;;
        --plugin) PLUGINS+=("$2"); shift 2 ;;
        --workload-secs) WORKLOAD_SECS=$2; shift 2 ;;
        --first-seed) SEED=$2; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "torture.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[ ${#PLUGINS[@]} -gt 0 ] || PLUGINS=(pgoutput wal2json decoderbufs)
for p in "${PLUGINS[@]}"; do
    case $p in pgoutput|wal2json|decoderbufs) ;; *)
        echo "torture.sh: unknown plugin '$p': pgoutput, wal2json or decoderbufs" >&2; exit 2 ;;
    esac
done
mkdir -p "$BENCH_DIR/results" "$BENCH_DIR/logs"
TSV=$BENCH_DIR/results/torture.tsv
[ -s "$TSV" ] || printf 'seed\tplugin\toutcome\tseconds\n' > "$TSV"

cd "$HERE/.."
bash scripts/install-deps.sh >/dev/null
# Build once, so that the clock below times the cases only.
cargo nextest run -p ferry --test torture --no-run --cargo-quiet

echo "torture.sh: soaking ${MINUTES} min, plugins ${PLUGINS[*]}, first seed $SEED"
END=$(( $(date +%s) + MINUTES * 60 ))
runs=0; failed=()
i=0
while [ "$(date +%s)" -lt "$END" ]; do
    plugin=${PLUGINS[$(( i % ${#PLUGINS[@]} ))]}
    log=$BENCH_DIR/logs/torture-$plugin-$SEED.log
    start=$(date +%s)
    if FERRY_TORTURE_SEED=$SEED FERRY_TORTURE_PLUGIN=$plugin FERRY_TORTURE_WORKLOAD_SECS=$WORKLOAD_SECS \
        cargo nextest run -p ferry --test torture torture_replay --run-ignored all \
        --cargo-quiet --no-capture >"$log" 2>&1; then
        outcome=clean
        rm -f "$log"
    elif grep -q 'torture case FAILED' "$log"; then
        outcome=FAILED
        failed+=("$plugin $SEED")
    else
        # No case report: the harness itself failed (a build error, a tree edited while
        # soaking): stop rather than count every later seed as a failure.
        echo "torture.sh: seed $SEED $plugin: the test did not run a case; its output:" >&2
        tail -30 "$log" >&2
        exit 2
    fi
    secs=$(( $(date +%s) - start ))
    printf '%s\t%s\t%s\t%s\n' "$SEED" "$plugin" "$outcome" "$secs" >> "$TSV"
    echo "torture.sh: seed $SEED $plugin: $outcome (${secs} s)"
    [ "$outcome" = clean ] || grep -m1 -A3 'torture: FAILED' "$log" || true
    runs=$(( runs + 1 )); i=$(( i + 1 )); SEED=$(( SEED + 1 ))
done

echo "torture.sh: $runs case(s), ${#failed[@]} failed"
for f in "${failed[@]}"; do
    set -- $f
    echo "  FAILED seed $2 plugin $1 (log $BENCH_DIR/logs/torture-$1-$2.log); replay:"
    echo "    FERRY_TORTURE_SEED=$2 FERRY_TORTURE_PLUGIN=$1 FERRY_TORTURE_WORKLOAD_SECS=$WORKLOAD_SECS cargo nextest run -p ferry --test torture torture_replay --run-ignored all"
done
[ ${#failed[@]} -eq 0 ]
