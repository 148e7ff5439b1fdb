#!/usr/bin/env bash
# decode.sh -- decoding rate of each output plugin's stream through Ferry's decoders, beside
# pg_recvlogical (wal2json format-version 2 and test_decoding), over the same pgbench WAL.
#
# Like ../shared/bench/decode_raw.sh: slots are created first (so they all see the run), then
# pgbench -n -c 4 -j 2 -T $DUR writes the WAL, Lend = pg_current_wal_lsn(); then, one at a
# time, each consumer decodes exactly that WAL from its own slot:
#   ferry peek --slot S --end-lsn Lend --format count --plugin P   (P = pgoutput, wal2json,
#       decoderbufs: the server's decoding plus Ferry's decoder, no apply, no output)
#   pg_recvlogical --start --endpos Lend -f /dev/null             (wal2json v2, test_decoding)
# Rate = 4 * pgbench transactions / seconds. The order of the consumers rotates per round.
# Needs the shared clusters (setup_clusters.sh + gen_data.sh) and 5 free slots; uses the
# publication ferry_bench of bench/cdc.sh when it exists (else creates it).
#
# Usage: bash bench/decode.sh [rounds] [duration_s]     (default 2 rounds, 30 s)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHARED_BENCH=${SHARED_BENCH:-$HERE/../../shared/bench}
source "$SHARED_BENCH/lib.sh"
ROUNDS=${1:-2}
DUR=${2:-30}
FERRY_BIN=${FERRY_BIN:-$HERE/../target/release/ferry}
[ -x "$FERRY_BIN" ] || (cd "$HERE/.." && cargo build --release -p ferry --quiet)
mkdir -p "$RES" "$LOGS"
CFG=$LOGS/decode_ferry.toml
cat > "$CFG" <<EOF
[source]
url = "postgres://postgres@127.0.0.1:$SRC_PORT/$DB?sslmode=disable"
publication = "ferry_bench"
slot = "ferry_bench"
tables = ["public.pgbench_accounts", "public.pgbench_branches", "public.pgbench_tellers", "public.pgbench_history"]
[target]
url = "postgres://postgres@127.0.0.1:$DST_PORT/$DB?sslmode=disable"
EOF
psrc -c "SELECT 1 FROM pg_publication WHERE pubname = 'ferry_bench'" | grep -q 1 ||
  psrc -c "CREATE PUBLICATION ferry_bench FOR TABLE pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history"

CONSUMERS="ferry-pgoutput ferry-wal2json ferry-decoderbufs recvlogical-wal2json recvlogical-test_decoding"
plugin_of() { case $1 in *pgoutput) echo pgoutput ;; *wal2json) echo wal2json ;; *decoderbufs) echo decoderbufs ;; *test_decoding) echo test_decoding ;; esac; }
slot_of() { echo "fdec_${1//-/_}"; }
OUT=$RES/decode_ferry.tsv
[ -f "$OUT" ] || printf 'round\tconsumer\ttxns\tchanges\tseconds\tchanges_per_s\tnote\n' > "$OUT"

for round in $(seq 1 "$ROUNDS"); do
  for c in $CONSUMERS; do
    s=$(slot_of "$c")
    psrc -c "SELECT pg_drop_replication_slot('$s') FROM pg_replication_slots WHERE slot_name = '$s'" >/dev/null
    psrc -c "SELECT pg_create_logical_replication_slot('$s', '$(plugin_of "$c")')" >/dev/null
  done
  checkpoint_both
  pgbench -n -c 4 -j 2 -T "$DUR" "$SRC" > "$LOGS/decode_round$round.pgbench.log" 2>&1
  LEND=$(psrc -c "SELECT pg_current_wal_lsn()")
  TXNS=$(awk '/number of transactions actually processed/{print $NF}' "$LOGS/decode_round$round.pgbench.log")
  CHANGES=$((TXNS * 4))
  psrc -c "CHECKPOINT" >/dev/null
  # Rotate the order so that no consumer always goes first (cold caches).
  read -r -a ALL <<< "$CONSUMERS"
  k=$(( (round - 1) % ${#ALL[@]} ))
  for c in "${ALL[@]:k}" "${ALL[@]:0:k}"; do
    s=$(slot_of "$c"); p=$(plugin_of "$c")
    t0=$(now)
    case $c in
      ferry-*)
        NO_COLOR=1 "$FERRY_BIN" peek -c "$CFG" --plugin "$p" --slot "$s" --end-lsn "$LEND" --format count \
          > "$LOGS/decode_${c}_$round.out" 2> "$LOGS/decode_${c}_$round.err"
        note=$(tail -1 "$LOGS/decode_${c}_$round.out")
        ;;
      recvlogical-wal2json)
        pg_recvlogical -d "$SRC" -S "$s" --start --endpos "$LEND" -o format-version=2 -f /dev/null
        note="" ;;
      recvlogical-*)
        pg_recvlogical -d "$SRC" -S "$s" --start --endpos "$LEND" -f /dev/null
        note="" ;;
    esac
    t1=$(now)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
    rate=$(awk -v n="$CHANGES" -v s="$secs" 'BEGIN{printf "%.0f", n/s}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$c" "$TXNS" "$CHANGES" "$secs" "$rate" "$note" >> "$OUT"
    echo "[$(date +%T)] round $round $c: $CHANGES changes in $secs s = $rate changes/s ${note:+($note)}"
  done
  for c in $CONSUMERS; do
    psrc -c "SELECT pg_drop_replication_slot('$(slot_of "$c")')" >/dev/null
  done
done

echo
echo "consumer                    median changes/s (best)"
for c in $CONSUMERS; do
  awk -F'\t' -v c="$c" 'NR > 1 && $2 == c {print $6}' "$OUT" | sort -n | awk -v c="$c" '
    {v[NR] = $1} END {if (NR == 0) exit; m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
      printf "%-27s %10.0f (%.0f)\n", c, m, v[NR]}'
done
