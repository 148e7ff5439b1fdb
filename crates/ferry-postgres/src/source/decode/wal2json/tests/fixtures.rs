//! The wal2json decoder against what PostgreSQL 15.18 with wal2json 2.5 sent
//! (`tests/fixtures/wal2json/`, captured by its `capture.sh`; see its README): every payload
//! of every scenario decodes, in one session per scenario, to exactly the changes below, and
//! every type-zoo value is the text `SELECT col::text` printed on the source.

use bytes::Bytes;
use ferry_core::{Change, Datum, Relation, Row};

use super::super::Wal2JsonDecoder;
use super::render;
use crate::source::decode::test_render::assert_toasted_bodies;

/// The fixtures, by scenario: one payload per line.
const FIXTURES: [(&str, &str); 9] = [
    (
        "keyed",
        include_str!("../../../../../tests/fixtures/wal2json/keyed.jsonl"),
    ),
    (
        "full",
        include_str!("../../../../../tests/fixtures/wal2json/full.jsonl"),
    ),
    (
        "toast",
        include_str!("../../../../../tests/fixtures/wal2json/toast.jsonl"),
    ),
    (
        "keyless",
        include_str!("../../../../../tests/fixtures/wal2json/keyless.jsonl"),
    ),
    (
        "truncate",
        include_str!("../../../../../tests/fixtures/wal2json/truncate.jsonl"),
    ),
    (
        "messages",
        include_str!("../../../../../tests/fixtures/wal2json/messages.jsonl"),
    ),
    (
        "names",
        include_str!("../../../../../tests/fixtures/wal2json/names.jsonl"),
    ),
    (
        "type_zoo",
        include_str!("../../../../../tests/fixtures/wal2json/type_zoo.jsonl"),
    ),
    (
        "lossy",
        include_str!("../../../../../tests/fixtures/wal2json/lossy.jsonl"),
    ),
];

const TYPE_ZOO_TEXT: &str =
    include_str!("../../../../../tests/fixtures/wal2json/type_zoo_text.json");
const DOCS_BODY: &str = include_str!("../../../../../tests/fixtures/wal2json/docs_body.txt");
const DOCS_FULL_BODY: &str =
    include_str!("../../../../../tests/fixtures/wal2json/docs_full_body.txt");

fn fixture(name: &str) -> &'static str {
    FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .unwrap()
}

/// Every payload of every fixture.
pub(in super::super) fn all_payloads() -> Vec<&'static [u8]> {
    FIXTURES
        .iter()
        .flat_map(|(_, text)| text.lines())
        .map(str::as_bytes)
        .collect()
}

/// A fixture decoded in order by one decoder, as a session would be.
fn changes(name: &str) -> Vec<Change> {
    let mut decoder = Wal2JsonDecoder::new();
    fixture(name)
        .lines()
        .enumerate()
        .flat_map(|(i, line)| {
            decoder
                .decode(line.as_bytes())
                .unwrap_or_else(|e| panic!("{name} line {}: {e}", i + 1))
        })
        .collect()
}

// Rendered by `super::render`: B/C with their LSNs and commit time (µs since 2000-01-01),
// R with key columns starred, rows as (text, null, toast); long values as <n bytes>.

/// items (primary key): insert, update, key change (old key), delete; by_email (REPLICA
/// IDENTITY USING INDEX on email, primary key id): the index is the key once an identity
/// shows it, and an update that keeps it sends no key.
const KEYED: &str = r#"
B xid=744 final=0/1564330 time=848883994311774
R 1 "public"."items" d [id*:23 label:25]
I 1 new=("1", "one")
I 1 new=("2", "two")
I 1 new=("3", "three")
C commit=0/1564330 end=0/1564360 time=848883994311774
B xid=745 final=0/15643B8 time=848883994312794
U 1 new=("2", "two, updated")
C commit=0/15643B8 end=0/15643E8 time=848883994312794
B xid=746 final=0/1564480 time=848883994313016
U 1 key=("3", null) new=("30", "three")
C commit=0/1564480 end=0/15644B0 time=848883994313016
B xid=747 final=0/15644F0 time=848883994313191
D 1 key=("1", null)
C commit=0/15644F0 end=0/1564520 time=848883994313191
B xid=748 final=0/1564898 time=848883994317376
R 2 "public"."by_email" d [id*:23 email:25 note:25]
I 2 new=("1", "a@example.com", "first")
R 2 "public"."by_email" d [id:23 email*:25 note:25]
U 2 new=("1", "a@example.com", "second")
U 2 key=(null, "a@example.com", null) new=("1", "b@example.com", "second")
D 2 key=(null, "b@example.com", null)
C commit=0/1564898 end=0/15648C8 time=848883994317376
"#;

/// events_log (REPLICA IDENTITY FULL, no key, duplicate rows): described without a key
/// until an identity shows the whole row; then `f`, old rows whole.
const FULL: &str = r#"
B xid=749 final=0/1564988 time=848883994755599
R 1 "public"."events_log" d [kind:25 payload:25]
I 1 new=("click", "a")
I 1 new=("click", "a")
I 1 new=("view", null)
C commit=0/1564988 end=0/15649B8 time=848883994755599
B xid=750 final=0/1564A10 time=848883994756198
R 1 "public"."events_log" f [kind*:25 payload*:25]
U 1 old=("view", null) new=("view", "b")
C commit=0/1564A10 end=0/1564A40 time=848883994756198
B xid=751 final=0/1564A88 time=848883994759296
D 1 old=("click", "a")
C commit=0/1564A88 end=0/1564AB8 time=848883994759296
"#;

/// docs: a 12,000-byte body stored out of line, left out of the update that does not touch
/// it (toast), then changed; docs_full (FULL, no key): the old row has the body, the new one
/// does not.
const TOAST: &str = r#"
B xid=752 final=0/1567EA8 time=848883995083242
R 1 "public"."docs" d [id*:23 version:23 body:25]
I 1 new=("1", "1", <12000 bytes>)
C commit=0/1567EA8 end=0/1567ED8 time=848883995083242
B xid=753 final=0/1567F70 time=848883995083628
U 1 new=("1", "2", toast)
C commit=0/1567F70 end=0/1567FA0 time=848883995083628
B xid=754 final=0/15681C8 time=848883995213590
U 1 new=("1", "3", "short")
C commit=0/15681C8 end=0/15681F8 time=848883995213590
B xid=755 final=0/156B548 time=848883995215441
R 2 "public"."docs_full" d [id:23 version:23 body:25]
I 2 new=("1", "1", <12000 bytes>)
C commit=0/156B548 end=0/156B578 time=848883995215441
B xid=756 final=0/156E538 time=848883995215690
R 2 "public"."docs_full" f [id*:23 version*:23 body*:25]
U 2 old=("1", "1", <12000 bytes>) new=("1", "2", toast)
C commit=0/156E538 end=0/156E568 time=848883995215690
"#;

/// nokey (no key, REPLICA IDENTITY DEFAULT): wal2json drops the UPDATE and the DELETE (a
/// WARNING on the server), leaving empty transactions: only `ferry check` can catch it.
const KEYLESS: &str = r#"
B xid=757 final=0/156E5A8 time=848883995689344
R 1 "public"."nokey" d [a:23 b:25]
I 1 new=("1", "x")
C commit=0/156E5A8 end=0/156E5D8 time=848883995689344
B xid=758 final=0/156E620 time=848883995689709
C commit=0/156E620 end=0/156E650 time=848883995689709
B xid=759 final=0/156E688 time=848883995689856
C commit=0/156E688 end=0/156E6B8 time=848883995689856
"#;

/// `TRUNCATE parents, children RESTART IDENTITY` and `TRUNCATE parents CASCADE`: two T
/// objects each, one Truncate each; the options are not sent.
const TRUNCATE: &str = r#"
B xid=760 final=0/156E800 time=848883996073599
R 1 "public"."parents" d [id*:23 name:25]
I 1 new=("1", "p")
C commit=0/156E800 end=0/156E830 time=848883996073599
B xid=761 final=0/156E9B0 time=848883996074414
R 2 "public"."children" d [id*:23 parent_id:23]
I 2 new=("1", "1")
C commit=0/156E9B0 end=0/156E9E0 time=848883996074414
B xid=762 final=0/15719D0 time=848883996080688
T [1,2] cascade=false restart_identity=false
C commit=0/15719D0 end=0/1571C50 time=848883996080688
B xid=763 final=0/1571D98 time=848883996081512
I 1 new=("1", "q")
C commit=0/1571D98 end=0/1571DC8 time=848883996081512
B xid=764 final=0/1572EE8 time=848883996087202
T [1,2] cascade=false restart_identity=false
C commit=0/1572EE8 end=0/15730F0 time=848883996087202
"#;

/// A transactional message, then two non-transactional ones (the second from a transaction
/// that rolled back).
const MESSAGES: &str = r#"
B xid=765 final=0/15731B8 time=848883996413631
R 1 "public"."items" d [id*:23 label:25]
I 1 new=("40", "forty")
M transactional=true lsn=0/15731B8 prefix="ferry" content="hello"
C commit=0/15731B8 end=0/15731E8 time=848883996413631
M transactional=false lsn=0/1573230 prefix="ferry" content="heartbeat \"1\"\n"
M transactional=false lsn=0/1573288 prefix="ferry" content="from an aborted transaction"
"#;

/// A schema and table needing quotes, a column named `user`, one `Mixed Case`; a key change.
const NAMES: &str = r#"
B xid=767 final=0/1574F30 time=848883996821491
R 1 "My Schema"."Odd \"Name\"" d [user*:23 Mixed Case:25 select:23]
I 1 new=("1", "x", "2")
C commit=0/1574F30 end=0/1574F60 time=848883996821491
B xid=768 final=0/1574FF8 time=848883996822475
U 1 key=("1", null, null) new=("2", "x", "2")
C commit=0/1574FF8 end=0/1575028 time=848883996822475
"#;

/// The type zoo, five rows (see `type_zoo_values_are_the_text_postgresql_prints`).
const TYPE_ZOO: &str = r#"
B xid=769 final=0/1576C58 time=848883997199887
R 1 "public"."zoo" d [id*:23 i2:21 i4:23 i8:20 n1:1700 n2:1700 f4:700 f8:701 f8b:701 b:16 t:25 vc:1043 bp:1042 ch:18 by:17 d:1082 tm:1083 ts:1114 tstz:1184 iv:1186 u:2950 j:114 jb:3802 ai:1007 at:1009 pt:600 ip:869 mo:16385 o:26 vb:1562 nm:19 mac:829 rng:3904]
I 1 new=("1", "-32768", "2147483647", "-9223372036854775808", "12345678901234567890.123456789012", "-0.000001", "0.1", "0.1", "1e+20", "true", "it's \"q\" \\ back\nline\ttab ünï 🚀", "short", "ab   ", "x", "\\xdeadbeef00", "2024-01-02", "03:04:05.123456", "2024-01-02 03:04:05.123456", "2024-01-02 03:04:05.123456+00", "1 year 2 mons 3 days 04:05:06.789", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "{\"a\": [1, 2.50], \"b\": \"x\\\"y\"}", "{\"a\": [1, 2.50], \"b\": \"x\\\"y\"}", "{1,NULL,3}", "{\"a b\",\"c\\\"d\",NULL}", "(1.5,-2.25)", "192.168.0.1/24", "happy", "4294967295", "1011", "somename", "08:00:2b:01:02:03", "[1,10)")
C commit=0/1576C58 end=0/1576C88 time=848883997199887
B xid=770 final=0/1576D90 time=848883997200084
I 1 new=("2", null, null, null, null, "999999.999999", null, null, null, "false", "", null, null, null, "\\x", "0044-03-15 BC", "24:00:00", "infinity", "-infinity", "-1 days +00:00:00.000001", null, null, null, "{}", "{}", "(1e+20,-0.5)", null, null, null, null, null, null, null)
C commit=0/1576D90 end=0/1576DC0 time=848883997200084
B xid=771 final=0/1576EA0 time=848883997200209
I 1 new=("3", "0", null, null, "-0.0000000001", null, "-0", "1.5e-07", "1.2345678901234568e+17", null, null, null, null, null, null, "infinity", "00:00:00", "0001-01-01 00:00:00 BC", "1999-12-31 23:59:59.999999+00", "00:00:00", null, null, null, null, null, "(NaN,0)", null, null, null, null, null, null, null)
C commit=0/1576EA0 end=0/1576ED0 time=848883997200209
B xid=772 final=0/1576F78 time=848883997200317
I 1 new=("4", null, null, null, null, null, "3.4028235e+38", "-2.2250738585072014e-308", null, null, null, null, null, null, null, "-infinity", null, "294276-12-31 23:59:59.999999", "4714-11-24 00:00:00+00 BC", null, null, null, null, null, null, null, null, null, null, null, null, null, null)
C commit=0/1576F78 end=0/1576FA8 time=848883997200317
B xid=773 final=0/1577030 time=848883997200405
I 1 new=("5", null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null)
C commit=0/1577030 end=0/1577060 time=848883997200405
"#;

/// timetz and money: wal2json sends their output text, so both are exact.
const LOSSY: &str = r#"
B xid=774 final=0/1577150 time=848883997703692
R 1 "public"."lossy_timetz" d [id*:23 tz:1266]
I 1 new=("1", "03:04:05+02")
C commit=0/1577150 end=0/1577180 time=848883997703692
B xid=775 final=0/1577268 time=848883997704173
R 2 "public"."lossy_money" d [id*:23 m:790]
I 2 new=("1", "$12.34")
C commit=0/1577268 end=0/1577298 time=848883997704173
"#;

#[test]
fn every_scenario_decodes_to_its_exact_changes() {
    for (name, expected) in [
        ("keyed", KEYED),
        ("full", FULL),
        ("toast", TOAST),
        ("keyless", KEYLESS),
        ("truncate", TRUNCATE),
        ("messages", MESSAGES),
        ("names", NAMES),
        ("type_zoo", TYPE_ZOO),
        ("lossy", LOSSY),
    ] {
        assert_eq!(
            render(&changes(name)),
            expected.trim_start_matches('\n'),
            "{name}"
        );
    }
}

#[test]
fn toasted_values_arrive_whole_or_as_unchanged() {
    assert_toasted_bodies(&changes("toast"), DOCS_BODY, DOCS_FULL_BODY);
}

/// Where the text the plugin sends differs from `SELECT col::text`, and why.
fn type_zoo_exception(id: u64, column: &str) -> Option<Option<&'static str>> {
    match (id, column) {
        // The cast of char(n) to text drops the padding; the output function keeps it.
        (1, "bp") => Some(Some("ab   ")),
        // wal2json prints NaN and ±Infinity of numeric and float types as JSON null.
        (2, "n1" | "f4" | "f8" | "f8b") => Some(None),
        _ => None,
    }
}

#[test]
fn type_zoo_values_are_the_text_postgresql_prints() {
    let changes = changes("type_zoo");
    assert_eq!(
        kinds(&changes),
        "B R I C B I C B I C B I C B I C",
        "one transaction per row"
    );
    let relation: &Relation = changes
        .iter()
        .find_map(|c| match c {
            Change::Relation { relation, .. } => Some(relation),
            _ => None,
        })
        .unwrap();
    let rows: Vec<&Row> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Insert { new, .. } => Some(new),
            _ => None,
        })
        .collect();
    let expected: Vec<serde_json::Value> = serde_json::from_str(TYPE_ZOO_TEXT).unwrap();
    assert_eq!(expected.len(), rows.len() * relation.columns.len());
    for entry in &expected {
        let id = entry["id"].as_u64().unwrap();
        let column = entry["column"].as_str().unwrap();
        let text = type_zoo_exception(id, column).unwrap_or(entry["text"].as_str());
        let position = relation
            .columns
            .iter()
            .position(|c| c.name == column)
            .unwrap();
        let row = rows[usize::try_from(id).unwrap() - 1];
        let want = text.map_or(Datum::Null, |t| {
            Datum::Text(Bytes::copy_from_slice(t.as_bytes()))
        });
        assert_eq!(row.0[position], want, "row {id} column {column}");
    }
}

/// Prints every scenario as `every_scenario_decodes_to_its_exact_changes` compares it, to
/// update the expectations after a recapture (`cargo test print_rendered_fixtures --
/// --ignored --nocapture`); check each difference against the fixture before pasting.
#[test]
#[ignore = "prints the expectations for a recapture"]
fn print_rendered_fixtures() {
    for (name, _) in FIXTURES {
        println!("=== {name} ===\n{}=== end ===", render(&changes(name)));
    }
}

/// The change letters of a sequence, space-separated.
fn kinds(changes: &[Change]) -> String {
    let letters: Vec<&str> = changes
        .iter()
        .map(|c| match c {
            Change::Begin { .. } => "B",
            Change::Commit { .. } => "C",
            Change::Relation { .. } => "R",
            Change::Insert { .. } => "I",
            _ => "?",
        })
        .collect();
    letters.join(" ")
}
