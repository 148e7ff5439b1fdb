//! The pool of column types a torture schema draws from, and how to write values of each as
//! SQL: an expression of an integer (for bulk `INSERT ... SELECT` over `generate_series`,
//! and for ordinary values) and a list of edge literals per type (values whose text forms
//! differ although `=` may call them equal, empty and extreme values).
//!
//! Which types a case may use depends on the plugin: what a plugin documents it cannot carry
//! (README, "Which output plugin"; `ferry check` names it) is left out for that plugin, so a
//! difference in the end state is always a bug and never a documented limit.

use ferry_core::quote_literal;

use super::rng::Rng;
use super::{Features, Plugin};

/// A column type of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Int2,
    Int4,
    Int8,
    Numeric,
    Numeric12x2,
    Numeric20x6,
    Text,
    Varchar,
    Bool,
    Bytea,
    Date,
    Timestamp,
    Timestamptz,
    Timetz,
    Interval,
    Uuid,
    Json,
    Jsonb,
    Xml,
    Point,
    Box,
    IntArray,
    TextArray,
    Int4Range,
    TstzRange,
    Enum,
    Domain,
    Money,
    Citext,
    Hstore,
}

/// Every type of the pool, before the plugin's and the features' filter.
pub const ALL: [ColumnType; 30] = [
    ColumnType::Int2,
    ColumnType::Int4,
    ColumnType::Int8,
    ColumnType::Numeric,
    ColumnType::Numeric12x2,
    ColumnType::Numeric20x6,
    ColumnType::Text,
    ColumnType::Varchar,
    ColumnType::Bool,
    ColumnType::Bytea,
    ColumnType::Date,
    ColumnType::Timestamp,
    ColumnType::Timestamptz,
    ColumnType::Timetz,
    ColumnType::Interval,
    ColumnType::Uuid,
    ColumnType::Json,
    ColumnType::Jsonb,
    ColumnType::Xml,
    ColumnType::Point,
    ColumnType::Box,
    ColumnType::IntArray,
    ColumnType::TextArray,
    ColumnType::Int4Range,
    ColumnType::TstzRange,
    ColumnType::Enum,
    ColumnType::Domain,
    ColumnType::Money,
    ColumnType::Citext,
    ColumnType::Hstore,
];

/// The enum type every schema creates (Ferry creates it on the target).
pub const ENUM_TYPE: &str = "public.torture_mood";
/// The domain type every schema creates.
pub const DOMAIN_TYPE: &str = "public.torture_positive";

/// SQL that creates the user types the pool uses, on the source.
pub const TYPES_SQL: &str =
    "CREATE TYPE public.torture_mood AS ENUM ('sad', 'ok', 'happy', 'Very Happy');\n\
     CREATE DOMAIN public.torture_positive AS integer CHECK (VALUE > 0);\n";

/// The types a case with `plugin` and `features` may draw from.
pub fn pool(plugin: Plugin, features: &Features) -> Vec<ColumnType> {
    ALL.iter()
        .copied()
        .filter(|t| t.carried_by(plugin))
        .filter(|t| features.contrib_types || t.extension().is_none())
        .collect()
}

impl ColumnType {
    /// Whether `plugin` carries every value of the type exactly (README's plugin table).
    pub fn carried_by(self, plugin: Plugin) -> bool {
        match plugin {
            Plugin::Pgoutput | Plugin::Wal2json => true,
            // decoderbufs sends timetz without its zone and money without its scale; Ferry
            // stops on them and `ferry check` fails the table.
            Plugin::Decoderbufs => !matches!(self, ColumnType::Timetz | ColumnType::Money),
        }
    }

    /// The contrib extension the type needs (created on both sides before the schema).
    pub fn extension(self) -> Option<&'static str> {
        match self {
            ColumnType::Citext => Some("citext"),
            ColumnType::Hstore => Some("hstore"),
            _ => None,
        }
    }

    /// Whether the type can be a primary-key column here.
    pub fn keyable(self) -> bool {
        matches!(
            self,
            ColumnType::Int4 | ColumnType::Int8 | ColumnType::Text | ColumnType::Uuid
        )
    }

    /// The type as written in CREATE TABLE.
    pub fn sql(self) -> &'static str {
        match self {
            ColumnType::Int2 => "int2",
            ColumnType::Int4 => "int4",
            ColumnType::Int8 => "int8",
            ColumnType::Numeric => "numeric",
            ColumnType::Numeric12x2 => "numeric(12,2)",
            ColumnType::Numeric20x6 => "numeric(20,6)",
            ColumnType::Text => "text",
            ColumnType::Varchar => "varchar(40)",
            ColumnType::Bool => "bool",
            ColumnType::Bytea => "bytea",
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Timestamptz => "timestamptz",
            ColumnType::Timetz => "timetz",
            ColumnType::Interval => "interval",
            ColumnType::Uuid => "uuid",
            ColumnType::Json => "json",
            ColumnType::Jsonb => "jsonb",
            ColumnType::Xml => "xml",
            ColumnType::Point => "point",
            ColumnType::Box => "box",
            ColumnType::IntArray => "int4[]",
            ColumnType::TextArray => "text[]",
            ColumnType::Int4Range => "int4range",
            ColumnType::TstzRange => "tstzrange",
            ColumnType::Enum => ENUM_TYPE,
            ColumnType::Domain => DOMAIN_TYPE,
            ColumnType::Money => "money",
            ColumnType::Citext => "citext",
            ColumnType::Hstore => "hstore",
        }
    }

    /// A value of the type computed from the integer SQL expression `g` (deterministic in
    /// `g`, different for different `g` where the type allows).
    pub fn expr(self, g: &str) -> String {
        match self {
            ColumnType::Int2 => format!("(({g}) % 30000)::int2"),
            ColumnType::Int4 => format!("(({g}) * 7)::int4"),
            ColumnType::Int8 => format!("(({g})::int8 * 1000003)"),
            ColumnType::Numeric => format!("(({g}) / 7.0)"),
            ColumnType::Numeric12x2 => format!("(({g}) / 3.0)::numeric(12,2)"),
            ColumnType::Numeric20x6 => format!("(({g}) * 1.0000005)::numeric(20,6)"),
            ColumnType::Text => format!("('t ' || ({g}))"),
            ColumnType::Varchar => format!("left('v' || md5(({g})::text), 40)"),
            ColumnType::Bool => format!("(({g}) % 2 = 0)"),
            ColumnType::Bytea => format!("decode(md5(({g})::text), 'hex')"),
            ColumnType::Date => format!("(date '2000-01-01' + ({g}) % 10000)"),
            ColumnType::Timestamp => {
                format!("(timestamp '2000-01-01' + ({g}) * interval '37 min 1.5 s')")
            }
            ColumnType::Timestamptz => {
                format!("(timestamptz '2000-01-01 00:00+00' + ({g}) * interval '1 h 0.25 s')")
            }
            ColumnType::Timetz => format!(
                "format('%s:%s:07.5+%s', abs({g}) % 24, abs({g}) % 60, abs({g}) % 13)::timetz"
            ),
            ColumnType::Interval => format!("(({g}) * interval '1 day 1 second')"),
            ColumnType::Uuid => format!("md5(({g})::text)::uuid"),
            ColumnType::Json => {
                format!("json_build_object('g', {g}, 'a', json_build_array({g}, 'x', NULL))")
            }
            ColumnType::Jsonb => format!(
                "jsonb_build_object('g', {g}, 'n', jsonb_build_object('even', ({g}) % 2 = 0))"
            ),
            ColumnType::Xml => format!("xmlelement(name r, xmlattributes({g} AS g), 'v' || ({g}))"),
            ColumnType::Point => format!("point({g}, ({g}) / 2.0)"),
            ColumnType::Box => format!("box(point({g}, 0), point(0, abs({g}) % 17 + 1))"),
            ColumnType::IntArray => format!("ARRAY[{g}, ({g}) + 1, NULL]::int4[]"),
            ColumnType::TextArray => format!("ARRAY['a' || ({g}), 'b c', NULL]::text[]"),
            ColumnType::Int4Range => format!("int4range({g}, ({g}) + abs({g}) % 10 + 1)"),
            ColumnType::TstzRange => format!(
                "tstzrange(timestamptz '2020-01-01 00:00+00' + ({g}) * interval '1 h', NULL)"
            ),
            ColumnType::Enum => format!("(enum_range(NULL::{ENUM_TYPE}))[1 + abs({g}) % 4]"),
            ColumnType::Domain => format!("(1 + abs({g}) % 1000)::{DOMAIN_TYPE}"),
            ColumnType::Money => format!("(({g}) * 0.01)::numeric::money"),
            ColumnType::Citext => format!("('Ab' || ({g}))::citext"),
            ColumnType::Hstore => format!("hstore('k' || abs({g}) % 5, ({g})::text)"),
        }
    }

    /// Edge values of the type as text, for `'...'::type` literals.
    fn edges(self, plugin: Plugin) -> Vec<&'static str> {
        match self {
            ColumnType::Int2 => vec!["-32768", "32767", "0"],
            ColumnType::Int4 => vec!["-2147483648", "2147483647", "0"],
            ColumnType::Int8 => vec!["-9223372036854775808", "9223372036854775807"],
            ColumnType::Numeric => {
                let mut v = vec![
                    "1.0",
                    "1.00",
                    "-0.000",
                    "0.000000000000000000001",
                    "12345678901234567890.123456789",
                ];
                // wal2json writes NaN and infinities as null (documented; ferry check warns).
                if plugin != Plugin::Wal2json {
                    v.extend(["NaN", "Infinity", "-Infinity"]);
                }
                v
            }
            ColumnType::Numeric12x2 => vec!["0.10", "-9999999999.99", "1"],
            ColumnType::Numeric20x6 => vec!["0.000001", "-99999999999999.999999", "2.5"],
            ColumnType::Text => vec![
                "",
                "tab\there\nnewline \\ backslash \"quote\" 'single'",
                "ünïcödé 🚀",
                " NULL ",
            ],
            ColumnType::Varchar => vec![" ", "trailing  ", "ÄÖÜ"],
            ColumnType::Bool => vec!["true", "false"],
            ColumnType::Bytea => vec!["\\x", "\\x00ff00", "\\xdeadbeef"],
            ColumnType::Date => vec!["infinity", "-infinity", "4713-01-01 BC", "2000-02-29"],
            ColumnType::Timestamp => vec!["infinity", "1999-12-31 23:59:59.999999", "2000-01-01"],
            ColumnType::Timestamptz => vec![
                "-infinity",
                "2020-06-01 12:00+05:30",
                "1970-01-01 00:00:00.000001+00",
            ],
            ColumnType::Timetz => vec!["23:59:59.999999+14", "00:00-12", "12:00+05:30"],
            ColumnType::Interval => vec!["1 day", "24 hours", "-1 mon 2 days", "0", "1 year -1 s"],
            ColumnType::Uuid => vec!["00000000-0000-0000-0000-000000000000"],
            ColumnType::Json => vec![
                "{\"a\" : 1,  \"a\": 2}",
                "[]",
                "null",
                "\"str\"",
                "{\"b\": [1.50, 2e3]}",
            ],
            ColumnType::Jsonb => vec!["{}", "[1, \"2\", null]", "{\"k\": 1.500}"],
            ColumnType::Xml => vec!["<a/>", "<r>&amp; x</r>", "text only"],
            ColumnType::Point => vec!["(0,0)", "(-0,0)", "(1.5,-2.25)"],
            ColumnType::Box => vec!["(2,2),(0,0)", "(4,1),(0,0)", "(1,1),(1,1)"],
            ColumnType::IntArray => vec!["{}", "{NULL}", "{{1,2},{3,4}}"],
            ColumnType::TextArray => vec![
                "{}",
                "{\"\",\"\"}",
                "{\"with \\\"quote\\\"\",\"back\\\\slash\"}",
            ],
            ColumnType::Int4Range => vec!["empty", "(,5]", "[1,)"],
            ColumnType::TstzRange => vec!["empty", "[2020-01-01 00:00+00,infinity)"],
            ColumnType::Enum => vec!["sad", "Very Happy"],
            ColumnType::Domain => vec!["1", "2147483647"],
            ColumnType::Money => vec!["-92233720368547758.08", "0", "1234.5"],
            ColumnType::Citext => vec!["abc", "ABC", "ÄÖ"],
            ColumnType::Hstore => vec!["", "a=>NULL", "\"x y\"=>\"1\", b=>2"],
        }
    }

    /// One of the type's edge values as a SQL literal with its cast.
    pub fn edge(self, rng: &mut Rng, plugin: Plugin) -> String {
        let edges = self.edges(plugin);
        format!(
            "{}::{}",
            quote_literal(rng.pick::<&str>(&edges)),
            self.sql()
        )
    }

    /// A random value as SQL: an edge literal now and then, otherwise [`ColumnType::expr`]
    /// of a random integer.
    pub fn value(self, rng: &mut Rng, plugin: Plugin) -> String {
        if rng.percent(25) {
            self.edge(rng, plugin)
        } else {
            self.expr(&rng.between(0, 100_000).to_string())
        }
    }
}
