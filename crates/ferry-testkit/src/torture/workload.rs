//! The statement stream of one workload session: transactions drawn from the session's own
//! random stream, so a seed replays the same statements whatever the other sessions did.
//!
//! Statements never depend on the outcome of earlier ones: rows are addressed by `k`,
//! inserts of existing keys do nothing (`ON CONFLICT`), and a key change gives the row a key
//! from the session's own range of fresh numbers, which no one else uses and which is never
//! used twice. A statement that fails anyway (a deadlock, a lock timeout, the source
//! restarting) rolls its transaction back; the session logs it and goes on.
//!
//! Half of the addressed numbers fall in a small hot range, so large transactions (bigger
//! than the source's `logical_decoding_work_mem`, and so streamed before they commit) and
//! small ones keep touching the same rows.

use ferry_core::quote_ident;

use super::rng::Rng;
use super::schema::{toast_expr, Schema, Table, TableKind};
use super::{Features, Plugin};

/// Numbers `1..=HOT` are the contended rows.
const HOT: u64 = 200;

/// One transaction as the session will send it, statement by statement.
#[derive(Clone, Debug)]
pub struct Transaction {
    /// What kind it is, for the log and the session's counts.
    pub label: &'static str,
    /// The statements, `BEGIN` and `COMMIT`/`ROLLBACK` included when it has them.
    pub statements: Vec<String>,
}

/// The generator of one session's transactions.
pub struct SessionPlan {
    rng: Rng,
    plugin: Plugin,
    features: Features,
    schema: Schema,
    /// Next number of this session's fresh range (never used by anyone else).
    fresh: u64,
    /// DDL state (schema changes on): columns added so far, per table index.
    added_columns: Vec<(usize, String, &'static str)>,
    added_tables: Vec<String>,
    /// Enum columns added: table index, column, type, labels so far.
    added_enums: Vec<(usize, String, String, u32)>,
    ddl_counter: u64,
    ddl: bool,
}

impl SessionPlan {
    /// Session `index` of a case; only session 0 runs schema changes.
    pub fn new(
        seed: u64,
        index: usize,
        plugin: Plugin,
        features: Features,
        schema: Schema,
    ) -> Self {
        SessionPlan {
            rng: Rng::fork(seed, 100 + index as u64),
            plugin,
            ddl: features.schema_changes && index == 0,
            features,
            schema,
            fresh: 1_000_000 + index as u64 * 100_000_000,
            added_columns: Vec::new(),
            added_tables: Vec::new(),
            added_enums: Vec::new(),
            ddl_counter: 0,
        }
    }

    /// Milliseconds to wait before the next transaction.
    pub fn think_ms(&mut self) -> u64 {
        self.rng.between(2, 40)
    }

    /// The next transaction.
    pub fn next_transaction(&mut self) -> Transaction {
        let f = &self.features;
        let weights = [
            20,                                         // autocommit
            40,                                         // small
            if f.savepoints { 10 } else { 0 },          // savepoints
            if f.aborted_transactions { 6 } else { 0 }, // aborted
            if f.large_transactions { 4 } else { 0 },   // large, streamed
            if f.truncate { 1 } else { 0 },             // truncate
            if self.ddl { 3 } else { 0 },               // schema change
        ];
        match self.rng.weighted(&weights) {
            0 => Transaction {
                label: "autocommit",
                statements: vec![self.dml()],
            },
            1 => {
                let n = self.rng.between(1, 4);
                let mut s = vec!["BEGIN".to_owned()];
                s.extend((0..n).map(|_| self.dml()));
                s.push("COMMIT".to_owned());
                Transaction {
                    label: "small",
                    statements: s,
                }
            }
            2 => self.savepoints(),
            3 => {
                let n = self.rng.between(1, 3);
                let mut s = vec!["BEGIN".to_owned()];
                s.extend((0..n).map(|_| self.dml()));
                s.push("ROLLBACK".to_owned());
                Transaction {
                    label: "aborted",
                    statements: s,
                }
            }
            4 => self.large(),
            5 => self.truncate(),
            _ => self.schema_change(),
        }
    }

    fn table(&mut self) -> Table {
        let i = self.rng.index(self.schema.tables.len());
        self.schema.tables[i].clone()
    }

    /// A number to address: the hot range half of the time, else any number of the table.
    fn number(&mut self, table: &Table) -> u64 {
        if self.rng.percent(50) {
            self.rng.between(1, HOT)
        } else {
            self.rng.between(1, table.initial_rows + 300)
        }
    }

    fn fresh(&mut self, count: u64) -> u64 {
        let first = self.fresh;
        self.fresh += count;
        first
    }

    /// One random INSERT, UPDATE or DELETE.
    fn dml(&mut self) -> String {
        let table = self.table();
        let weights = [
            30,                                            // insert
            40,                                            // update
            if self.features.key_changes { 8 } else { 0 }, // key change
            14,                                            // delete
        ];
        match self.rng.weighted(&weights) {
            0 => self.insert(&table),
            1 => self.update(&table),
            2 => self.key_change(&table),
            _ => self.delete(&table),
        }
    }

    fn insert(&mut self, table: &Table) -> String {
        let rows = self.rng.between(1, 4);
        let mut numbers: Vec<u64> = Vec::new();
        while (numbers.len() as u64) < rows {
            let n = if self.rng.percent(30) {
                self.fresh(1)
            } else {
                self.number(table)
            };
            if !numbers.contains(&n) {
                numbers.push(n);
            }
        }
        let mut values: Vec<String> = numbers
            .iter()
            .map(|n| table.values_row(&mut self.rng, self.plugin, *n))
            .collect();
        if table.kind == TableKind::Keyless && self.rng.percent(40) {
            // Identical rows: a keyless table must keep every copy.
            values.push(values[0].clone());
        }
        let q = table.quoted();
        let cols = table.insert_columns().join(", ");
        let values = values.join(", ");
        let keys = table.key_columns();
        match table.kind {
            TableKind::Keyless | TableKind::Identity => {
                format!("INSERT INTO {q} ({cols}) VALUES {values}")
            }
            _ if self.rng.percent(30) && !table.columns.is_empty() => {
                let c = table.columns[self.rng.index(table.columns.len())].quoted();
                format!(
                    "INSERT INTO {q} ({cols}) VALUES {values} ON CONFLICT ({}) DO UPDATE SET {c} = EXCLUDED.{c}",
                    keys.join(", ")
                )
            }
            _ => format!("INSERT INTO {q} ({cols}) VALUES {values} ON CONFLICT DO NOTHING"),
        }
    }

    /// `SET` assignments of one to three value columns (the TOAST column only rarely, so
    /// most updates leave it unchanged and unsent).
    fn assignments(&mut self, table: &Table) -> String {
        let mut sets = Vec::new();
        if !table.columns.is_empty() {
            for _ in 0..self.rng.between(1, 3) {
                let c = table.columns[self.rng.index(table.columns.len())].clone();
                let set = format!("{} = {}", c.quoted(), c.value(&mut self.rng, self.plugin));
                if !sets
                    .iter()
                    .any(|s: &String| s.starts_with(&format!("{} =", c.quoted())))
                {
                    sets.push(set);
                }
            }
        }
        if let Some(body) = &table.toast {
            if self.rng.percent(10) {
                sets.push(format!(
                    "{} = {}",
                    quote_ident(body),
                    toast_expr(
                        &self.rng.between(0, 1_000_000).to_string(),
                        self.rng.between(70, 200)
                    )
                ));
            }
        }
        if sets.is_empty() {
            sets.push("k = k".to_owned());
        }
        sets.join(", ")
    }

    /// `WHERE` for one addressed row (for keyless tables: one of its duplicates), or a
    /// small range of `k`.
    fn target_rows(&mut self, table: &Table) -> String {
        let n = self.number(table);
        let q = table.quoted();
        if self.rng.percent(20) {
            let width = self.rng.between(1, 20);
            return format!("k BETWEEN {n} AND {}", n + width);
        }
        if table.kind == TableKind::Keyless && self.rng.percent(70) {
            return format!("ctid = (SELECT ctid FROM {q} WHERE k = {n} LIMIT 1)");
        }
        format!("k = {n}")
    }

    fn update(&mut self, table: &Table) -> String {
        let sets = self.assignments(table);
        let rows = self.target_rows(table);
        if table.kind == TableKind::Partitioned && self.rng.percent(20) {
            // Moves the row to another partition.
            return format!(
                "UPDATE {} SET at = at + {}, {sets} WHERE {rows}",
                table.quoted(),
                400 + self.rng.between(0, 30)
            );
        }
        format!("UPDATE {} SET {sets} WHERE {rows}", table.quoted())
    }

    fn key_change(&mut self, table: &Table) -> String {
        let q = table.quoted();
        let n = self.number(table);
        let fresh = self.fresh(1).to_string();
        match table.kind {
            TableKind::Identity => format!("UPDATE {q} SET id = DEFAULT WHERE k = {n}"),
            TableKind::Keyless => format!(
                "UPDATE {q} SET k = {fresh} WHERE ctid = (SELECT ctid FROM {q} WHERE k = {n} LIMIT 1)"
            ),
            TableKind::CompositeKey => format!(
                "UPDATE {q} SET a = {fresh} WHERE {}",
                table.key_condition(n).unwrap_or_default()
            ),
            _ => {
                let (col, value) = table.key_values(&fresh).remove(0);
                let sets = self.assignments(table);
                format!(
                    "UPDATE {q} SET {col} = {value}, {sets} WHERE {}",
                    table.key_condition(n).unwrap_or_default()
                )
            }
        }
    }

    fn delete(&mut self, table: &Table) -> String {
        let rows = self.target_rows(table);
        format!("DELETE FROM {} WHERE {rows}", table.quoted())
    }

    fn savepoints(&mut self) -> Transaction {
        let mut s = vec!["BEGIN".to_owned(), self.dml(), "SAVEPOINT a".to_owned()];
        for _ in 0..self.rng.between(1, 3) {
            s.push(self.dml());
        }
        s.push("ROLLBACK TO SAVEPOINT a".to_owned());
        s.push(self.dml());
        if self.rng.percent(50) {
            s.push("SAVEPOINT b".to_owned());
            s.push(self.dml());
            s.push("RELEASE SAVEPOINT b".to_owned());
        }
        s.push("COMMIT".to_owned());
        Transaction {
            label: "savepoints",
            statements: s,
        }
    }

    /// A transaction over `logical_decoding_work_mem` (64 kB on the source): bulk updates,
    /// inserts and deletes with pauses between them, while the other sessions' small
    /// transactions commit on the same rows; sometimes with a rolled-back savepoint, and
    /// sometimes rolled back as a whole.
    fn large(&mut self) -> Transaction {
        let mut s = vec!["BEGIN".to_owned()];
        let steps = self.rng.between(2, 4);
        for step in 0..steps {
            let table = self.table();
            let q = table.quoted();
            match self.rng.below(4) {
                0 | 1 => {
                    let from = if self.rng.percent(50) {
                        1
                    } else {
                        self.number(&table)
                    };
                    let width = self.rng.between(300, 1200);
                    let sets = match table.columns.first() {
                        Some(c) if self.rng.percent(50) => {
                            format!("{} = {}", c.quoted(), c.ty.expr("k + 5"))
                        }
                        _ => self.assignments(&table),
                    };
                    s.push(format!(
                        "UPDATE {q} SET {sets} WHERE k BETWEEN {from} AND {}",
                        from + width
                    ));
                }
                2 => {
                    let count = self.rng.between(300, 1000);
                    let first = self.fresh(count + 1);
                    s.push(table.bulk_insert_sql(
                        &mut self.rng,
                        self.plugin,
                        first,
                        first + count,
                        false,
                    ));
                }
                _ => {
                    let from = self.number(&table);
                    s.push(format!(
                        "DELETE FROM {q} WHERE k BETWEEN {from} AND {}",
                        from + self.rng.between(20, 200)
                    ));
                }
            }
            if self.features.savepoints && self.rng.percent(25) {
                s.push(format!("SAVEPOINT big{step}"));
                let table = self.table();
                let count = self.rng.between(300, 800);
                let first = self.fresh(count + 1);
                s.push(table.bulk_insert_sql(
                    &mut self.rng,
                    self.plugin,
                    first,
                    first + count,
                    false,
                ));
                s.push(format!("ROLLBACK TO SAVEPOINT big{step}"));
            }
            s.push(self.dml());
            s.push(format!(
                "SELECT pg_sleep({:.2})",
                self.rng.between(5, 30) as f64 / 100.0
            ));
        }
        let abort = self.features.aborted_transactions && self.rng.percent(15);
        s.push(if abort { "ROLLBACK" } else { "COMMIT" }.to_owned());
        Transaction {
            label: if abort { "large aborted" } else { "large" },
            statements: s,
        }
    }

    fn truncate(&mut self) -> Transaction {
        let first = self.table();
        let mut names = vec![first.quoted()];
        if self.rng.percent(30) {
            let second = self.table();
            if second.quoted() != names[0] {
                names.push(second.quoted());
            }
        }
        let restart = if self.rng.percent(50) {
            " RESTART IDENTITY"
        } else {
            ""
        };
        let truncate = format!("TRUNCATE {}{restart}", names.join(", "));
        if self.rng.percent(50) {
            Transaction {
                label: "truncate",
                statements: vec![truncate],
            }
        } else {
            let refill = self.rng.between(1, 50);
            let from = self.fresh(refill + 1);
            let insert =
                first.bulk_insert_sql(&mut self.rng, self.plugin, from, from + refill, false);
            Transaction {
                label: "truncate",
                statements: vec![
                    "BEGIN".to_owned(),
                    self.dml(),
                    truncate,
                    insert,
                    "COMMIT".to_owned(),
                ],
            }
        }
    }

    /// A column added (with a constant or a volatile default, of a type created for it: an
    /// enum or a domain), renamed, retyped or dropped (only columns the DML never names); a
    /// label added to such an enum and used; a table created and filled, or one of those
    /// dropped and created again; a partition created. Each is taken in while streaming.
    fn schema_change(&mut self) -> Transaction {
        self.ddl_counter += 1;
        let id = self.ddl_counter;
        let choice = self.rng.below(9);
        let statements = match choice {
            0 | 1 => {
                let t = self.rng.index(self.schema.tables.len());
                let q = self.schema.tables[t].quoted();
                let name = format!("x{id}");
                let (ty, default) = *self.rng.pick(&[
                    ("int4", ""),
                    ("int4", " DEFAULT 7"),
                    ("text", " DEFAULT md5(random()::text)"),
                    ("timestamptz", " DEFAULT now()"),
                ]);
                self.added_columns.push((t, name.clone(), ty));
                vec![format!("ALTER TABLE {q} ADD COLUMN {name} {ty}{default}")]
            }
            2 if !self.added_columns.is_empty() => {
                let i = self.rng.index(self.added_columns.len());
                let (t, name, ty) = self.added_columns[i].clone();
                let q = self.schema.tables[t].quoted();
                if self.rng.percent(50) {
                    let renamed = format!("{name}r");
                    self.added_columns[i].1 = renamed.clone();
                    vec![format!("ALTER TABLE {q} RENAME COLUMN {name} TO {renamed}")]
                } else if ty == "int4" {
                    self.added_columns[i].2 = "int8";
                    vec![format!("ALTER TABLE {q} ALTER COLUMN {name} TYPE int8")]
                } else {
                    vec![format!("UPDATE {q} SET {name} = DEFAULT WHERE k < 50")]
                }
            }
            3 if !self.added_columns.is_empty() => {
                let i = self.rng.index(self.added_columns.len());
                let (t, name, _) = self.added_columns.remove(i);
                let q = self.schema.tables[t].quoted();
                vec![format!("ALTER TABLE {q} DROP COLUMN {name}")]
            }
            4 => {
                let t = self.rng.index(self.schema.tables.len());
                let q = self.schema.tables[t].quoted();
                let (ty, column) = (format!("public.e{id}"), format!("x{id}"));
                self.added_enums.push((t, column.clone(), ty.clone(), 2));
                vec![
                    format!("CREATE TYPE {ty} AS ENUM ('l0', 'l1')"),
                    format!("ALTER TABLE {q} ADD COLUMN {column} {ty} DEFAULT 'l1'"),
                ]
            }
            5 if !self.added_enums.is_empty() => {
                let i = self.rng.index(self.added_enums.len());
                let (t, column, ty, labels) = self.added_enums[i].clone();
                self.added_enums[i].3 += 1;
                let q = self.schema.tables[t].quoted();
                // Outside a transaction block, as PostgreSQL before 12 requires.
                vec![
                    format!("ALTER TYPE {ty} ADD VALUE 'l{labels}' BEFORE 'l0'"),
                    format!("UPDATE {q} SET {column} = 'l{labels}' WHERE k % 7 = 0"),
                ]
            }
            6 => {
                let t = self.rng.index(self.schema.tables.len());
                let q = self.schema.tables[t].quoted();
                vec![
                    format!("CREATE DOMAIN public.d{id} AS int4 CHECK (VALUE > 0)"),
                    format!("ALTER TABLE {q} ADD COLUMN x{id} public.d{id} DEFAULT 5"),
                ]
            }
            7 if !self.added_tables.is_empty() => {
                let name = self.added_tables[self.rng.index(self.added_tables.len())].clone();
                vec![
                    format!("DROP TABLE {name}"),
                    format!("CREATE TABLE {name} (id int PRIMARY KEY, w int4, v text)"),
                    format!("INSERT INTO {name} SELECT g, g, 'again' || g FROM generate_series(1, 50) g"),
                ]
            }
            8 if self
                .schema
                .tables
                .iter()
                .any(|t| t.kind == TableKind::Partitioned) =>
            {
                let table = self
                    .schema
                    .tables
                    .iter()
                    .find(|t| t.kind == TableKind::Partitioned)
                    .expect("checked above");
                // Years no workload row falls in (the default partition has none of them).
                let year = 2100 + id;
                let leaf = ferry_core::TableName::new(
                    table.name.schema.clone(),
                    format!("{}_{year}", table.name.name),
                );
                vec![format!(
                    "CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ('{year}-01-01') TO ('{}-01-01')",
                    leaf.quoted(),
                    table.quoted(),
                    year + 1
                )]
            }
            _ => {
                let name = format!("public.added_{id}");
                self.added_tables.push(name.clone());
                vec![
                    format!("CREATE TABLE {name} (id int PRIMARY KEY, v text)"),
                    format!("INSERT INTO {name} SELECT g, 'v' || g FROM generate_series(1, 100) g"),
                ]
            }
        };
        Transaction {
            label: "schema change",
            statements,
        }
    }
}
