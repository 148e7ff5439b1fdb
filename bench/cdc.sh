#!/usr/bin/env bash
# cdc.sh -- incremental sync (CDC) of `ferry sync` (mode = "full+incremental", after its copy)
# against native logical replication, on the shared dataset, alternating Ferry and native run by
# run so that machine noise hits both alike, then prints medians and the Ferry/native ratios.
# The workloads are those of ../shared/bench/cdc_logrep.sh:
#
#  backlog  consumer stopped; pgbench -n -c 4 -j 2 -T $DUR on the source; Lend = LSN after it;
#           start the consumer and time until its slot's confirmed_flush_lsn >= Lend.
#           changes/s = 4 * transactions / seconds: pure apply capacity.
#  pgbench  consumer running and caught up; pgbench for $DUR while one probe row per 50 ms goes
#           into public.lag_probe on the source (t_src = clock_timestamp() at insert). On each
#           target a BEFORE INSERT trigger stamps t_dst (apply lag = t_dst - t_src), and a
#           deferred constraint trigger records the time just before the target COMMIT in the
#           target-only table lag_probe_commit (commit lag: when the row became visible; this
#           is what matters when the consumer groups transactions). Both triggers are ENABLE
#           ALWAYS, so they fire under the native apply worker (session_replication_role =
#           replica) too. Also: catch-up after pgbench ends, lag bytes sampled every second.
#  bulk     UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 1000000 in one
#           transaction; seconds from the source commit until confirmed_flush_lsn >= the LSN
#           after it. Run with streaming of large transactions on and off, for both (Ferry:
#           [sync] streaming; native: ALTER SUBSCRIPTION sub SET (streaming = ...)).
#           Ferry's peak RSS (VmHWM of a process started just for the measurement).
#
# The two consumers never run at once and never touch the same tables: Ferry writes into the
# target database bench_ferry (slot and publication ferry_bench), native into bench (slot and
# subscription sub, publication pub FOR ALL TABLES, created by logrep_copy.sh when missing).
# While Ferry runs, sub is disabled (and its walsender gone); while native runs, Ferry is
# stopped. Each consumer's slot keeps the WAL written while the other ran, so every run first
# lets its consumer catch up (untimed, in a separate Ferry process), then measures with a fresh
# process. After every run: count(pgbench_history), sum(abalance) and count(lag_probe) must
# be equal on source and target, else the row says MISMATCH (and the run is printed loudly).
#
# Usage: bash bench/cdc.sh MODE [rounds] [duration_s]
#          MODE: backlog | pgbench | bulk | all (all three, in that order) | clean (drop
#          Ferry's slot, publication and target database)
#          rounds: default 3; each round runs Ferry and native once (bulk: once per streaming
#          setting); the order within a round alternates (odd rounds Ferry first).
#          duration_s: pgbench -T for backlog and pgbench modes, default 60.
#        bash bench/cdc.sh all 3            # the full benchmark, about 35 min (see README.md)
#        bash bench/cdc.sh all 1 10         # smoke test
# Env:   FERRY_BIN (default target/release/ferry, built if missing), SHARED_BENCH (default
#        ../shared/bench beside the repository), BENCH_DIR (see lib.sh), BULK_STREAMING
#        (default "on off"), CATCHUP_TIMEOUT (seconds a consumer may take to catch up before
#        the run is declared hung; default 1800).
# Output: raw rows appended to $RES/cdc_ferry.tsv (method ferry / native-logical-repl), lag
#        samples in $RES/cdc_lag_<method>_<mode>_run<id>.csv, Ferry logs in $LOGS/ferry_cdc_*.log.
# Needs root (the servers run as the postgres OS user), pgbench, pidstat (sysstat).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$(cd "$REPO/../shared/bench" && pwd)}
source "$SHARED_BENCH/lib.sh"
set -euo pipefail

MODE=${1:-all}
ROUNDS=${2:-3}
DUR=${3:-60}
FERRY=${FERRY_BIN:-$REPO/target/release/ferry}
BULK_STREAMING=${BULK_STREAMING:-on off}
CATCHUP_TIMEOUT=${CATCHUP_TIMEOUT:-1800}
case $MODE in
  backlog|pgbench|bulk) MODES=$MODE ;;
  all) MODES="backlog pgbench bulk" ;;
  clean) ;;
  *) echo "usage: bash bench/cdc.sh backlog|pgbench|bulk|all|clean [rounds] [duration_s]" >&2; exit 2 ;;
esac

FDB=bench_ferry                 # Ferry's target database on the target cluster
FSLOT=ferry_bench               # Ferry's slot and publication
NSLOT=sub                       # native: subscription (in target db bench) and its slot
FERRY_DST="host=127.0.0.1 port=$DST_PORT user=postgres dbname=$FDB"
FERRY_TABLES='"public.pgbench_accounts", "public.pgbench_branches", "public.pgbench_tellers", "public.pgbench_history", "public.lag_probe"'
TSV=$RES/cdc_ferry.tsv
COLS="method mode variant run src_tps txns changes wal_MB pgbench_s catchup_after_end_s start_to_caughtup_s applied_changes_per_s lag_max_MB lag_avg_MB replay_lag_max_s probes apply_lag_p50_ms apply_lag_p99_ms apply_lag_max_ms commit_lag_p50_ms commit_lag_p99_ms commit_lag_max_ms peak_rss_MB ferry_cpu_s check notes"

pfer()  { psql "$FERRY_DST" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
die()   { log "FAILED: $*"; exit 1; }
lsn()      { psrc -c "select pg_current_wal_lsn()"; }
lsn_ge()   { [ "$(psrc -c "select pg_lsn '$1' >= pg_lsn '$2'")" = t ]; }
lsn_diff() { psrc -c "select pg_wal_lsn_diff('$1','$2')::bigint"; }
slot_exists() { [ "$(psrc -c "select count(*) from pg_replication_slots where slot_name='$1'")" = 1 ]; }
flushed() {
  local f; f=$(psrc -c "select confirmed_flush_lsn from pg_replication_slots where slot_name='$1'")
  [ -n "$f" ] || die "slot $1 is missing on the source (or has no confirmed_flush_lsn)"
  echo "$f"
}

if [ "$MODE" = clean ]; then  # what this script leaves behind for the next invocation
  psrc -c "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name='$FSLOT' and not active" >/dev/null
  psrc -c "DROP PUBLICATION IF EXISTS $FSLOT"
  pdstpg -c "DROP DATABASE IF EXISTS $FDB WITH (FORCE)"
  log "dropped slot and publication $FSLOT on the source and database $FDB on the target"
  exit 0
fi

# ---------------------------------------------------------------- clusters, load monitor
[ -x "$FERRY" ] || (cd "$REPO" && cargo build --release -q -p ferry)
[ -x "$FERRY" ] || die "no Ferry binary at $FERRY (set FERRY_BIN)"
if ! psrc -c "select 1" >/dev/null 2>&1; then
  # Stopped (e.g. after a reboot) but intact: start them rather than rebuild the dataset.
  for c in src dst; do
    [ -f "$PERF/$c/PG_VERSION" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PERF/$c" -l "$PERF/$c/server.log" -w start >/dev/null 2>&1 || true
  done
fi
if ! psrc -c "select 1 from pgbench_accounts limit 1" >/dev/null 2>&1 || [ ! -s "$RES/dataset.tsv" ]; then
  bash "$SHARED_BENCH/setup_clusters.sh"
  bash "$SHARED_BENCH/gen_data.sh"
fi
MONITOR_STARTED=0
if ! { [ -f "$LOGS/pidstat.pid" ] && kill -0 "$(cat "$LOGS/pidstat.pid")" 2>/dev/null; }; then
  command -v pidstat >/dev/null || apt-get install -y -qq sysstat >/dev/null
  bash "$SHARED_BENCH/load_monitor.sh" start
  MONITOR_STARTED=1
fi

# Logs, every 2 s, the pids of processes of PostgreSQL servers that are not ours (other
# sessions' test clusters), for loadnote_f. (load_monitor.sh's own logger of them writes to
# $PERF/logs inside a bash -c where PERF is not set, so it records nothing.)
fpg_logger() {
  local ours
  while :; do
    ours=$(for c in src dst; do head -1 "$PERF/$c/postmaster.pid" 2>/dev/null; done | tr '\n' ' ')
    ps -eo pid=,ppid=,args= | awk -v o="$ours" 'BEGIN{n=split(o,a," "); for(i=1;i<=n;i++) p[a[i]]=1}
      {pp[$1]=$2} $3 ~ /(^|\/)postgres$/ && !($1 in p) {pm[$1]=1}
      END{for(x in pp) if ((pp[x] in pm) || (x in pm)) print x}' >> "$LOGS/cdc_foreign_pg_pids.log" || true
    sleep 2
  done
}

# lib.sh's loadnote, except that the Ferry process counts as ours, not as foreign load.
loadnote_f() {
  [ -s "$LOGS/pidstat.log" ] || { echo "load: n/a"; return; }
  local e s a b
  e=$(date +%s); s=$(awk -v e="$e" -v d="$1" 'BEGIN{printf "%d", e-d}')
  a=$(date -d "@$s" +%T); b=$(date -d "@$e" +%T)
  sort -u "$LOGS/cdc_foreign_pg_pids.log" > "$LOGS/.fpids_cdc" 2>/dev/null || : > "$LOGS/.fpids_cdc"
  echo "load: $(awk -v a="$a" -v b="$b" '
    FILENAME == ARGV[1] {fpg[$1]=1; next}
    $1 ~ /^[0-9][0-9]:[0-9][0-9]:[0-9][0-9]$/ && $3 ~ /^[0-9]+$/ && $1>=a && $1<=b {
      t[$1]=1; cmd=""; for(i=10;i<=NF;i++) cmd=cmd" "$i
      if ($3 in fpg) foreign+=$8
      else if (cmd ~ /(postgres|pgbench|psql|pidstat|ferry sync -c)/) mine+=$8
      else foreign+=$8
    }
    END { n=0; for(k in t) n++; if(n==0){print "n/a"; exit}; printf "foreign_cpu=%.0f%% ours=%.0f%%\n", foreign/n, mine/n }' \
    "$LOGS/.fpids_cdc" "$LOGS/pidstat.log")"
}

# ---------------------------------------------------------------- probe table and triggers
# On the source (before Ferry's first copy and before native's copy or refresh, so both carry it).
psrc -c "SET client_min_messages = warning; CREATE TABLE IF NOT EXISTS public.lag_probe (
           id bigserial PRIMARY KEY,
           t_src timestamptz NOT NULL DEFAULT clock_timestamp(),
           t_dst timestamptz)"
# On a target database ($1 = psql function): stamp apply time and (deferred) commit time.
probe_triggers() {
  "$1" <<'SQL'
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS public.lag_probe_commit (id bigint PRIMARY KEY, t_commit timestamptz NOT NULL);
CREATE OR REPLACE FUNCTION public.lag_probe_stamp() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN NEW.t_dst := clock_timestamp(); RETURN NEW; END$$;
CREATE OR REPLACE FUNCTION public.lag_probe_commit_stamp() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN
      INSERT INTO public.lag_probe_commit VALUES (NEW.id, clock_timestamp())
        ON CONFLICT (id) DO UPDATE SET t_commit = EXCLUDED.t_commit;
      RETURN NULL;
    END$$;
DROP TRIGGER IF EXISTS lag_probe_stamp ON public.lag_probe;
CREATE TRIGGER lag_probe_stamp BEFORE INSERT ON public.lag_probe
  FOR EACH ROW EXECUTE FUNCTION public.lag_probe_stamp();
ALTER TABLE public.lag_probe ENABLE ALWAYS TRIGGER lag_probe_stamp;
DROP TRIGGER IF EXISTS lag_probe_commit_stamp ON public.lag_probe;
CREATE CONSTRAINT TRIGGER lag_probe_commit_stamp AFTER INSERT ON public.lag_probe
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.lag_probe_commit_stamp();
ALTER TABLE public.lag_probe ENABLE ALWAYS TRIGGER lag_probe_commit_stamp;
SQL
}

# ---------------------------------------------------------------- native: subscription sub
native_enabled() { [ "$(pdst -c "select subenabled from pg_subscription where subname='$NSLOT'")" = t ]; }
native_off() {
  native_enabled && pdst -c "ALTER SUBSCRIPTION $NSLOT DISABLE"
  while [ "$(psrc -c "select count(*) from pg_replication_slots where slot_name='$NSLOT' and active")" != 0 ]; do sleep 0.2; done
}
native_on() { native_enabled || pdst -c "ALTER SUBSCRIPTION $NSLOT ENABLE"; }
native_streaming() { pdst -c "select substream from pg_subscription where subname='$NSLOT'"; }

if ! psrc -c "select 1 from pg_publication where pubname='pub'" | grep -q 1; then
  psrc -c "CREATE PUBLICATION pub FOR ALL TABLES"
elif [ "$(psrc -c "select count(*) from pg_publication_tables where pubname='pub' and schemaname='public' and tablename='lag_probe'")" = 0 ]; then
  psrc -c "ALTER PUBLICATION pub ADD TABLE public.lag_probe"
fi
if ! pdst -c "select 1 from pg_subscription where subname='$NSLOT'" 2>/dev/null | grep -q 1; then
  log "native: no subscription $NSLOT in target db $DB: creating it with logrep_copy.sh (full copy)"
  bash "$SHARED_BENCH/logrep_copy.sh" 1 0
elif [ "$(pdst -c "select count(*) from pg_subscription_rel where srrelid='public.lag_probe'::regclass" 2>/dev/null || echo 0)" = 0 ]; then
  log "native: adding lag_probe to subscription $NSLOT"
  pdst -c "select 1 from pg_class where oid='public.lag_probe'::regclass" >/dev/null 2>&1 \
    || pg_dump "$SRC" --schema-only -t public.lag_probe | pdst >/dev/null
  native_on
  pdst -c "ALTER SUBSCRIPTION $NSLOT REFRESH PUBLICATION"
  until [ "$(pdst -c "select count(*) from pg_subscription_rel where srsubstate<>'r'")" = 0 ]; do sleep 0.2; done
fi
probe_triggers pdst
NATIVE_STREAMING0=$(native_streaming)

# ---------------------------------------------------------------- Ferry: database bench_ferry
CONFIG_ON=$PERF/ferry_cdc_streaming_on.toml
for s in on off; do
  [ $s = on ] && v=true || v=false
  cat > "$PERF/ferry_cdc_streaming_$s.toml" <<TOML
[source]
url = "$SRC_URI?sslmode=disable"
slot = "$FSLOT"
publication = "$FSLOT"
tables = [$FERRY_TABLES]

[target]
url = "postgres://postgres@127.0.0.1:$DST_PORT/$FDB?sslmode=disable"

[sync]
mode = "full+incremental"
snapshot_workers = 2
heartbeat_interval = "1s"
streaming = $v
TOML
done

FPID=""; FLOG=""; FCPU=""; FRSS=""
ferry_start() {  # $1 = config, $2 = log tag
  FLOG=$LOGS/ferry_cdc_$2.log
  NO_COLOR=1 "$FERRY" sync -c "$1" > "$FLOG" 2>&1 &   # plain log lines (no ANSI colours) in the file
  FPID=$!
}
ferry_alive() { [ -n "$FPID" ] && kill -0 "$FPID" 2>/dev/null; }
ferry_dead() {
  local rc=0; wait "$FPID" || rc=$?
  log "FERRY PROBLEM: ferry sync (pid $FPID) exited with status $rc while it should be streaming; log $FLOG:"
  tail -30 "$FLOG" >&2
  FPID=""
  exit 1
}
ferry_stop() {  # SIGTERM; records FCPU (CPU seconds) and FRSS (peak RSS, MB) of the process
  [ -n "$FPID" ] || return 0
  ferry_alive || ferry_dead
  local tck; tck=$(getconf CLK_TCK)
  FCPU=$(awk -v t="$tck" '{printf "%.2f", ($14+$15)/t}' "/proc/$FPID/stat")
  FRSS=$(awk '/^VmHWM/{printf "%.1f", $2/1024}' "/proc/$FPID/status")
  kill -TERM "$FPID"
  local i=0 rc=0
  while kill -0 "$FPID" 2>/dev/null; do
    i=$((i + 1))
    [ $i -le 600 ] || { log "FERRY PROBLEM: ferry sync (pid $FPID) still running 60 s after SIGTERM; log $FLOG:"; tail -30 "$FLOG" >&2; exit 1; }
    sleep 0.1
  done
  wait "$FPID" || rc=$?
  FPID=""
  [ $rc = 0 ] || { log "FERRY PROBLEM: ferry sync exited with status $rc after SIGTERM; log $FLOG:"; tail -30 "$FLOG" >&2; exit 1; }
  while [ "$(psrc -c "select count(*) from pg_replication_slots where slot_name='$FSLOT' and active")" != 0 ]; do sleep 0.1; done
}
ferry_warnings() {  # WARN/ERROR lines in the current log, for the notes
  local n; n=$(grep -c -E 'WARN|ERROR' "$FLOG" || true)
  [ "$n" = 0 ] || log "FERRY PROBLEM: $n WARN/ERROR lines in $FLOG: $(grep -m1 -E 'WARN|ERROR' "$FLOG")"
  echo "ferry log warn/error lines=$n"
}

# Waits until $1's confirmed_flush_lsn >= $2 (default: the current LSN); the consumer must run.
wait_flushed() {
  local slot=$1 target=${2:-$(lsn)} t0; t0=$(date +%s)
  while ! lsn_ge "$(flushed "$slot")" "$target"; do
    if [ "$slot" = "$FSLOT" ]; then ferry_alive || ferry_dead; fi
    if [ $(( $(date +%s) - t0 )) -gt "$CATCHUP_TIMEOUT" ]; then
      log "HANG: slot $slot still at $(flushed "$slot") after ${CATCHUP_TIMEOUT}s, waiting for $target"
      [ "$slot" = "$FSLOT" ] && { log "FERRY PROBLEM: no progress; log $FLOG:"; tail -30 "$FLOG" >&2; }
      exit 1
    fi
    sleep 0.1
  done
}

cleanup() {
  local rc=$?
  [ -n "${SP:-}" ] && kill "$SP" 2>/dev/null || true
  [ -n "${PP:-}" ] && kill "$PP" 2>/dev/null || true
  [ -n "${FPG:-}" ] && kill "$FPG" 2>/dev/null || true
  if ferry_alive; then
    kill -TERM "$FPID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$FPID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$FPID" 2>/dev/null && { log "ferry sync (pid $FPID) ignored SIGTERM; killing it"; kill -KILL "$FPID"; }
  fi
  # Leave native as logrep_copy.sh left it: streaming, with its original streaming setting.
  if [ -n "${NATIVE_STREAMING0:-}" ] && pdst -c "select 1" >/dev/null 2>&1; then
    [ "$(native_streaming)" = "$NATIVE_STREAMING0" ] || pdst -c "ALTER SUBSCRIPTION $NSLOT SET (streaming = $NATIVE_STREAMING0)" || true
    native_on || true
  fi
  [ "$MONITOR_STARTED" = 1 ] && bash "$SHARED_BENCH/load_monitor.sh" stop || true
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fpg_logger > /dev/null 2>&1 & FPG=$!

# First use (or after the slot, the database or the stored position went away): copy.
if ! pdstpg -c "select 1 from pg_database where datname='$FDB'" | grep -q 1; then
  pdstpg -c "CREATE DATABASE $FDB"
fi
pos=$(pfer -c "select lsn from ferry.progress where pipeline='default'" 2>/dev/null || true)
if ! slot_exists $FSLOT || [ -z "$pos" ] || [ "$pos" = 0/0 ]; then
  log "ferry: first run: copying into $FDB (slot $FSLOT)"
  native_off
  slot_exists $FSLOT && psrc -c "select pg_drop_replication_slot('$FSLOT')" >/dev/null
  pdstpg -c "DROP DATABASE IF EXISTS $FDB WITH (FORCE)"
  pdstpg -c "CREATE DATABASE $FDB"
  if psrc -c "select 1 from pg_publication where pubname='$FSLOT'" | grep -q 1 &&
     [ "$(psrc -c "select count(*) from pg_publication_tables where pubname='$FSLOT' and tablename='lag_probe'")" = 0 ]; then
    psrc -c "ALTER PUBLICATION $FSLOT ADD TABLE public.lag_probe"
  fi
  t0=$(now)
  ferry_start "$CONFIG_ON" initial_copy
  until [ -n "$(pfer -c "select lsn from ferry.progress where pipeline='default' and lsn <> '0/0'" 2>/dev/null || true)" ]; do
    ferry_alive || ferry_dead
    sleep 1
  done
  log "ferry: copy done, streaming after $(el "$t0" "$(now)") s (log $FLOG)"
  wait_flushed $FSLOT
  ferry_stop
fi
probe_triggers pfer
# The preflight, for the log. Expected: one FAIL, pgbench_history has no primary key (pgbench
# only inserts into it, so neither consumer needs one; native's publication carries it too).
"$FERRY" check -c "$CONFIG_ON" > "$LOGS/ferry_cdc_check.log" 2>&1 || true
log "ferry check: $(tail -1 "$LOGS/ferry_cdc_check.log"); FAIL lines: $(grep FAIL "$LOGS/ferry_cdc_check.log" | sed 's/^ *//' | tr '\n' ' ')"

# ---------------------------------------------------------------- measurements
check() {  # $1 = psql function of the target database
  local q="select (select count(*) from pgbench_history)||'/'||(select sum(abalance) from pgbench_accounts)||'/'||(select count(*) from lag_probe)"
  local a b; a=$(psrc -c "$q"); b=$("$1" -c "$q")
  if [ "$a" = "$b" ]; then echo "consistent($a)"; else
    log "!!!!!!!! MISMATCH: source $a, target $b !!!!!!!!"
    echo "MISMATCH(src=$a,dst=$b)"
  fi
}
sampler() {  # $1 = csv file, $2 = slot; runs until killed
  echo "epoch,src_lsn,confirmed_flush_lsn,lag_bytes,write_lag,flush_lag,replay_lag" > "$1"
  while :; do
    psrc -F, -c "select extract(epoch from clock_timestamp()), pg_current_wal_lsn(), s.confirmed_flush_lsn,
      pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint,
      coalesce(extract(epoch from r.write_lag),0), coalesce(extract(epoch from r.flush_lag),0), coalesce(extract(epoch from r.replay_lag),0)
      from pg_replication_slots s left join pg_stat_replication r on r.pid = s.active_pid
      where s.slot_name='$2'" >> "$1" || true
    sleep 1
  done
}
pgbench_stats() {  # $1 = pgbench log -> "tps txns"
  echo "$(awk '/^tps = .*without initial/{print $3}' "$1") $(awk '/number of transactions actually processed/{print $NF}' "$1")"
}
emit() {  # appends one row from the associative array R
  [ -f "$TSV" ] || echo "$COLS" | tr ' ' '\t' > "$TSV"
  local c line=""
  for c in $COLS; do line+="${R[$c]:-}"$'\t'; done
  printf '%s\n' "${line%$'\t'}" >> "$TSV"
  log "RESULT $(for c in $COLS; do [ -n "${R[$c]:-}" ] && printf '%s=%s ' "$c" "${R[$c]}"; done)"
}

# Brings consumer $1 (ferry|native) to the state a measurement starts from: the other one
# stopped, this one caught up with everything written so far. Ferry: a catch-up process is
# stopped and, unless $3 = stopped, a fresh one is started for the measurement ($2 = config).
prepare() {
  local who=$1 config=${2:-$CONFIG_ON} after=${3:-running} tag=${4:-}
  if [ "$who" = ferry ]; then
    native_off
    ferry_start "$config" "${tag}_catchup"
    wait_flushed $FSLOT
    ferry_stop
    if [ "$after" = running ]; then
      checkpoint_both
      ferry_start "$config" "$tag"
      wait_flushed $FSLOT
    fi
  else
    ferry_stop
    native_on
    wait_flushed $NSLOT
    checkpoint_both
    wait_flushed $NSLOT
  fi
}

run_backlog() {  # $1 = ferry|native, $2 = run id
  local who=$1 run=$2 slot tag L0 L1 tps tx wal t0 t2 ld ok
  declare -gA R=()
  tag=${who}_backlog_run$run
  if [ "$who" = ferry ]; then
    slot=$FSLOT; prepare ferry "$CONFIG_ON" stopped "$tag"; checkpoint_both
  else
    slot=$NSLOT; prepare native; native_off
  fi
  L0=$(lsn)
  pgbench -n -c 4 -j 2 -T "$DUR" "$SRC" > "$LOGS/cdc_$tag.pgbench.log" 2>&1
  L1=$(lsn)
  read -r tps tx < <(pgbench_stats "$LOGS/cdc_$tag.pgbench.log")
  wal=$(lsn_diff "$L1" "$L0")
  psrc -c "CHECKPOINT"
  sampler "$RES/cdc_lag_$tag.csv" $slot & SP=$!
  t0=$(now)
  if [ "$who" = ferry ]; then ferry_start "$CONFIG_ON" "$tag"; else native_on; fi
  wait_flushed $slot "$L1"
  t2=$(now)
  kill $SP; wait $SP 2>/dev/null || true; SP=""
  ld=$(loadnote_f "$(el "$t0" "$t2")")
  if [ "$who" = ferry ]; then R[check]=$(check pfer); R[notes]="$(ferry_warnings); $ld"; ferry_stop
    R[peak_rss_MB]=$FRSS; R[ferry_cpu_s]=$FCPU
  else R[check]=$(check pdst); R[notes]=$ld; fi
  R[method]=$([ "$who" = ferry ] && echo ferry || echo native-logical-repl)
  R[mode]=backlog; R[variant]=pgbench-c4-j2; R[run]=$run; R[src_tps]=$tps; R[txns]=$tx; R[changes]=$((tx * 4))
  R[wal_MB]=$(awk -v w="$wal" 'BEGIN{printf "%.1f", w/1048576}')
  R[pgbench_s]=$DUR; R[catchup_after_end_s]=$(el "$t0" "$t2"); R[start_to_caughtup_s]=$(el "$t0" "$t2")
  R[applied_changes_per_s]=$(awk -v n=$((tx * 4)) -v a="$t0" -v c="$t2" 'BEGIN{printf "%.0f", n/(c-a)}')
  read -r 'R[lag_max_MB]' 'R[lag_avg_MB]' 'R[replay_lag_max_s]' < <(awk -F, 'NR>1 {n++; s+=$4; if($4>m)m=$4; if($7>rl)rl=$7} END{printf "%.1f %.1f %.2f\n", m/1048576, (n?s/n/1048576:0), rl}' "$RES/cdc_lag_$tag.csv")
  emit
}

run_pgbench() {  # $1 = ferry|native, $2 = run id
  local who=$1 run=$2 slot db tag id0 L0 L1 tps tx wal t0 t1 t2 stats ok
  declare -gA R=()
  tag=${who}_pgbench_run$run
  if [ "$who" = ferry ]; then slot=$FSLOT; db=pfer; prepare ferry "$CONFIG_ON" running "$tag"
  else slot=$NSLOT; db=pdst; prepare native; fi
  id0=$(psrc -c "select coalesce(max(id), 0) from lag_probe")
  L0=$(lsn)
  sampler "$RES/cdc_lag_$tag.csv" $slot & SP=$!
  # One probe row per 50 ms for $DUR seconds, each in its own transaction, from one session.
  psrc -c "DO \$\$ DECLARE stop timestamptz := clock_timestamp() + interval '$DUR s'; BEGIN
             WHILE clock_timestamp() < stop LOOP
               INSERT INTO lag_probe DEFAULT VALUES; COMMIT; PERFORM pg_sleep(0.05);
             END LOOP; END \$\$" & PP=$!
  t0=$(now)
  pgbench -n -c 4 -j 2 -T "$DUR" "$SRC" > "$LOGS/cdc_$tag.pgbench.log" 2>&1
  t1=$(now)
  wait $PP; PP=""
  L1=$(lsn)
  wait_flushed $slot "$L1"
  t2=$(now)
  kill $SP; wait $SP 2>/dev/null || true; SP=""
  read -r tps tx < <(pgbench_stats "$LOGS/cdc_$tag.pgbench.log")
  wal=$(lsn_diff "$L1" "$L0")
  stats=$($db -F'|' -c "select count(*), count(p.t_dst), count(c.t_commit),
      round((1000 * percentile_cont(0.5)  within group (order by extract(epoch from p.t_dst - p.t_src)::float8))::numeric, 1),
      round((1000 * percentile_cont(0.99) within group (order by extract(epoch from p.t_dst - p.t_src)::float8))::numeric, 1),
      round(1000 * max(extract(epoch from p.t_dst - p.t_src)), 1),
      round((1000 * percentile_cont(0.5)  within group (order by extract(epoch from c.t_commit - p.t_src)::float8))::numeric, 1),
      round((1000 * percentile_cont(0.99) within group (order by extract(epoch from c.t_commit - p.t_src)::float8))::numeric, 1),
      round(1000 * max(extract(epoch from c.t_commit - p.t_src)), 1)
    from lag_probe p left join lag_probe_commit c using (id) where p.id > $id0")
  local n ndst ncommit nsrc
  IFS='|' read -r n ndst ncommit 'R[apply_lag_p50_ms]' 'R[apply_lag_p99_ms]' 'R[apply_lag_max_ms]' \
    'R[commit_lag_p50_ms]' 'R[commit_lag_p99_ms]' 'R[commit_lag_max_ms]' <<< "$stats"
  nsrc=$(psrc -c "select count(*) from lag_probe where id > $id0")
  local pnote="probes src=$nsrc dst=$n stamped=$ndst committed=$ncommit"
  [ "$nsrc" = "$n" ] && [ "$n" = "$ndst" ] && [ "$n" = "$ncommit" ] || log "!!!!!!!! PROBES INCOMPLETE: $pnote !!!!!!!!"
  ld=$(loadnote_f "$(el "$t0" "$t2")")
  if [ "$who" = ferry ]; then R[check]=$(check pfer); R[notes]="$pnote; $(ferry_warnings); $ld"; ferry_stop
    R[peak_rss_MB]=$FRSS; R[ferry_cpu_s]=$FCPU
  else R[check]=$(check pdst); R[notes]="$pnote; $ld"; fi
  R[method]=$([ "$who" = ferry ] && echo ferry || echo native-logical-repl)
  R[mode]=pgbench; R[variant]=pgbench-c4-j2; R[run]=$run; R[src_tps]=$tps; R[txns]=$tx; R[changes]=$((tx * 4))
  R[wal_MB]=$(awk -v w="$wal" 'BEGIN{printf "%.1f", w/1048576}')
  R[pgbench_s]=$(el "$t0" "$t1"); R[catchup_after_end_s]=$(el "$t1" "$t2"); R[start_to_caughtup_s]=$(el "$t0" "$t2")
  R[applied_changes_per_s]=$(awk -v n=$((tx * 4)) -v a="$t0" -v c="$t2" 'BEGIN{printf "%.0f", n/(c-a)}')
  R[probes]=$n
  read -r 'R[lag_max_MB]' 'R[lag_avg_MB]' 'R[replay_lag_max_s]' < <(awk -F, -v t0="$t0" -v t1="$t1" 'NR>1 && $1>=t0 && $1<=t1 {n++; s+=$4; if($4>m)m=$4; if($7>rl)rl=$7} END{printf "%.1f %.1f %.2f\n", m/1048576, (n?s/n/1048576:0), rl}' "$RES/cdc_lag_$tag.csv")
  emit
}

run_bulk() {  # $1 = ferry|native, $2 = run id, $3 = streaming on|off
  local who=$1 run=$2 stream=$3 slot tag L0 L1 t0 t1 t2 wal ld
  declare -gA R=()
  tag=${who}_bulk_stream${stream}_run$run
  if [ "$who" = ferry ]; then
    slot=$FSLOT; prepare ferry "$PERF/ferry_cdc_streaming_$stream.toml" running "$tag"
  else
    slot=$NSLOT; ferry_stop; native_off
    [ "$(native_streaming)" = "$([ "$stream" = on ] && echo t || echo f)" ] || pdst -c "ALTER SUBSCRIPTION $NSLOT SET (streaming = $stream)"
    prepare native
  fi
  L0=$(lsn)
  t0=$(now)
  psrc -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 1000000"
  t1=$(now); L1=$(lsn)
  wait_flushed $slot "$L1"
  t2=$(now)
  wal=$(lsn_diff "$L1" "$L0")
  ld=$(loadnote_f "$(el "$t0" "$t2")")
  if [ "$who" = ferry ]; then R[check]=$(check pfer); R[notes]="source UPDATE=$(el "$t0" "$t1")s; $(ferry_warnings); $ld"; ferry_stop
    R[peak_rss_MB]=$FRSS; R[ferry_cpu_s]=$FCPU
  else R[check]=$(check pdst); R[notes]="source UPDATE=$(el "$t0" "$t1")s; $ld"; fi
  R[method]=$([ "$who" = ferry ] && echo ferry || echo native-logical-repl)
  R[mode]=bulk; R[variant]=streaming=$stream; R[run]=$run; R[txns]=1; R[changes]=1000000
  R[wal_MB]=$(awk -v w="$wal" 'BEGIN{printf "%.1f", w/1048576}')
  R[pgbench_s]=$(el "$t0" "$t1"); R[catchup_after_end_s]=$(el "$t1" "$t2"); R[start_to_caughtup_s]=$(el "$t0" "$t2")
  R[applied_changes_per_s]=$(awk -v a="$t0" -v c="$t2" 'BEGIN{printf "%.0f", 1000000/(c-a)}')
  emit
}

STAMP=$(date +%s)
log "cdc.sh: modes '$MODES', $ROUNDS round(s), pgbench $DUR s, runs ${STAMP}01.., ferry $FERRY"
for mode in $MODES; do
  for r in $(seq 1 "$ROUNDS"); do
    run=$((STAMP * 100 + r))
    order="ferry native"; [ $((r % 2)) = 0 ] && order="native ferry"
    case $mode in
      backlog) for who in $order; do run_backlog "$who" $run; done ;;
      pgbench) for who in $order; do run_pgbench "$who" $run; done ;;
      bulk)    for s in $BULK_STREAMING; do for who in $order; do run_bulk "$who" $run "$s"; done; done ;;
    esac
  done
done
ferry_stop

# Medians of this invocation's runs; best = min for times and lags, max for rates.
python3 - "$TSV" "$STAMP" <<'PY'
import csv, statistics, sys
path, stamp = sys.argv[1], sys.argv[2]
rows = [r for r in csv.DictReader(open(path), delimiter="\t") if r["run"].startswith(stamp)]
metrics = {
    "backlog": [("applied_changes_per_s", "drain changes/s", True), ("catchup_after_end_s", "drain s", False),
                ("src_tps", "source TPS", True)],
    "pgbench": [("apply_lag_p50_ms", "apply lag p50 ms", False), ("apply_lag_p99_ms", "apply lag p99 ms", False),
                ("commit_lag_p50_ms", "commit lag p50 ms", False), ("commit_lag_p99_ms", "commit lag p99 ms", False),
                ("commit_lag_max_ms", "commit lag max ms", False), ("catchup_after_end_s", "catch-up after end s", False),
                ("lag_max_MB", "slot lag max MB", False), ("src_tps", "source TPS", True)],
    "bulk": [("catchup_after_end_s", "s after commit", False), ("peak_rss_MB", "Ferry peak RSS MB", False),
             ("ferry_cpu_s", "Ferry CPU s", False)],
}
def num(x):
    try: return float(x)
    except (TypeError, ValueError): return None
def cell(vals, higher):
    v = [x for x in vals if x is not None]
    if not v: return "-", None
    med = statistics.median(v)
    return f"{med:,.1f} ({(max(v) if higher else min(v)):,.1f})", med
bad = [r for r in rows if not r["check"].startswith("consistent")]
print(f"\n{'mode':8} {'variant':16} {'metric':22} {'ferry median (best)':>22} {'native median (best)':>22} {'ferry/native':>12}")
for mode in ["backlog", "pgbench", "bulk"]:
    variants = sorted({r["variant"] for r in rows if r["mode"] == mode})
    for variant in variants:
        sel = [r for r in rows if r["mode"] == mode and r["variant"] == variant]
        nf = sum(r["method"] == "ferry" for r in sel); nn = len(sel) - nf
        for key, label, higher in metrics[mode]:
            f, fm = cell([num(r[key]) for r in sel if r["method"] == "ferry"], higher)
            n, nm = cell([num(r[key]) for r in sel if r["method"] != "ferry"], higher)
            ratio = f"{fm / nm:.2f}" if fm is not None and nm else "-"
            print(f"{mode:8} {variant:16} {label:22} {f:>22} {n:>22} {ratio:>12}")
        print(f"{'':8} {'':16} {'runs':22} {nf:>22} {nn:>22}")
print("\nbest = min for seconds, lags and memory, max for rates. ratio = ferry median / native median:"
      "\nabove 1 is better for rates and TPS, below 1 is better for seconds and lags.")
if bad:
    print("\n!!! CONSISTENCY FAILURES:")
    for r in bad: print(f"!!!   {r['method']} {r['mode']} {r['variant']} run {r['run']}: {r['check']}")
PY
