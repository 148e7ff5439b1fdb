//! The publication a pgoutput pipeline streams through, kept to its selection: which tables
//! it must name, which it lacks, which Ferry may take out again, and what must be refused.
//!
//! Pure: it compares what the catalog says ([`PublicationInfo`]) with what the pipeline
//! carries ([`ResolvedSelection`]); `ferry check` and the run's setup both use it, so the
//! check says exactly what the run will do.
//!
//! - Named are the carried tables that are not partitions of a carried partitioned table
//!   (PostgreSQL 13 and later take the partitioned table and publish its partitions), or,
//!   before 13, which cannot publish a partitioned table, every carried table that holds
//!   rows (the leaves). Ordinary tables are named `ONLY`, so that an inheritance child
//!   outside the selection stays out.
//! - A publication that exists is extended with what it lacks, whatever created it. A
//!   carried table missing from it sends no change at all, which would be silent loss.
//! - Only tables Ferry itself carried are taken out when no longer selected; a `FOR ALL
//!   TABLES` or `FOR TABLES IN SCHEMA` publication is left as it is, and the apply ignores
//!   changes of tables outside the selection.
//! - Refused, because Ferry would miss changes: a publication that leaves out an operation,
//!   and a carried table published with a row filter or a column list.

use std::fmt;

use ferry_core::{quote_ident, TableName};

use crate::catalog::PublicationInfo;
use crate::selection::{ResolvedSelection, SelectedTable};

/// A table as a publication names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub table: TableName,
    /// Named `ONLY` (an ordinary table: its inheritance children are not taken with it).
    pub only: bool,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.only {
            f.write_str("ONLY ")?;
        }
        f.write_str(&self.table.quoted())
    }
}

/// Why a publication cannot carry the pipeline as it is, and the SQL that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub problem: String,
    pub fix: String,
}

/// What must change in the publication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicationPlan {
    pub name: String,
    /// It does not exist: create it naming `add`.
    pub create: bool,
    pub add: Vec<Member>,
    pub drop: Vec<TableName>,
    /// It publishes tables outside the selection (all tables, whole schemas, or tables
    /// Ferry did not add): their changes arrive and are ignored.
    pub publishes_others: bool,
    pub refusals: Vec<Refusal>,
}

/// The tables a publication must name to carry `selection` on a server of `version_num`.
pub fn members(version_num: u32, selection: &ResolvedSelection) -> Vec<Member> {
    selection
        .tables
        .iter()
        .filter(|t| !t.info.unlogged)
        .filter(|t| {
            if version_num >= 130_000 {
                t.root.is_none()
            } else {
                t.info.relkind == 'r'
            }
        })
        .map(|t: &SelectedTable| Member {
            table: t.info.name.clone(),
            only: t.info.relkind == 'r',
        })
        .collect()
}

/// Compares the publication `name` (`existing`, if it exists) with `selection`. `carried`
/// are the tables the pipeline carried until now (the ones Ferry may take out again).
pub fn plan(
    name: &str,
    version_num: u32,
    existing: Option<&PublicationInfo>,
    selection: &ResolvedSelection,
    carried: &[TableName],
) -> PublicationPlan {
    let wanted = members(version_num, selection);
    let Some(existing) = existing else {
        return PublicationPlan {
            name: name.to_owned(),
            create: true,
            add: wanted,
            ..PublicationPlan::default()
        };
    };
    let quoted = quote_ident(name);
    let mut refusals = Vec::new();
    let missing = existing.missing_operations();
    if !missing.is_empty() {
        refusals.push(Refusal {
            problem: format!(
                "publication {name:?} does not publish {}: those changes would never reach the target",
                missing.join(", ")
            ),
            fix: format!(
                "ALTER PUBLICATION {quoted} SET (publish = 'insert, update, delete{}');",
                if version_num >= 110_000 { ", truncate" } else { "" }
            ),
        });
    }
    for (table, what) in &existing.partial {
        let carried_here = selection
            .tables
            .iter()
            .any(|t| &t.info.name == table || t.root.as_ref() == Some(table));
        if carried_here {
            refusals.push(Refusal {
                problem: format!(
                    "publication {name:?} names table {table} with {what}: the rest of its changes would never reach the target"
                ),
                fix: format!(
                    "ALTER PUBLICATION {quoted} DROP TABLE {t}; ALTER PUBLICATION {quoted} ADD TABLE {t};",
                    t = table.quoted()
                ),
            });
        }
    }
    let covered = |m: &Member| existing.publishes(&m.table) || existing.named.contains(&m.table);
    let add: Vec<Member> = wanted.iter().filter(|m| !covered(m)).cloned().collect();
    let drop: Vec<TableName> = if existing.all_tables {
        Vec::new()
    } else {
        existing
            .named
            .iter()
            .filter(|t| carried.contains(t) && !selection.contains(t))
            .cloned()
            .collect()
    };
    let publishes_others = existing.all_tables
        || !existing.schemas.is_empty()
        || existing
            .named
            .iter()
            .any(|t| !selection.contains(t) && !drop.contains(t));
    PublicationPlan {
        name: name.to_owned(),
        create: false,
        add,
        drop,
        publishes_others,
        refusals,
    }
}

impl PublicationPlan {
    /// Nothing to create, add or drop.
    pub fn is_noop(&self) -> bool {
        !self.create && self.add.is_empty() && self.drop.is_empty()
    }

    /// The statements that make the publication what the plan says, in order.
    pub fn statements(&self) -> Vec<String> {
        let name = quote_ident(&self.name);
        let list = |m: &[Member]| {
            m.iter()
                .map(Member::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = Vec::new();
        if self.create {
            if !self.add.is_empty() {
                out.push(format!(
                    "CREATE PUBLICATION {name} FOR TABLE {}",
                    list(&self.add)
                ));
            }
            return out;
        }
        if !self.add.is_empty() {
            out.push(format!(
                "ALTER PUBLICATION {name} ADD TABLE {}",
                list(&self.add)
            ));
        }
        if !self.drop.is_empty() {
            let tables: Vec<String> = self.drop.iter().map(TableName::quoted).collect();
            out.push(format!(
                "ALTER PUBLICATION {name} DROP TABLE {}",
                tables.join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ReplicaIdentity, TableInfo};
    use crate::selection::{resolve, TableSelection};

    fn table(oid: u32, name: &str, relkind: char, is_partition: bool) -> TableInfo {
        TableInfo {
            name: TableName::new("public", name),
            oid,
            relkind,
            is_partition,
            replica_identity: ReplicaIdentity::Default,
            has_primary_key: true,
            has_identity_index: false,
            can_select: true,
            owned: true,
            unlogged: false,
        }
    }

    fn selection() -> ResolvedSelection {
        let all = vec![
            table(1, "t1", 'r', false),
            table(2, "t2", 'r', false),
            table(3, "events", 'p', false),
            table(4, "events_a", 'r', true),
        ];
        resolve(
            &TableSelection::parse(&["public.*".into()], &[]).unwrap(),
            all,
            &[(4, 3)],
        )
    }

    fn everything() -> PublicationInfo {
        PublicationInfo {
            insert: true,
            update: true,
            delete: true,
            truncate: true,
            owned: true,
            ..PublicationInfo::default()
        }
    }

    fn t(name: &str) -> TableName {
        TableName::new("public", name)
    }

    #[test]
    fn a_new_publication_names_roots_from_13_and_leaves_before() {
        let new = plan("p", 150_000, None, &selection(), &[]);
        assert_eq!(
            new.statements(),
            vec![
                r#"CREATE PUBLICATION "p" FOR TABLE ONLY "public"."t1", ONLY "public"."t2", "public"."events""#
            ]
        );
        let old = plan("p", 120_000, None, &selection(), &[]);
        assert_eq!(
            old.statements(),
            vec![
                r#"CREATE PUBLICATION "p" FOR TABLE ONLY "public"."t1", ONLY "public"."t2", ONLY "public"."events_a""#
            ]
        );
    }

    #[test]
    fn an_existing_publication_is_extended_with_what_it_lacks() {
        let existing = PublicationInfo {
            tables: vec![t("t1")],
            named: vec![t("t1"), t("gone"), t("theirs")],
            ..everything()
        };
        let plan = plan(
            "bars_pub",
            150_000,
            Some(&existing),
            &selection(),
            &[t("gone")],
        );
        assert_eq!(
            plan.statements(),
            vec![
                r#"ALTER PUBLICATION "bars_pub" ADD TABLE ONLY "public"."t2", "public"."events""#
                    .to_owned(),
                r#"ALTER PUBLICATION "bars_pub" DROP TABLE "public"."gone""#.to_owned(),
            ]
        );
        assert!(plan.publishes_others, "theirs stays, and is ignored");
        assert!(plan.refusals.is_empty());
    }

    #[test]
    fn all_tables_needs_nothing_and_drops_nothing() {
        let existing = PublicationInfo {
            all_tables: true,
            ..everything()
        };
        let plan = plan("p", 150_000, Some(&existing), &selection(), &[t("gone")]);
        assert!(plan.is_noop());
        assert!(plan.publishes_others);
    }

    #[test]
    fn missing_operations_and_partial_tables_are_refused() {
        let existing = PublicationInfo {
            truncate: false,
            tables: vec![t("t1"), t("t2"), t("events_a")],
            named: vec![t("t1"), t("t2"), t("events")],
            partial: vec![(t("t1"), "a row filter (WHERE)")],
            ..everything()
        };
        let plan = plan("p", 150_000, Some(&existing), &selection(), &[]);
        assert!(plan.is_noop());
        assert_eq!(plan.refusals.len(), 2, "{:?}", plan.refusals);
        assert!(plan.refusals[0]
            .problem
            .contains("does not publish truncate"));
        assert!(plan.refusals[1].fix.contains(r#"DROP TABLE "public"."t1""#));
    }
}
