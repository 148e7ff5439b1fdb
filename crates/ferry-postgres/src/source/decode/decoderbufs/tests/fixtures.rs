//! The decoderbufs decoder against what PostgreSQL 15.18 with decoderbufs 2.1.2 sent
//! (`tests/fixtures/decoderbufs/`, captured by `tests/fixtures/wal2json/capture.sh`; see
//! the README beside them): every payload of every scenario decodes, in one session per
//! scenario, to exactly the changes (or errors) below, and every type-zoo value is the text
//! `SELECT col::text` printed on the source.

use bytes::Bytes;
use ferry_core::{Change, Datum, Lsn, Relation, Row, TableName};

use super::super::{DecoderbufsDecoder, TableIdentity};
use super::render;
use crate::source::decode::test_render::assert_toasted_bodies;

/// The fixtures, by scenario: records of an 8-byte big-endian WAL position (the XLogData
/// header's), a 4-byte big-endian length and the payload.
const TYPE_ZOO_TEXT: &str =
    include_str!("../../../../../tests/fixtures/decoderbufs/type_zoo_text.json");
const DOCS_BODY: &str = include_str!("../../../../../tests/fixtures/decoderbufs/docs_body.txt");
const DOCS_FULL_BODY: &str =
    include_str!("../../../../../tests/fixtures/decoderbufs/docs_full_body.txt");

const FIXTURES: [(&str, &[u8]); 9] = [
    (
        "keyed",
        include_bytes!("../../../../../tests/fixtures/decoderbufs/keyed.bin"),
    ),
    (
        "full",
        include_bytes!("../../../../../tests/fixtures/decoderbufs/full.bin"),
    ),
    (
        "toast",
        include_bytes!("../../../../../tests/fixtures/decoderbufs/toast.bin"),
    ),
    (
        "keyless",
        include_bytes!("../../../../../tests/fixtures/decoderbufs/keyless.bin"),
    ),
    (
        "truncate",
        include_bytes!("../../../../../tests/fixtures/decoderbufs/truncate.bin"),
    ),
    (
        "messages",
        include_bytes!("../../../../../tests/fixtures/decoderbufs/messages.bin"),
    ),
    (
        "names",
        include_bytes!("../../../../../tests/fixtures/decoderbufs/names.bin"),
    ),
    (
        "type_zoo",
        include_bytes!("../../../../../tests/fixtures/decoderbufs/type_zoo.bin"),
    ),
    (
        "lossy",
        include_bytes!("../../../../../tests/fixtures/decoderbufs/lossy.bin"),
    ),
];

/// The records of a fixture file.
pub(in super::super) fn records(mut rest: &'static [u8]) -> Vec<(Lsn, &'static [u8])> {
    let mut records = Vec::new();
    while let Some((header, after)) = rest.split_at_checked(12) {
        let (lsn, len) = header.split_at(8);
        let lsn = Lsn::from_u64(u64::from_be_bytes(lsn.try_into().unwrap()));
        let len = usize::try_from(u32::from_be_bytes(len.try_into().unwrap())).unwrap();
        let (payload, next) = after.split_at(len);
        records.push((lsn, payload));
        rest = next;
    }
    assert!(rest.is_empty(), "trailing bytes");
    records
}

fn fixture(name: &str) -> Vec<(Lsn, &'static [u8])> {
    FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| records(bytes))
        .unwrap()
}

/// Every record of every fixture.
pub(in super::super) fn all_records() -> Vec<(Lsn, &'static [u8])> {
    FIXTURES
        .iter()
        .flat_map(|(_, bytes)| records(bytes))
        .collect()
}

/// A decoder that knows the identities of the capture's tables, started at 0/0 (so the
/// first Begin's `final_lsn` is its BEGIN's position).
fn decoder() -> DecoderbufsDecoder {
    let mut decoder = DecoderbufsDecoder::new(Lsn::ZERO);
    let key =
        |columns: &[&str]| TableIdentity::Key(columns.iter().map(|c| c.to_string()).collect());
    for (table, identity) in [
        ("items", key(&["id"])),
        ("by_email", key(&["email"])),
        ("events_log", TableIdentity::Full),
        ("docs", key(&["id"])),
        ("docs_full", TableIdentity::Full),
        ("nokey", TableIdentity::Nothing),
        ("parents", key(&["id"])),
        ("children", key(&["id"])),
        ("zoo", key(&["id"])),
        ("lossy_timetz", key(&["id"])),
        ("lossy_money", key(&["id"])),
    ] {
        decoder.set_identity(TableName::new("public", table), identity);
    }
    decoder.set_identity(TableName::new("My Schema", "Odd \"Name\""), key(&["user"]));
    decoder
}

/// A fixture decoded in order by one decoder.
fn changes(name: &str) -> Vec<Change> {
    let mut decoder = decoder();
    fixture(name)
        .into_iter()
        .enumerate()
        .flat_map(|(i, (lsn, payload))| {
            decoder
                .decode(lsn, payload)
                .unwrap_or_else(|e| panic!("{name} record {i}: {e}"))
        })
        .collect()
}

/// A fixture decoded in order by one decoder, rendered; a payload that fails is a line
/// `! error` in its place (the decoder goes on, its state unchanged).
fn rendered(name: &str) -> String {
    let mut decoder = decoder();
    let mut out = String::new();
    for (lsn, payload) in fixture(name) {
        match decoder.decode(lsn, payload) {
            Ok(changes) => out.push_str(&render(&changes)),
            Err(e) => out.push_str(&format!("! {e}\n")),
        }
    }
    out
}

/// Prints every scenario as `every_scenario_decodes_to_its_exact_changes` compares it, to
/// update the expectations after a recapture (`cargo test print_rendered_fixtures --
/// --ignored --nocapture`); check each difference against the fixture before pasting.
#[test]
#[ignore = "prints the expectations for a recapture"]
fn print_rendered_fixtures() {
    for (name, _) in FIXTURES {
        println!("=== {name} ===\n{}=== end ===", rendered(name));
    }
}

// Rendered by `super::render`: B/C with their LSNs and commit time (µs since 2000-01-01),
// R with key columns starred, rows as (text, null, toast); long values as <n bytes>.
// Begin's final_lsn (= Commit's commit_lsn) is the lower bound the module documents: the
// previous Commit's end or the BEGIN's own position, whichever is later.

/// items (primary key): insert, update, key change (old key), delete; by_email (REPLICA
/// IDENTITY USING INDEX on email, registered as its key).
const KEYED: &str = r#"
B xid=744 final=0/1564148 time=848883994311774
R 1 "public"."items" d [id*:23 label:25]
I 1 new=("1", "one")
I 1 new=("2", "two")
I 1 new=("3", "three")
C commit=0/1564148 end=0/1564360 time=848883994311774
B xid=745 final=0/1564360 time=848883994312794
U 1 new=("2", "two, updated")
C commit=0/1564360 end=0/15643E8 time=848883994312794
B xid=746 final=0/15643E8 time=848883994313016
U 1 key=("3", null) new=("30", "three")
C commit=0/15643E8 end=0/15644B0 time=848883994313016
B xid=747 final=0/15644B0 time=848883994313191
D 1 key=("1", null)
C commit=0/15644B0 end=0/1564520 time=848883994313191
B xid=748 final=0/1564558 time=848883994317376
R 2 "public"."by_email" d [id:23 email*:25 note:25]
I 2 new=("1", "a@example.com", "first")
U 2 new=("1", "a@example.com", "second")
U 2 key=(null, "a@example.com", null) new=("1", "b@example.com", "second")
D 2 key=(null, "b@example.com", null)
C commit=0/1564558 end=0/15648C8 time=848883994317376
"#;

/// events_log (REPLICA IDENTITY FULL, no key, duplicate rows): old rows whole.
const FULL: &str = r#"
B xid=749 final=0/15648C8 time=848883994755599
R 1 "public"."events_log" f [kind*:25 payload*:25]
I 1 new=("click", "a")
I 1 new=("click", "a")
I 1 new=("view", null)
C commit=0/15648C8 end=0/15649B8 time=848883994755599
B xid=750 final=0/15649B8 time=848883994756198
U 1 old=("view", null) new=("view", "b")
C commit=0/15649B8 end=0/1564A40 time=848883994756198
B xid=751 final=0/1564A40 time=848883994759296
D 1 old=("click", "a")
C commit=0/1564A40 end=0/1564AB8 time=848883994759296
"#;

/// docs: a 12,000-byte body stored out of line, missing from the update that does not
/// touch it (toast), then changed; docs_full (FULL): the old row has the body, the new one
/// does not.
const TOAST: &str = r#"
B xid=752 final=0/1564AB8 time=848883995083242
R 1 "public"."docs" d [id*:23 version:23 body:25]
I 1 new=("1", "1", <12000 bytes>)
C commit=0/1564AB8 end=0/1567ED8 time=848883995083242
B xid=753 final=0/1567ED8 time=848883995083628
U 1 new=("1", "2", toast)
C commit=0/1567ED8 end=0/1567FA0 time=848883995083628
B xid=754 final=0/1567FA0 time=848883995213590
U 1 new=("1", "3", "short")
C commit=0/1567FA0 end=0/15681F8 time=848883995213590
B xid=755 final=0/15681F8 time=848883995215441
R 2 "public"."docs_full" f [id*:23 version*:23 body*:25]
I 2 new=("1", "1", <12000 bytes>)
C commit=0/15681F8 end=0/156B578 time=848883995215441
B xid=756 final=0/156B578 time=848883995215690
U 2 old=("1", "1", <12000 bytes>) new=("1", "2", toast)
C commit=0/156B578 end=0/156E568 time=848883995215690
"#;

/// nokey (no key, REPLICA IDENTITY DEFAULT): decoderbufs sends UPDATE and DELETE without
/// any tuple.
const KEYLESS: &str = r#"
B xid=757 final=0/156E568 time=848883995689344
R 1 "public"."nokey" n [a:23 b:25]
I 1 new=("1", "x")
C commit=0/156E568 end=0/156E5D8 time=848883995689344
B xid=758 final=0/156E5D8 time=848883995689709
! decoderbufs UPDATE of table "public"."nokey" carries no row: give the table a primary key or REPLICA IDENTITY FULL on the source
C commit=0/156E5D8 end=0/156E650 time=848883995689709
B xid=759 final=0/156E650 time=848883995689856
! decoderbufs DELETE of table "public"."nokey" carries no row: give the table a primary key or REPLICA IDENTITY FULL on the source
C commit=0/156E650 end=0/156E6B8 time=848883995689856
"#;

/// Two TRUNCATEs: decoderbufs sends nothing but their (empty) transactions.
const TRUNCATE: &str = r#"
B xid=760 final=0/156E6B8 time=848883996073599
R 1 "public"."parents" d [id*:23 name:25]
I 1 new=("1", "p")
C commit=0/156E6B8 end=0/156E830 time=848883996073599
B xid=761 final=0/156E830 time=848883996074414
R 2 "public"."children" d [id*:23 parent_id:23]
I 2 new=("1", "1")
C commit=0/156E830 end=0/156E9E0 time=848883996074414
B xid=762 final=0/156E9E0 time=848883996080688
C commit=0/156E9E0 end=0/1571C50 time=848883996080688
B xid=763 final=0/1571C50 time=848883996081512
I 1 new=("1", "q")
C commit=0/1571C50 end=0/1571DC8 time=848883996081512
B xid=764 final=0/1571DC8 time=848883996087202
C commit=0/1571DC8 end=0/15730F0 time=848883996087202
"#;

/// A transactional message and two non-transactional ones: decoderbufs sends none of them.
const MESSAGES: &str = r#"
B xid=765 final=0/15730F0 time=848883996413631
R 1 "public"."items" d [id*:23 label:25]
I 1 new=("40", "forty")
C commit=0/15730F0 end=0/15731E8 time=848883996413631
"#;

/// A schema and table needing quotes, a column named `user`, one `Mixed Case`; a key change.
const NAMES: &str = r#"
B xid=767 final=0/1574E48 time=848883996821491
R 1 "My Schema"."Odd \"Name\"" d [user*:23 Mixed Case:25 select:23]
I 1 new=("1", "x", "2")
C commit=0/1574E48 end=0/1574F60 time=848883996821491
B xid=768 final=0/1574F60 time=848883996822475
U 1 key=("1", null, null) new=("2", "x", "2")
C commit=0/1574F60 end=0/1575028 time=848883996822475
"#;

/// The type zoo, five rows (see `type_zoo_values_are_the_text_postgresql_prints`).
const TYPE_ZOO: &str = r#"
B xid=769 final=0/1576990 time=848883997199887
R 1 "public"."zoo" d [id*:23 i2:21 i4:23 i8:20 n1:1700 n2:1700 f4:700 f8:701 f8b:701 b:16 t:25 vc:1043 bp:1042 ch:18 by:17 d:1082 tm:1083 ts:1114 tstz:1184 iv:1186 u:2950 j:114 jb:3802 ai:1007 at:1009 pt:600 ip:869 mo:16385 o:26 vb:1562 nm:19 mac:829 rng:3904]
I 1 new=("1", "-32768", "2147483647", "-9223372036854775808", "12345678901234567890.123456789012", "-0.000001", "0.1", "0.1", "1e+20", "t", "it's \"q\" \\ back\nline\ttab ünï 🚀", "short", "ab   ", "x", "\\xdeadbeef00", "2024-01-02", "03:04:05.123456", "2024-01-02 03:04:05.123456", "2024-01-02 03:04:05.123456+00", "1 year 2 mons 3 days 04:05:06.789", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "{\"a\": [1, 2.50], \"b\": \"x\\\"y\"}", "{\"a\": [1, 2.50], \"b\": \"x\\\"y\"}", "{1,NULL,3}", "{\"a b\",\"c\\\"d\",NULL}", "(1.5,-2.25)", "192.168.0.1/24", "happy", "4294967295", "1011", "somename", "08:00:2b:01:02:03", "[1,10)")
C commit=0/1576990 end=0/1576C88 time=848883997199887
B xid=770 final=0/1576C88 time=848883997200084
I 1 new=("2", null, null, null, "NaN", "999999.999999", "NaN", "Infinity", "-Infinity", "f", "", null, null, null, "\\x", "0044-03-15 BC", "24:00:00", "infinity", "-infinity", "-1 days +00:00:00.000001", null, null, null, "{}", "{}", "(1e+20,-0.5)", null, null, null, null, null, null, null)
C commit=0/1576C88 end=0/1576DC0 time=848883997200084
B xid=771 final=0/1576DC0 time=848883997200209
I 1 new=("3", "0", null, null, "-0.0000000001", null, "-0", "1.5e-07", "1.2345678901234568e+17", null, null, null, null, null, null, "infinity", "00:00:00", "0001-01-01 00:00:00 BC", "1999-12-31 23:59:59.999999+00", "00:00:00", null, null, null, null, null, "(NaN,0)", null, null, null, null, null, null, null)
C commit=0/1576DC0 end=0/1576ED0 time=848883997200209
B xid=772 final=0/1576ED0 time=848883997200317
I 1 new=("4", null, null, null, null, null, "3.4028235e+38", "-2.2250738585072014e-308", null, null, null, null, null, null, null, "-infinity", null, "294276-12-31 23:59:59.999999", "4714-11-24 00:00:00+00 BC", null, null, null, null, null, null, null, null, null, null, null, null, null, null)
C commit=0/1576ED0 end=0/1576FA8 time=848883997200317
B xid=773 final=0/1576FA8 time=848883997200405
I 1 new=("5", null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null)
C commit=0/1576FA8 end=0/1577060 time=848883997200405
"#;

/// timetz and money: decoderbufs loses information, so both are errors naming the column.
const LOSSY: &str = r#"
B xid=774 final=0/1577060 time=848883997703692
! decoderbufs INSERT of table "public"."lossy_timetz": column "tz" of type time with time zone cannot be replicated exactly: decoderbufs sends only the UTC time and drops the zone offset
C commit=0/1577060 end=0/1577180 time=848883997703692
B xid=775 final=0/1577180 time=848883997704173
! decoderbufs INSERT of table "public"."lossy_money": column "m" of type money cannot be replicated exactly: decoderbufs sends an integer count of the smallest currency unit, whose scale depends on lc_monetary
C commit=0/1577180 end=0/1577298 time=848883997704173
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
        assert_eq!(rendered(name), expected.trim_start_matches('\n'), "{name}");
    }
}

#[test]
fn toasted_values_arrive_whole_or_as_unchanged() {
    assert_toasted_bodies(&changes("toast"), DOCS_BODY, DOCS_FULL_BODY);
}

/// Where the text the plugin sends differs from `SELECT col::text`, and why (both read
/// back as the same value).
fn type_zoo_exception(id: u64, column: &str) -> Option<Option<&'static str>> {
    match (id, column) {
        // The cast of char(n) to text drops the padding; the output function keeps it.
        (1, "bp") => Some(Some("ab   ")),
        // bool's output function prints t / f; its cast to text, true / false.
        (1, "b") => Some(Some("t")),
        (2, "b") => Some(Some("f")),
        _ => None,
    }
}

#[test]
fn type_zoo_values_are_the_text_postgresql_prints() {
    let changes = changes("type_zoo");
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
    assert_eq!(rows.len(), 5);
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
