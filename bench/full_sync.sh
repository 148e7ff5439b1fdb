#!/usr/bin/env bash
# full_sync.sh -- times `ferry sync` (mode = "full", every index built) against the peers on the
# shared dataset (pgbench scale 50 + 1M wide rows), alternating run by run so that machine noise
# hits every tool alike, then prints the medians and Ferry's ratio to each peer.
#
# Peers (scripts in ../shared/bench): pgcopydb clone (2 table jobs, 2 index jobs, indexes after
# the load, VACUUM ANALYZE), native logical replication's initial copy (PKs present during the
# copy), and the raw binary COPY pipe without indexes and with the PK in place.
#
# Usage: bash bench/full_sync.sh [runs]          (default 2; about 3 min per round)
# Env:   FERRY_WORKERS (default 2, as pgcopydb's 2 table jobs), FERRY_BIN (default target/release/ferry, built if missing),
#        SHARED_BENCH (default ../shared/bench beside the repository), BENCH_DIR (see lib.sh).
# Needs root (the servers run as the postgres OS user) and pgcopydb (apt-get install pgcopydb).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$(cd "$REPO/../shared/bench" && pwd)}
source "$SHARED_BENCH/lib.sh"
RUNS=${1:-2}
WORKERS=${FERRY_WORKERS:-2}
FERRY=${FERRY_BIN:-$REPO/target/release/ferry}

command -v pgcopydb >/dev/null || apt-get install -y -qq pgcopydb sysstat >/dev/null
[ -x "$FERRY" ] || (cd "$REPO" && cargo build --release -q)
if ! psrc -c "select 1" >/dev/null 2>&1 || [ ! -s "$RES/dataset.tsv" ]; then
  bash "$SHARED_BENCH/setup_clusters.sh"
  bash "$SHARED_BENCH/gen_data.sh"
fi

CONFIG=$PERF/ferry_full_sync.toml
cat > "$CONFIG" <<TOML
[source]
url = "$SRC_URI?sslmode=disable"
tables = ["public.*"]

[target]
url = "$DST_URI?sslmode=disable"

[sync]
mode = "full"
snapshot_workers = $WORKERS
TOML

STAMP=$(date +%s)
for r in $(seq 1 "$RUNS"); do
  run=$((STAMP * 10 + r))
  reset_target_db
  checkpoint_both
  t0=$(now)
  "$FERRY" sync -c "$CONFIG" > "$LOGS/ferry_full_sync_run$run.log" 2>&1
  t1=$(now)
  result "ferry-sync-full-w$WORKERS" default "$run" ALL "$(ds_total_rows)" "$(ds_total_bytes)" "$(el "$t0" "$t1")" "incl. index build; $(tail -1 "$LOGS/ferry_full_sync_run$run.log")"
  bash "$SHARED_BENCH/pgcopydb_clone.sh" 1 "$run"
  bash "$SHARED_BENCH/logrep_copy.sh" 1 "$run"
  bash "$SHARED_BENCH/copy_raw.sh" both 1 "$run"
done

# Medians of this invocation's runs, and Ferry's speed-up over each peer.
python3 - "$RES/copy_results.tsv" "$STAMP" "$WORKERS" <<'PY'
import csv, statistics, sys
path, stamp, workers = sys.argv[1], sys.argv[2], sys.argv[3]
times = {}
with open(path) as f:
    for row in csv.DictReader(f, delimiter="\t"):
        if row["table"] != "ALL" or not row["run"].startswith(stamp):
            continue
        times.setdefault((row["method"], row["variant"]), []).append(float(row["seconds"]))
ferry = times.get((f"ferry-sync-full-w{workers}", "default"))
print(f"{'method':45} {'variant':8} {'runs':>4} {'median s':>9} {'min s':>7} {'ferry speed-up':>15}")
for (method, variant), secs in sorted(times.items(), key=lambda kv: statistics.median(kv[1])):
    med = statistics.median(secs)
    ratio = f"{med / statistics.median(ferry):.2f}x" if ferry else "-"
    print(f"{method:45} {variant:8} {len(secs):>4} {med:>9.1f} {min(secs):>7.1f} {ratio:>15}")
PY
