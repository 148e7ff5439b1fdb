//! Helpers shared by the `check` integration tests: run the checks against real clusters and
//! pick out items.

#![allow(dead_code)]

use ferry_pgwire::ConnParams;
use ferry_postgres::check::{
    check_source, run_check, CheckItem, CheckReport, SourceCheck, SourceFindings, Status,
    TargetCheck,
};
use ferry_postgres::{Plugin, TableSelection};
use ferry_testkit::TempCluster;

pub const SLOT: &str = "ferry_test";
pub const PUBLICATION: &str = "ferry_test";

/// Connection settings for `user` (with `password`) on `cluster`, database `db`.
pub fn conn(cluster: &TempCluster, user: &str, password: Option<&str>, db: &str) -> ConnParams {
    ConnParams::parse(&format!(
        "{}?sslmode=disable",
        cluster.url(user, password, db)
    ))
    .unwrap()
}

/// Settings for a source check of `public.*` with `plugin`.
pub struct Source {
    pub conn: ConnParams,
    pub plugin: Plugin,
    pub tables: TableSelection,
    pub logical_decoding: bool,
}

impl Source {
    pub fn new(conn: ConnParams, plugin: Plugin) -> Self {
        Source {
            conn,
            plugin,
            tables: TableSelection::parse(&["public.*".to_owned()], &[]).unwrap(),
            logical_decoding: true,
        }
    }

    pub fn check(&self) -> SourceCheck<'_> {
        SourceCheck {
            conn: &self.conn,
            plugin: self.plugin,
            slot: SLOT,
            publication: (self.plugin == Plugin::Pgoutput).then_some(PUBLICATION),
            tables: &self.tables,
            logical_decoding: self.logical_decoding,
            snapshot_workers: 4,
            timestamp: None,
        }
    }

    pub async fn run(&self) -> SourceFindings {
        check_source(self.check()).await
    }

    pub async fn run_with_target(&self, target: &ConnParams) -> CheckReport {
        run_check(
            self.check(),
            Some(TargetCheck {
                conn: target,
                progress_schema: "ferry",
            }),
        )
        .await
    }
}

/// The items of `check`, failing the test with the whole report if there are none.
pub fn items<'a>(items: &'a [CheckItem], check: &str) -> Vec<&'a CheckItem> {
    let found: Vec<&CheckItem> = items.iter().filter(|i| i.check == check).collect();
    assert!(!found.is_empty(), "no {check:?} item in {}", render(items));
    found
}

/// The single item of `check` with `status`, failing with the report if absent.
pub fn one<'a>(list: &'a [CheckItem], check: &str, status: Status) -> &'a CheckItem {
    let found = items(list, check);
    found
        .iter()
        .copied()
        .find(|i| i.status == status)
        .unwrap_or_else(|| panic!("no {status} {check:?} item in {}", render(list)))
}

/// The report as the user sees it, for assertion messages.
pub fn render(items: &[CheckItem]) -> String {
    CheckReport {
        items: items.to_vec(),
    }
    .to_string()
}

/// No item failed; panics with the report otherwise.
pub fn assert_no_failures(items: &[CheckItem]) {
    assert!(
        items.iter().all(|i| i.status != Status::Fail),
        "unexpected failures:\n{}",
        render(items)
    );
}
