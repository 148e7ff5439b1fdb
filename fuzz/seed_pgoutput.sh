#!/usr/bin/env bash
# Regenerates the seed corpus of the `pgoutput` target from the golden fixtures in
# crates/ferry-postgres/tests/fixtures/pgoutput/ (records: big-endian u32 length, payload).
# Seeds, each named by content hash as libFuzzer names its inputs:
#   - single messages (mode byte 0 outside a stream block, 1 inside), at most 8 per message
#     kind and place, so every kind is there without thousands of near-identical inserts;
#   - sessions (mode byte 2) of about 32 consecutive records, cut only outside stream blocks,
#     so the decoder's stream state starts right.
# The corpus is git-ignored; run this after a fresh checkout or after recapturing the
# fixtures. Needs only bash 4 and coreutils (od, dd, sha1sum).
#
#   fuzz/seed_pgoutput.sh [fixture-dir]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
fixtures="${1:-$here/../crates/ferry-postgres/tests/fixtures/pgoutput}"
out="$here/corpus/pgoutput"
mkdir -p "$out"

seed() {
    local mode="$1" tmp name
    tmp="$(mktemp)"
    { printf '%b' "$mode"; cat; } >"$tmp"
    name="$(sha1sum <"$tmp" | cut -c1-40)"
    mv "$tmp" "$out/$name"
}

slice() { # file offset count
    dd if="$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none
}

declare -A seeded
for fixture in "$fixtures"/*.bin; do
    size="$(wc -c <"$fixture")"
    offset=0 in_stream=0 records=0 chunk_start=0
    while [ "$offset" -lt "$size" ]; do
        read -r b0 b1 b2 b3 tag < <(od -An -tu1 -j "$offset" -N5 "$fixture")
        len=$(((b0 << 24) | (b1 << 16) | (b2 << 8) | b3))
        key="$tag/$in_stream"
        if [ "${seeded[$key]:-0}" -lt 8 ]; then
            slice "$fixture" "$((offset + 4))" "$len" | seed "\\000$in_stream"
            seeded[$key]=$((${seeded[$key]:-0} + 1))
        fi
        case "$tag" in
            83) in_stream=1 ;; # 'S' Stream Start
            69) in_stream=0 ;; # 'E' Stream Stop
        esac
        offset=$((offset + 4 + len))
        records=$((records + 1))
        if { [ "$records" -ge 32 ] && [ "$in_stream" -eq 0 ]; } || [ "$offset" -ge "$size" ]; then
            slice "$fixture" "$chunk_start" "$((offset - chunk_start))" | seed '\0002'
            chunk_start="$offset"
            records=0
        fi
    done
    [ "$offset" -eq "$size" ] || { echo "$fixture ends inside a record" >&2; exit 1; }
done
echo "seeded $out ($(ls "$out" | wc -l) files)"
