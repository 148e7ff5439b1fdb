//! decoderbufs' typed datums turned back into the text input of the column's type.
//!
//! decoderbufs 2.1 (`set_datum_value` in `decoderbufs.c`) chooses the protobuf field by
//! type oid and calls the type's output function only for some types:
//!
//! ```text
//!  bool                         datum_bool       → t / f
//!  int2, int4                   datum_int32      → decimal
//!  int8, oid                    datum_int64      → decimal
//!  float4 / float8              datum_float / _double → shortest round-trip digits, in
//!                                                   PostgreSQL's layout (1e+20, 1.5e-07),
//!                                                   NaN, Infinity, -Infinity
//!  numeric, "char", varchar, bpchar, text, json, jsonb, xml, bit, varbit, uuid, interval
//!                               datum_string     → the output text, as it is
//!  timestamp, timestamptz       datum_int64      µs since 1970-01-01 (±infinity passed
//!                                                   as i64::MAX / i64::MIN) → ISO text,
//!                                                   `+00` for timestamptz
//!  date                         datum_int32      days since 1970-01-01 → ISO date
//!  time                         datum_int64      µs since midnight → hh:mm:ss[.ffffff]
//!  bytea                        datum_bytes      raw bytes → \x + lowercase hex
//!  point                        datum_point      (x,y) with float8 digits
//!  any other type (arrays, enums, inet, ranges, domains, name, PostGIS …)
//!                               datum_bytes      the output text
//!  unchanged TOAST value        datum_missing    → Datum::UnchangedToast
//!  NULL                         no datum         → Datum::Null
//! ```
//!
//! Two types cannot be reproduced and are [`Lossy`] errors, never a guess: `timetz`
//! (decoderbufs sends `time + zone` as a double, the UTC time, and drops the offset, so
//! `03:04:05+02` and `01:04:05+00`, which PostgreSQL keeps apart, are the same number) and
//! `money` (an integer count of the smallest currency unit, whose scale depends on the
//! server's `lc_monetary`). Both go through the output function if they are a domain's
//! base type or an array's element type, so those are exact.
//!
//! The timestamp conversion adds 946,684,800 s in 64-bit arithmetic that wraps (PostgreSQL
//! and its extensions build with `-fwrapv`) for years above 294,246; the subtraction here
//! wraps back, so every finite timestamp is exact except the two instants in 294,247 AD
//! whose sum lands on i64::MAX and i64::MIN, which read as `infinity` and `-infinity`.

use std::fmt::{LowerExp, Write};

use ferry_core::Datum;

use super::proto;

/// `pg_type` oids of the types decoderbufs treats specially.
mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const POINT: u32 = 600;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const MONEY: u32 = 790;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const BIT: u32 = 1560;
    pub const VARBIT: u32 = 1562;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// A value whose text cannot be reconstructed from what decoderbufs sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Lossy {
    pub type_name: &'static str,
    pub reason: &'static str,
}

/// Why a datum could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Problem {
    Lossy(Lossy),
    Invalid(String),
}

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The datum of a column of type `type_oid`.
pub(super) fn datum(type_oid: u32, datum: Option<&proto::Datum>) -> Result<Datum, Problem> {
    use proto::Datum as D;
    let text = match (type_oid, datum) {
        (_, None) => return Ok(Datum::Null),
        (_, Some(D::Missing(true))) => return Ok(Datum::UnchangedToast),
        (oid::MONEY, Some(_)) => {
            return Err(Problem::Lossy(Lossy {
                type_name: "money",
                reason: "decoderbufs sends an integer count of the smallest currency unit, \
                         whose scale depends on lc_monetary",
            }))
        }
        (oid::TIMETZ, Some(_)) => {
            return Err(Problem::Lossy(Lossy {
                type_name: "time with time zone",
                reason: "decoderbufs sends only the UTC time and drops the zone offset",
            }))
        }
        (oid::BOOL, Some(D::Bool(b))) => if *b { "t" } else { "f" }.to_owned(),
        (oid::INT2 | oid::INT4, Some(D::Int32(v))) => v.to_string(),
        (oid::INT8 | oid::OID, Some(D::Int64(v))) => v.to_string(),
        (oid::FLOAT4, Some(D::Float(v))) => float(*v, v.is_nan(), 6),
        (oid::FLOAT8, Some(D::Double(v))) => float(*v, v.is_nan(), 15),
        (
            oid::NUMERIC
            | oid::CHAR
            | oid::VARCHAR
            | oid::BPCHAR
            | oid::TEXT
            | oid::JSON
            | oid::JSONB
            | oid::XML
            | oid::BIT
            | oid::VARBIT
            | oid::UUID
            | oid::INTERVAL,
            Some(D::String(s)),
        ) => s.clone(),
        (oid::TIMESTAMP, Some(D::Int64(v))) => timestamp(*v, false),
        (oid::TIMESTAMPTZ, Some(D::Int64(v))) => timestamp(*v, true),
        (oid::DATE, Some(D::Int32(v))) => date(*v),
        (oid::TIME, Some(D::Int64(v))) => time(*v).ok_or_else(|| {
            Problem::Invalid(format!("has time {v} µs, outside 00:00:00 to 24:00:00"))
        })?,
        (oid::BYTEA, Some(D::Bytes(bytes))) => hex(bytes),
        (oid::POINT, Some(D::Point(p))) => {
            format!(
                "({},{})",
                float(p.x, p.x.is_nan(), 15),
                float(p.y, p.y.is_nan(), 15)
            )
        }
        (other, Some(D::Bytes(bytes))) if !is_special(other) => String::from_utf8(bytes.clone())
            .map_err(|_| {
                Problem::Invalid(
                    "is not UTF-8 text (decoderbufs sends the server encoding: the database \
                     must be UTF8)"
                        .to_owned(),
                )
            })?,
        (other, Some(datum)) => {
            return Err(Problem::Invalid(format!(
                "is a {} for type oid {other}, which decoderbufs never sends",
                field_name(datum)
            )))
        }
    };
    Ok(Datum::Text(text.into_bytes().into()))
}

fn is_special(type_oid: u32) -> bool {
    matches!(
        type_oid,
        oid::BOOL
            | oid::INT2
            | oid::INT4
            | oid::INT8
            | oid::OID
            | oid::FLOAT4
            | oid::FLOAT8
            | oid::MONEY
            | oid::NUMERIC
            | oid::CHAR
            | oid::VARCHAR
            | oid::BPCHAR
            | oid::TEXT
            | oid::JSON
            | oid::JSONB
            | oid::XML
            | oid::BIT
            | oid::VARBIT
            | oid::UUID
            | oid::INTERVAL
            | oid::TIMESTAMP
            | oid::TIMESTAMPTZ
            | oid::DATE
            | oid::TIME
            | oid::TIMETZ
            | oid::BYTEA
            | oid::POINT
    )
}

fn field_name(datum: &proto::Datum) -> &'static str {
    use proto::Datum as D;
    match datum {
        D::Int32(_) => "datum_int32",
        D::Int64(_) => "datum_int64",
        D::Float(_) => "datum_float",
        D::Double(_) => "datum_double",
        D::Bool(_) => "datum_bool",
        D::String(_) => "datum_string",
        D::Bytes(_) => "datum_bytes",
        D::Point(_) => "datum_point",
        D::Missing(_) => "datum_missing (false)",
    }
}

/// PostgreSQL's float output (`extra_float_digits` 1, the default): the shortest digits
/// that read back as the same value, fixed-point when the decimal exponent is in
/// `-4..fixed_below` (6 for float4, 15 for float8), else `d.ddde±XX`.
fn float(v: impl LowerExp, nan: bool, fixed_below: i32) -> String {
    if nan {
        return "NaN".to_owned();
    }
    // Rust's `{:e}` prints the shortest round-trip digits: "1.5e-7", "-1e20", "inf".
    let scientific = format!("{v:e}");
    let (negative, unsigned) = match scientific.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, scientific.as_str()),
    };
    let sign = if negative { "-" } else { "" };
    if unsigned == "inf" {
        return format!("{sign}Infinity");
    }
    let Some((mantissa, exponent)) = unsigned.split_once('e') else {
        return scientific;
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return scientific;
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if digits.bytes().all(|b| b == b'0') {
        return format!("{sign}0");
    }
    let mut out = sign.to_owned();
    if (-4..fixed_below).contains(&exponent) {
        if exponent < 0 {
            out.push_str("0.");
            for _ in exponent..-1 {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let point = usize::try_from(exponent).unwrap_or(0) + 1;
            let (int, frac) = digits.split_at(point.min(digits.len()));
            out.push_str(int);
            for _ in digits.len()..point {
                out.push('0');
            }
            if !frac.is_empty() {
                out.push('.');
                out.push_str(frac);
            }
        }
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{exp_sign}{:02}", exponent.unsigned_abs());
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("\\x");
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// `timestamp` (or `timestamptz` at UTC) text of µs since 1970-01-01.
fn timestamp(unix_micros: i64, with_zone: bool) -> String {
    match unix_micros {
        i64::MAX => return "infinity".to_owned(),
        i64::MIN => return "-infinity".to_owned(),
        _ => {}
    }
    let pg_micros = unix_micros.wrapping_sub(PG_EPOCH_MICROS);
    let days = pg_micros.div_euclid(MICROS_PER_DAY);
    let of_day = pg_micros.rem_euclid(MICROS_PER_DAY);
    let (year, before_christ) = ymd(days + i64::from(PG_EPOCH_DAYS));
    let mut out = year;
    out.push(' ');
    push_time(&mut out, of_day);
    if with_zone {
        out.push_str("+00");
    }
    if before_christ {
        out.push_str(" BC");
    }
    out
}

/// `date` text of days since 1970-01-01 (±infinity wrapped by the plugin's addition).
fn date(unix_days: i32) -> String {
    match unix_days.wrapping_sub(PG_EPOCH_DAYS) {
        i32::MAX => "infinity".to_owned(),
        i32::MIN => "-infinity".to_owned(),
        pg_days => {
            let (mut out, before_christ) = ymd(i64::from(pg_days) + i64::from(PG_EPOCH_DAYS));
            if before_christ {
                out.push_str(" BC");
            }
            out
        }
    }
}

/// `time` text of µs since midnight (24:00:00 included).
fn time(micros: i64) -> Option<String> {
    if !(0..=MICROS_PER_DAY).contains(&micros) {
        return None;
    }
    let mut out = String::new();
    push_time(&mut out, micros);
    Some(out)
}

fn push_time(out: &mut String, micros: i64) {
    let seconds = micros / 1_000_000;
    let fraction = micros % 1_000_000;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

/// `YYYY-MM-DD` of days since 1970-01-01, years before 1 AD as their BC number (the flag
/// says to append ` BC`), by Howard Hinnant's civil-from-days era arithmetic (proleptic
/// Gregorian, like PostgreSQL).
fn ymd(unix_days: i64) -> (String, bool) {
    let z = unix_days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    let (shown, before_christ) = if year > 0 {
        (year, false)
    } else {
        (1 - year, true)
    };
    (format!("{shown:04}-{month:02}-{day:02}"), before_christ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_postgresql_prints_them() {
        let doubles = [
            (0.1, "0.1"),
            (1e20, "1e+20"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (123_456_789_012_345.0, "123456789012345"),
            (1e15, "1e+15"),
            (-2.25, "-2.25"),
            (-0.0, "-0"),
            (0.0, "0"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
            (1.234_567_890_123_456_8e17, "1.2345678901234568e+17"),
            (-2.225_073_858_507_201_4e-308, "-2.2250738585072014e-308"),
            (5e-324, "5e-324"),
        ];
        for (v, text) in doubles {
            assert_eq!(float(v, v.is_nan(), 15), text, "{v:e}");
        }
        let singles = [
            (0.1_f32, "0.1"),
            (123_456.0, "123456"),
            (1_234_567.0, "1.234567e+06"),
            (3.402_823_5e38, "3.4028235e+38"),
            (-0.0, "-0"),
        ];
        for (v, text) in singles {
            assert_eq!(float(v, v.is_nan(), 6), text, "{v:e}");
        }
    }

    #[test]
    fn dates_and_times_print_in_iso_style() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(PG_EPOCH_DAYS), "2000-01-01");
        assert_eq!(date(-719_162 - 366), "0001-01-01 BC");
        assert_eq!(date(i32::MAX.wrapping_add(PG_EPOCH_DAYS)), "infinity");
        assert_eq!(date(i32::MIN.wrapping_add(PG_EPOCH_DAYS)), "-infinity");
        assert_eq!(timestamp(0, true), "1970-01-01 00:00:00+00");
        assert_eq!(timestamp(-1, false), "1969-12-31 23:59:59.999999");
        assert_eq!(
            timestamp(PG_EPOCH_MICROS + 120_000, false),
            "2000-01-01 00:00:00.12"
        );
        assert_eq!(timestamp(i64::MAX, false), "infinity");
        assert_eq!(timestamp(i64::MIN, true), "-infinity");
        assert_eq!(time(0).as_deref(), Some("00:00:00"));
        assert_eq!(time(MICROS_PER_DAY).as_deref(), Some("24:00:00"));
        assert_eq!(time(MICROS_PER_DAY + 1), None);
        assert_eq!(time(-1), None);
    }
}
