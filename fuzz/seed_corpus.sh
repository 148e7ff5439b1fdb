#!/usr/bin/env bash
# Regenerates the seed corpus of the `backend_messages` target from the golden fixture:
# the whole recorded session (fed at once, in 1-byte and in 7-byte chunks) and every
# backend message on its own. The corpus is git-ignored; run this after a fresh checkout or
# after recapturing the fixture. Needs only coreutils (od, dd, sha1sum).
#
#   fuzz/seed_corpus.sh [fixture.bin]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
fixture="${1:-$here/../crates/ferry-pgwire/tests/fixtures/pg15_scram_pgoutput_session.bin}"
out="$here/corpus/backend_messages"
mkdir -p "$out"

# A target input is one byte choosing the chunk size (0 = all at once), then wire bytes.
# Seeds are named by content hash, as libFuzzer names the inputs it adds.
seed() {
    local selector="$1" tmp name
    tmp="$(mktemp)"
    { printf '%b' "$selector"; cat; } >"$tmp"
    name="$(sha1sum <"$tmp" | cut -c1-40)"
    mv "$tmp" "$out/$name"
}

seed '\0000' <"$fixture"
seed '\0001' <"$fixture"
seed '\0007' <"$fixture"

size="$(wc -c <"$fixture")"
offset=0
frames=0
while [ "$offset" -lt "$size" ]; do
    # Frame: tag byte, then a big-endian i32 length that counts itself but not the tag.
    read -r b0 b1 b2 b3 < <(od -An -tu1 -j "$((offset + 1))" -N4 "$fixture")
    len=$((((b0 << 24) | (b1 << 16) | (b2 << 8) | b3) + 1))
    dd if="$fixture" iflag=skip_bytes,count_bytes skip="$offset" count="$len" status=none | seed '\0000'
    offset=$((offset + len))
    frames=$((frames + 1))
done
[ "$offset" -eq "$size" ] || { echo "fixture ends inside a frame" >&2; exit 1; }
echo "seeded $out: whole session x3 and $frames frames ($(ls "$out" | wc -l) files)"
