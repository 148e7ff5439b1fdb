//! The result of `ferry check`: items that pass, warn or fail, each with why and the fix.
//!
//! An item is written for the person reading it at 3 a.m.: a one-line finding that names the
//! object, why it matters, and the exact SQL or setting that fixes it. The same items print
//! as text or serialize as JSON.

use std::fmt;

/// How an item came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        })
    }
}

/// Which database an item is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Source,
    Target,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Target => "target",
        })
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckItem {
    pub status: Status,
    pub side: Side,
    /// A stable identifier for scripts: `wal_level`, `replica_identity`, ….
    pub check: &'static str,
    /// What was found, naming the object.
    pub message: String,
    /// Why it matters (for WARN and FAIL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The SQL or setting that fixes it (for WARN and FAIL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl CheckItem {
    pub fn pass(side: Side, check: &'static str, message: impl Into<String>) -> Self {
        CheckItem {
            status: Status::Pass,
            side,
            check,
            message: message.into(),
            why: None,
            fix: None,
        }
    }

    pub fn warn(side: Side, check: &'static str, message: impl Into<String>) -> Self {
        CheckItem {
            status: Status::Warn,
            ..Self::pass(side, check, message)
        }
    }

    pub fn fail(side: Side, check: &'static str, message: impl Into<String>) -> Self {
        CheckItem {
            status: Status::Fail,
            ..Self::pass(side, check, message)
        }
    }

    pub fn why(mut self, why: impl Into<String>) -> Self {
        self.why = Some(why.into());
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Every item of one run, in the order they were checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct CheckReport {
    pub items: Vec<CheckItem>,
}

impl CheckReport {
    /// Whether anything failed (the command then exits 1).
    pub fn has_failures(&self) -> bool {
        self.items.iter().any(|i| i.status == Status::Fail)
    }

    /// The items about `check` (for tests and scripts).
    pub fn find<'a>(&'a self, check: &'a str) -> impl Iterator<Item = &'a CheckItem> + 'a {
        self.items.iter().filter(move |i| i.check == check)
    }

    fn count(&self, status: Status) -> usize {
        self.items.iter().filter(|i| i.status == status).count()
    }
}

impl fmt::Display for CheckReport {
    /// The human form: one line per item, with indented why and fix lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut side = None;
        for item in &self.items {
            if side != Some(item.side) {
                side = Some(item.side);
                writeln!(f, "{}:", item.side)?;
            }
            writeln!(f, "  {}  {}", item.status, item.message)?;
            if let Some(why) = &item.why {
                writeln!(f, "        why: {why}")?;
            }
            if let Some(fix) = &item.fix {
                let mut lines = fix.lines();
                if let Some(first) = lines.next() {
                    writeln!(f, "        fix: {first}")?;
                }
                for line in lines {
                    writeln!(f, "             {line}")?;
                }
            }
        }
        write!(
            f,
            "{} failed, {} warnings, {} passed",
            self.count(Status::Fail),
            self.count(Status::Warn),
            self.count(Status::Pass)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_shows_why_and_fix() {
        let report = CheckReport {
            items: vec![
                CheckItem::pass(Side::Source, "version", "PostgreSQL 15.4"),
                CheckItem::fail(Side::Source, "wal_level", "wal_level is replica")
                    .why("logical decoding needs logical")
                    .fix("ALTER SYSTEM SET wal_level = logical;\nthen restart"),
            ],
        };
        let text = report.to_string();
        assert!(text.contains("FAIL  wal_level is replica"), "{text}");
        assert!(
            text.contains("fix: ALTER SYSTEM SET wal_level = logical;"),
            "{text}"
        );
        assert!(text.contains("             then restart"), "{text}");
        assert!(text.ends_with("1 failed, 0 warnings, 1 passed"), "{text}");
        assert!(report.has_failures());
    }

    #[test]
    fn json_form_is_an_array_of_items() {
        let report = CheckReport {
            items: vec![CheckItem::warn(Side::Target, "columns", "x").fix("y")],
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json[0]["status"], "WARN");
        assert_eq!(json[0]["side"], "target");
        assert_eq!(json[0]["fix"], "y");
        assert!(json[0].get("why").is_none());
    }
}
