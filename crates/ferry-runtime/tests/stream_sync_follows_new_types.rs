//! Schema objects the source creates while streaming reach the target before the change
//! that needs them: a domain or an enum created and then used by an added column, a label
//! added to an enum the copy created, a column added to or dropped from a partitioned
//! table (followed on the parent, not on the leaf the change names), a partition attached
//! or created (with its own column order). Per plugin where the plugin matters: pgoutput
//! describes columns in Relation messages, wal2json and decoderbufs in every change.

#[path = "support/sync_support.rs"]
mod support;

use ferry_postgres::Plugin;
use ferry_testkit::TempCluster;
use support::*;

async fn new_types_used_by_added_columns_are_created_first(plugin: Plugin) {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TYPE public.mood AS ENUM ('sad', 'ok');
             CREATE TABLE public.t (id int PRIMARY KEY, m public.mood);
             INSERT INTO public.t VALUES (1, 'sad'), (2, 'ok');",
        )
        .unwrap();
    let (stop, mut sync) = start(stream_options_with(&source, &target, plugin));
    converge(&source, &target, "public.t", &mut sync).await;
    source
        .psql(
            "CREATE DOMAIN public.posint AS int CHECK (VALUE > 0);
             CREATE TYPE public.size AS ENUM ('s', 'm', 'l');
             CREATE TYPE public.pair AS (a int, b text);
             ALTER TABLE public.t ADD COLUMN p public.posint, ADD COLUMN s public.size,
                 ADD COLUMN pr public.pair, ADD COLUMN ps public.size[];
             INSERT INTO public.t VALUES (3, 'ok', 5, 'l', ROW(1, 'x'), '{s,m}');
             ALTER TYPE public.mood ADD VALUE 'happy';
             ALTER TYPE public.mood ADD VALUE 'meh' BEFORE 'sad';
             ALTER TYPE public.size ADD VALUE 'xl';
             INSERT INTO public.t VALUES (4, 'happy', 6, 'xl', NULL, '{xl}'), (5, 'meh', 7, 's', NULL, NULL);
             UPDATE public.t SET m = 'happy' WHERE id = 1;",
        )
        .unwrap();
    converge(&source, &target, "public.t", &mut sync).await;
    let order = "SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum
                 WHERE enumtypid = 'public.mood'::regtype";
    assert_eq!(source.psql(order).unwrap(), target.psql(order).unwrap());
    stop_run(stop, sync).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_types_used_by_added_columns_are_created_first_pgoutput() {
    new_types_used_by_added_columns_are_created_first(Plugin::Pgoutput).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_types_used_by_added_columns_are_created_first_wal2json() {
    new_types_used_by_added_columns_are_created_first(Plugin::Wal2json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_types_used_by_added_columns_are_created_first_decoderbufs() {
    new_types_used_by_added_columns_are_created_first(Plugin::Decoderbufs).await;
}

/// A partitioned table with a check, and a partition whose columns are in another order
/// (built apart and attached), copied in its own order.
const PARTITIONED: &str = "
    CREATE TABLE public.m (id int CHECK (id > 0), at date, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
    CREATE TABLE public.m_2024 (v text, id int NOT NULL CONSTRAINT m_id_check CHECK (id > 0), at date NOT NULL);
    ALTER TABLE public.m ATTACH PARTITION public.m_2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
    INSERT INTO public.m VALUES (0 + 9, '2024-03-01', 'attached first');
    CREATE TABLE public.m_2025 PARTITION OF public.m FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
    CREATE TABLE public.m_2026 PARTITION OF public.m FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    INSERT INTO public.m VALUES (1, '2025-03-01', 'a'), (2, '2026-03-01', 'b');";

async fn a_partitioned_tables_columns_are_followed_on_the_parent(plugin: Plugin) {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(PARTITIONED).unwrap();
    let (stop, mut sync) = start(stream_options_with(&source, &target, plugin));
    converge(&source, &target, "public.m", &mut sync).await;
    source
        .psql(
            "ALTER TABLE public.m ADD COLUMN n int DEFAULT 4;
             INSERT INTO public.m VALUES (3, '2025-05-01', 'c', 5), (4, '2026-05-01', 'd', 6);
             ALTER TABLE public.m DROP COLUMN v;
             UPDATE public.m SET n = 9 WHERE id = 1;
             INSERT INTO public.m VALUES (5, '2026-07-01', 7);",
        )
        .unwrap();
    converge(&source, &target, "public.m", &mut sync).await;
    stop_run(stop, sync).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_tables_columns_are_followed_on_the_parent_pgoutput() {
    a_partitioned_tables_columns_are_followed_on_the_parent(Plugin::Pgoutput).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_tables_columns_are_followed_on_the_parent_wal2json() {
    a_partitioned_tables_columns_are_followed_on_the_parent(Plugin::Wal2json).await;
}

async fn a_partition_created_while_streaming_is_created_and_streamed(plugin: Plugin) {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(PARTITIONED).unwrap();
    let (stop, mut sync) = start(stream_options_with(&source, &target, plugin));
    converge(&source, &target, "public.m", &mut sync).await;
    source
        .psql(
            // One created in place, one built apart with another column order and attached.
            "CREATE TABLE public.m_2027 PARTITION OF public.m FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
             INSERT INTO public.m VALUES (10, '2027-02-01', 'new partition');
             CREATE TABLE public.m_2028 (v text, at date NOT NULL, id int NOT NULL CONSTRAINT m_id_check CHECK (id > 0));
             INSERT INTO public.m_2028 VALUES ('before attach', '2028-03-01', 11);
             ALTER TABLE public.m ATTACH PARTITION public.m_2028 FOR VALUES FROM ('2028-01-01') TO ('2029-01-01');
             INSERT INTO public.m VALUES (12, '2028-04-01', 'after attach');
             UPDATE public.m SET v = 'moved' WHERE id = 1;",
        )
        .unwrap();
    converge(&source, &target, "public.m", &mut sync).await;
    source
        .psql("INSERT INTO public.m VALUES (13, '2027-06-01', 'later'); DELETE FROM public.m WHERE id = 10")
        .unwrap();
    converge(&source, &target, "public.m", &mut sync).await;
    for partition in ["public.m_2024", "public.m_2028"] {
        let columns = format!(
            "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
             WHERE attrelid = '{partition}'::regclass AND attnum > 0 AND NOT attisdropped"
        );
        assert_eq!(
            source.psql(&columns).unwrap(),
            target.psql(&columns).unwrap()
        );
    }
    stop_run(stop, sync).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_created_while_streaming_is_created_and_streamed_pgoutput() {
    a_partition_created_while_streaming_is_created_and_streamed(Plugin::Pgoutput).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_created_while_streaming_is_created_and_streamed_wal2json() {
    a_partition_created_while_streaming_is_created_and_streamed(Plugin::Wal2json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_tables_columns_are_followed_on_the_parent_decoderbufs() {
    a_partitioned_tables_columns_are_followed_on_the_parent(Plugin::Decoderbufs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_created_while_streaming_is_created_and_streamed_decoderbufs() {
    a_partition_created_while_streaming_is_created_and_streamed(Plugin::Decoderbufs).await;
}

/// A column added with a volatile default, as `bigserial` or as an identity gets its
/// existing rows' values by a table rewrite, which no plugin decodes: the table is copied
/// anew (by the same run) and streamed on, and the other tables are not touched.
async fn a_column_added_with_a_volatile_default_is_copied_anew(plugin: Plugin) {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.t (id int PRIMARY KEY, v text);
             INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 200) g;
             CREATE TABLE public.other (id int PRIMARY KEY);
             INSERT INTO public.other VALUES (1);",
        )
        .unwrap();
    let (stop, mut sync) = start(stream_options_with(&source, &target, plugin));
    converge(&source, &target, "public.t", &mut sync).await;
    source
        .psql(
            "ALTER TABLE public.t ADD COLUMN u uuid DEFAULT gen_random_uuid();
             INSERT INTO public.t (id, v) VALUES (201, 'after u');
             ALTER TABLE public.t ADD COLUMN s bigserial;
             ALTER TABLE public.t ADD COLUMN n int GENERATED BY DEFAULT AS IDENTITY;
             ALTER TABLE public.t ADD COLUMN at timestamptz DEFAULT clock_timestamp();
             UPDATE public.t SET v = 'changed' WHERE id % 10 = 0;
             INSERT INTO public.other VALUES (2);",
        )
        .unwrap();
    converge(&source, &target, "public.t", &mut sync).await;
    converge(&source, &target, "public.other", &mut sync).await;
    source
        .psql(
            "INSERT INTO public.t (id, v) VALUES (202, 'later'); DELETE FROM public.t WHERE id = 3",
        )
        .unwrap();
    converge(&source, &target, "public.t", &mut sync).await;
    stop_run(stop, sync).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_added_with_a_volatile_default_is_copied_anew_pgoutput() {
    a_column_added_with_a_volatile_default_is_copied_anew(Plugin::Pgoutput).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_added_with_a_volatile_default_is_copied_anew_wal2json() {
    a_column_added_with_a_volatile_default_is_copied_anew(Plugin::Wal2json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_added_with_a_volatile_default_is_copied_anew_decoderbufs() {
    a_column_added_with_a_volatile_default_is_copied_anew(Plugin::Decoderbufs).await;
}

/// A column the user added to a target table (one the source never had) survives the
/// stream's column changes, before and after a restart; the source's columns stay equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_only_on_the_target_is_kept() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY, v text); INSERT INTO public.t VALUES (1, 'a')")
        .unwrap();
    let options = stream_options(&source, &target);
    let (stop, mut sync) = start(options.clone());
    converge(&source, &target, "public.t", &mut sync).await;
    target
        .psql("ALTER TABLE public.t ADD COLUMN note text DEFAULT 'mine'")
        .unwrap();
    source
        .psql("INSERT INTO public.t VALUES (2, 'b'); ALTER TABLE public.t ADD COLUMN w int; UPDATE public.t SET w = id")
        .unwrap();
    let columns = "(SELECT id, v, w FROM public.t)";
    converge(&source, &target, columns, &mut sync).await;
    stop_run(stop, sync).await;
    source
        .psql("ALTER TABLE public.t DROP COLUMN w; INSERT INTO public.t VALUES (3, 'c')")
        .unwrap();
    let (stop, mut sync) = start(options);
    converge(&source, &target, "(SELECT id, v FROM public.t)", &mut sync).await;
    assert_eq!(
        target
            .psql("SELECT string_agg(note, ',' ORDER BY id) FROM public.t")
            .unwrap()
            .trim(),
        "mine,mine,mine"
    );
    stop_run(stop, sync).await;
}
