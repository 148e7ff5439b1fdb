//! [`TableSelection`]: which source tables a pipeline carries, from `tables` and `exclude`.
//!
//! Patterns read like psql's `\dt` patterns: `schema.table`, `*` and `?` as wildcards,
//! unquoted names folded to lower case, double-quoted parts taken literally (`"Sales".*`).
//! An unqualified pattern means the `public` schema. Parsing is pure and happens during
//! config validation, so a bad pattern is reported before anything connects.

use std::fmt;

use ferry_core::TableName;

mod resolve;
pub use resolve::{read as read_selection, resolve, ResolvedSelection, SelectedTable};

/// One `schema.table` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    text: String,
    schema: Part,
    table: Part,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    /// The name, folded to lower case unless quoted.
    name: String,
    /// Contains `*` or `?` (never in a quoted part).
    glob: bool,
    /// Written in double quotes, so taken as written.
    quoted: bool,
}

impl Part {
    fn matches(&self, name: &str) -> bool {
        if self.glob {
            glob_matches(&self.name, name)
        } else {
            self.name == name
        }
    }

    /// The part as it would be written to match what it matches now.
    fn display(&self) -> String {
        if self.glob {
            self.name.clone()
        } else {
            ferry_core::quote_ident(&self.name)
        }
    }

    /// Whether it would match `name` had it been quoted as `name` is spelled: an unquoted
    /// part that differs from `name` only in case.
    fn matches_but_for_case(&self, name: &str) -> bool {
        !self.quoted && !self.matches(name) && self.matches(&name.to_lowercase())
    }
}

impl TablePattern {
    /// Parses `schema.table`, `table` (in `public`), with optional double quotes per part.
    pub fn parse(text: &str) -> Result<TablePattern, String> {
        let parts = split_parts(text)?;
        let (schema, table) = match parts.len() {
            1 => (
                Part {
                    name: "public".to_owned(),
                    glob: false,
                    quoted: false,
                },
                parts[0].clone(),
            ),
            2 => (parts[0].clone(), parts[1].clone()),
            _ => {
                return Err(format!(
                    "table pattern {text:?} has {} dot-separated parts: expected schema.table",
                    parts.len()
                ))
            }
        };
        Ok(TablePattern {
            text: text.to_owned(),
            schema,
            table,
        })
    }

    /// The one table this pattern names, when it has no wildcard.
    pub fn exact_name(&self) -> Option<TableName> {
        (!self.schema.glob && !self.table.glob)
            .then(|| TableName::new(&self.schema.name, &self.table.name))
    }

    /// Whether `table` matches this pattern.
    pub fn matches(&self, table: &TableName) -> bool {
        self.schema.matches(&table.schema) && self.table.matches(&table.name)
    }

    /// For a pattern that matches none of `tables`: the quoted pattern that would match the
    /// tables it misses only because unquoted names fold to lower case (`Odd Schema.*` →
    /// `"Odd Schema".*`), if there are any.
    pub fn quoted_suggestion(&self, tables: &[TableName]) -> Option<String> {
        let part = |p: &Part, name: &str| -> Option<String> {
            if p.matches(name) {
                Some(if p.quoted || p.glob {
                    p.display()
                } else {
                    ferry_core::quote_ident(name)
                })
            } else if p.matches_but_for_case(name) {
                Some(ferry_core::quote_ident(name))
            } else {
                None
            }
        };
        let mut found: Vec<String> = tables
            .iter()
            .filter(|t| !self.matches(t))
            .filter_map(|t| {
                Some(format!(
                    "{}.{}",
                    part(&self.schema, &t.schema)?,
                    part(&self.table, &t.name)?
                ))
            })
            .collect();
        found.sort();
        found.dedup();
        (!found.is_empty()).then(|| found.join(", "))
    }
}

impl fmt::Display for TablePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn split_parts(text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let part = if chars.peek() == Some(&'"') {
            chars.next();
            let mut name = String::new();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        name.push('"');
                    }
                    Some('"') => break,
                    Some(c) => name.push(c),
                    None => {
                        return Err(format!(
                            "table pattern {text:?} has an unclosed double quote"
                        ))
                    }
                }
            }
            Part {
                name,
                glob: false,
                quoted: true,
            }
        } else {
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if c == '"' {
                    return Err(format!(
                        "table pattern {text:?}: a double quote may only start a part"
                    ));
                }
                name.push(c.to_ascii_lowercase());
                chars.next();
            }
            if name.is_empty() {
                return Err(format!("table pattern {text:?} has an empty part"));
            }
            Part {
                glob: name.contains(['*', '?']),
                name,
                quoted: false,
            }
        };
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => continue,
            Some(_) => {
                return Err(format!(
                    "table pattern {text:?}: expected '.' after a quoted part"
                ))
            }
        }
    }
}

/// `*` matches any run of characters, `?` any one character.
fn glob_matches(glob: &str, name: &str) -> bool {
    let g: Vec<char> = glob.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut gi, mut ni) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ni < n.len() {
        match g.get(gi) {
            Some('*') => {
                backtrack = Some((gi, ni));
                gi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                gi += 1;
                ni += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    gi = star + 1;
                    ni = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}

/// Include and exclude patterns together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSelection {
    pub include: Vec<TablePattern>,
    pub exclude: Vec<TablePattern>,
}

impl TableSelection {
    /// Parses both lists; the error names the first bad pattern.
    pub fn parse(include: &[String], exclude: &[String]) -> Result<TableSelection, String> {
        let parse_all = |list: &[String]| {
            list.iter()
                .map(|p| TablePattern::parse(p))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(TableSelection {
            include: parse_all(include)?,
            exclude: parse_all(exclude)?,
        })
    }

    /// Whether `table` is selected: matched by an include and by no exclude pattern.
    pub fn matches(&self, table: &TableName) -> bool {
        self.include.iter().any(|p| p.matches(table))
            && !self.exclude.iter().any(|p| p.matches(table))
    }

    /// The include patterns that match none of `tables`, each with the quoted form that
    /// would match what it misses by case alone (see [`TablePattern::quoted_suggestion`]).
    pub fn unmatched(&self, tables: &[TableName]) -> Vec<(String, Option<String>)> {
        self.include
            .iter()
            .filter(|p| !tables.iter().any(|t| p.matches(t)))
            .map(|p| (p.to_string(), p.quoted_suggestion(tables)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(schema: &str, name: &str) -> TableName {
        TableName::new(schema, name)
    }

    #[test]
    fn wildcards_and_defaults() {
        let p = TablePattern::parse("public.*").unwrap();
        assert!(p.matches(&t("public", "orders")));
        assert!(!p.matches(&t("sales", "orders")));
        let p = TablePattern::parse("orders").unwrap();
        assert!(p.matches(&t("public", "orders")));
        let p = TablePattern::parse("s?les.ord*s").unwrap();
        assert!(p.matches(&t("sales", "orders")));
        assert!(p.matches(&t("soles", "ords")));
        assert!(!p.matches(&t("sales", "order")));
    }

    #[test]
    fn quoting_keeps_case_and_dots() {
        let p = TablePattern::parse(r#""Sales"."Order.Items""#).unwrap();
        assert!(p.matches(&t("Sales", "Order.Items")));
        let p = TablePattern::parse("Sales.Orders").unwrap();
        assert!(p.matches(&t("sales", "orders")));
        assert!(!p.matches(&t("Sales", "Orders")));
        let p = TablePattern::parse(r#""a""b".*"#).unwrap();
        assert!(p.matches(&t("a\"b", "x")));
    }

    #[test]
    fn bad_patterns_are_named() {
        for bad in ["a.b.c", "a..b", "", "\"open", "\"a\"x.b", "a\"b"] {
            let err = TablePattern::parse(bad).unwrap_err();
            assert!(err.contains("table pattern"), "{bad}: {err}");
        }
    }

    #[test]
    fn exclude_wins() {
        let s = TableSelection::parse(&["public.*".into()], &["public.tmp_*".into()]).unwrap();
        assert!(s.matches(&t("public", "orders")));
        assert!(!s.matches(&t("public", "tmp_x")));
    }

    #[test]
    fn a_pattern_that_misses_by_case_alone_suggests_its_quoted_form() {
        let tables = [
            t("Odd Schema", "T1"),
            t("Odd Schema", "t2"),
            t("public", "Mixed"),
        ];
        let s = TableSelection::parse(
            &[
                "Odd Schema.*".into(),
                "mixed".into(),
                "public.nothing*".into(),
                "\"Odd Schema\".t2".into(),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            s.unmatched(&tables),
            vec![
                (
                    "Odd Schema.*".to_owned(),
                    Some("\"Odd Schema\".*".to_owned())
                ),
                ("mixed".to_owned(), Some("\"public\".\"Mixed\"".to_owned())),
                ("public.nothing*".to_owned(), None),
            ]
        );
    }

    #[test]
    fn glob_edge_cases() {
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXbYY"));
        assert!(glob_matches("**", "x"));
    }
}
