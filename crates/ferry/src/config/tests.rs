//! Unit tests of config validation: defaults, and an error naming the field for each rule.

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    let raw: RawFile = toml::from_str(text).map_err(|source| ConfigError::Parse {
        path: "ferry.toml".into(),
        source,
    })?;
    validate(raw)
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

const MINIMAL: &str = r#"
[source]
url = "postgres://ferry@db1:5432/app"
[target]
url = "postgres://ferry@db2/app"
"#;

#[test]
fn minimal_file_gets_documented_defaults() {
    let config = parse(MINIMAL).unwrap();
    let p = &config.pipelines[0];
    assert_eq!(p.name, "default");
    assert_eq!(p.source.plugin, Plugin::Pgoutput);
    assert_eq!(p.source.slot, "ferry");
    assert_eq!(p.source.publication, "ferry");
    assert_eq!(p.source.tables.include[0].to_string(), "public.*");
    assert_eq!(p.target.progress_schema, "ferry");
    assert_eq!(p.sync.mode, SyncMode::FullAndIncremental);
    assert_eq!(p.sync.snapshot_workers, DEFAULT_SNAPSHOT_WORKERS);
    assert_eq!(p.sync.on_existing, OnExisting::Error);
    assert!(!p.sync.keep_slot);
    assert!(p.sync.uses_slot());
    assert_eq!(p.source.conn.dbname, "app");
    assert_eq!(
        p.sync.table_check_interval,
        Some(std::time::Duration::from_secs(5))
    );
}

#[test]
fn table_check_interval_takes_a_duration_or_off() {
    let off = parse(&format!(
        "{MINIMAL}\n[sync]\ntable_check_interval = \"off\"\n"
    ))
    .unwrap();
    assert_eq!(off.pipelines[0].sync.table_check_interval, None);
    let e = err(&format!(
        "{MINIMAL}\n[sync]\ntable_check_interval = \"soon\"\n"
    ));
    assert!(e.contains("sync.table_check_interval"), "{e}");
}

#[test]
fn unknown_fields_are_rejected_with_their_name() {
    let text = format!("{MINIMAL}\n[sync]\nmdoe = \"full\"\n");
    let e = parse(&text).unwrap_err();
    let chain = format!("{e}: {}", std::error::Error::source(&e).unwrap());
    assert!(chain.contains("mdoe"), "{chain}");
}

#[test]
fn each_bad_value_names_field_value_and_expectation() {
    let cases = [
        (
            "[source]\nurl = \"postgres://h/d\"\nplugin = \"pgoutptu\"\n",
            "source.plugin",
            "pgoutput, wal2json or decoderbufs",
        ),
        (
            "[source]\nurl = \"postgres://h/d\"\nslot = \"My-Slot\"\n",
            "source.slot",
            "lower-case",
        ),
        (
            "[source]\nurl = \"postgres://h/d\"\ntables = []\n",
            "source.tables",
            "at least one",
        ),
        (
            "[source]\nurl = \"postgres://h/d\"\ntables = [\"a.b.c\"]\n",
            "source.tables",
            "schema.table",
        ),
        (
            "[source]\nurl = \"postgres://h:99999/d\"\n",
            "source.url",
            "99999",
        ),
    ];
    for (source, field, expected) in cases {
        let text = format!("{source}[target]\nurl = \"postgres://t/d\"\n");
        let message = err(&text);
        assert!(message.starts_with(field), "{message}");
        assert!(message.contains(expected), "{message}");
    }
    let with_sync = |sync: &str| err(&format!("{MINIMAL}[sync]\n{sync}\n"));
    let m = with_sync("mode = \"live\"");
    assert!(
        m.starts_with("sync.mode") && m.contains("\"live\"") && m.contains("full+incremental"),
        "{m}"
    );
    let m = with_sync("on_existing = \"replace\"");
    assert!(
        m.starts_with("sync.on_existing") && m.contains("truncate"),
        "{m}"
    );
    let m = with_sync("snapshot_workers = 0");
    assert!(
        m.starts_with("sync.snapshot_workers") && m.contains("1 to 64"),
        "{m}"
    );
    let m = err("[source]\nurl = \"postgres://h/d\"\n[target]\nurl = \"postgres://t/d\"\nkind = \"kafka\"\n");
    assert!(
        m.starts_with("target.kind") && m.contains("postgres"),
        "{m}"
    );
}

#[test]
fn missing_sections_say_what_to_add() {
    assert!(err("[target]\nurl = \"postgres://t/d\"\n").starts_with("source: missing"));
    assert!(err("[source]\nurl = \"postgres://t/d\"\n").starts_with("target: missing"));
}

#[test]
fn passwords_never_appear_in_errors() {
    let m = err("[source]\nurl = \"postgres://u:s3cr3t@h:notaport/d\"\n[target]\nurl = \"postgres://t/d\"\n");
    assert!(!m.contains("s3cr3t"), "{m}");
    let config =
        parse("[source]\nurl = \"postgres://u:s3cr3t@h/d\"\n[target]\nurl = \"postgres://t/d\"\n")
            .unwrap();
    assert!(!format!("{config:?}").contains("s3cr3t"));
}

#[test]
fn several_pipelines_get_their_own_slots() {
    let text = r#"
[[pipeline]]
name = "orders"
source = { url = "postgres://a/app" }
target = { url = "postgres://b/app" }

[[pipeline]]
name = "billing-eu"
source = { url = "postgres://a/app", plugin = "wal2json" }
target = { url = "postgres://c/app" }
sync = { mode = "full" }
"#;
    let config = parse(text).unwrap();
    assert_eq!(config.pipelines.len(), 2);
    assert_eq!(config.pipelines[0].source.slot, "ferry_orders");
    assert_eq!(config.pipelines[1].source.slot, "ferry_billing_eu");
    assert_eq!(config.pipelines[1].sync.mode, SyncMode::Full);
    assert_eq!(config.pipelines[1].source.plugin, Plugin::Wal2json);
}

#[test]
fn pipelines_may_not_share_a_slot_or_a_name_or_mix_forms() {
    let two = |a: &str, b: &str| {
        format!(
            "[[pipeline]]\nname = \"{a}\"\nsource = {{ url = \"postgres://a/app\", slot = \"s\" }}\ntarget = {{ url = \"postgres://b/app\" }}\n\
             [[pipeline]]\nname = \"{b}\"\nsource = {{ url = \"postgres://a/app\", slot = \"s\" }}\ntarget = {{ url = \"postgres://b/app\" }}\n"
        )
    };
    assert!(err(&two("x", "y")).contains("also used by pipeline"));
    assert!(err(&two("x", "x")).contains("unique"));
    let mixed = format!("{MINIMAL}\n[[pipeline]]\nname = \"x\"\nsource = {{ url = \"postgres://a/app\" }}\ntarget = {{ url = \"postgres://b/app\" }}\n");
    assert!(err(&mixed).contains("not both"));
}

#[test]
fn a_one_off_full_copy_needs_no_slot_unless_kept() {
    let full = parse(&format!("{MINIMAL}[sync]\nmode = \"full\"\n")).unwrap();
    assert!(!full.pipelines[0].sync.uses_slot());
    let kept = parse(&format!(
        "{MINIMAL}[sync]\nmode = \"full\"\nkeep_slot = true\n"
    ))
    .unwrap();
    assert!(kept.pipelines[0].sync.uses_slot());
    let timestamp = parse(&format!("{MINIMAL}[sync]\nmode = \"timestamp\"\n")).unwrap();
    assert!(!timestamp.pipelines[0].sync.uses_slot());
}

#[test]
fn timestamp_settings_have_defaults_and_named_errors() {
    let config = parse(&format!("{MINIMAL}[sync]\nmode = \"timestamp\"\n")).unwrap();
    let p = &config.pipelines[0];
    assert_eq!(p.source.timestamp_column, "last_update");
    assert_eq!(p.sync.timestamp.poll_interval, Duration::from_secs(5));
    assert_eq!(
        p.sync.timestamp.max_transaction_age,
        Duration::from_secs(15 * 60)
    );
    assert!(!p.sync.timestamp.reconcile_deletes);
    let text = r#"
[source]
url = "postgres://h/d"
timestamp_column = "changed_at"
[source.timestamp_columns]
"public.orders" = "updated"
'"Sales"."Items"' = "modified"
[target]
url = "postgres://t/d"
[sync]
mode = "timestamp"
poll_interval = "500ms"
reconcile_deletes = true
reconcile_interval = "1h"
"#;
    let p = parse(text).unwrap().pipelines.remove(0);
    assert_eq!(p.source.timestamp_column, "changed_at");
    assert_eq!(
        p.source
            .timestamp_columns
            .get(&TableName::new("Sales", "Items"))
            .map(String::as_str),
        Some("modified")
    );
    assert_eq!(p.sync.timestamp.poll_interval, Duration::from_millis(500));
    assert!(p.sync.timestamp.reconcile_deletes);
    let m = err(&format!("{MINIMAL}[sync]\npoll_interval = \"soon\"\n"));
    assert!(
        m.starts_with("sync.poll_interval") && m.contains("\"soon\""),
        "{m}"
    );
    let m = err(&format!("{MINIMAL}[sync]\npoll_interval = \"0s\"\n"));
    assert!(m.contains("zero"), "{m}");
    let m = err("[source]\nurl = \"postgres://h/d\"\n[source.timestamp_columns]\n\"public.*\" = \"x\"\n[target]\nurl = \"postgres://t/d\"\n");
    assert!(m.contains("without wildcards"), "{m}");
}
