//! `[sync]` settings of the WAL retention guard: how much WAL a pipeline's slot may keep on
//! the source before Ferry warns, and what it does past the maximum.

use std::time::Duration;

use super::{duration, invalid, ConfigError};

/// The guard's thresholds and action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Log a warning once the slot retains more than this many bytes.
    pub warn_bytes: Option<u64>,
    /// Take `action` once the slot retains more than this many bytes.
    pub max_bytes: Option<u64>,
    pub action: RetentionAction,
    pub check_interval: Duration,
}

/// What the guard does past `max_retained_wal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionAction {
    /// Keep the slot (no change is lost) and log an error at every check.
    Keep,
    /// Drop the slot (the source's disk is saved), mark the pipeline for a fresh copy, stop.
    Drop,
}

impl RetentionConfig {
    pub(super) fn parse(
        field: impl Fn(&str) -> String,
        warn: Option<&str>,
        max: Option<&str>,
        action: Option<&str>,
        interval: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let size = |name: &str, text: Option<&str>, default: Option<&str>| match text.or(default) {
            None | Some("off") => Ok(None),
            Some(t) => parse_size(t).map(Some).ok_or_else(|| {
                invalid(
                    field(name),
                    format!("{t:?} is not a size: expected e.g. \"500MB\", \"10GB\" or \"off\""),
                )
            }),
        };
        Ok(RetentionConfig {
            warn_bytes: size("warn_retained_wal", warn, Some("10GB"))?,
            max_bytes: size("max_retained_wal", max, None)?,
            action: match action.unwrap_or("keep") {
                "keep" => RetentionAction::Keep,
                "drop" => RetentionAction::Drop,
                other => {
                    return Err(invalid(
                        field("on_max_retained_wal"),
                        format!("{other:?}: expected \"keep\" or \"drop\""),
                    ))
                }
            },
            check_interval: duration(&field("retention_check_interval"), interval, "30s")?,
        })
    }
}

/// `512`, `100kB`, `500MB`, `10GB`, `1TB` (1024-based, as PostgreSQL's settings).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1 << 10,
        "mb" => 1 << 20,
        "gb" => 1 << 30,
        "tb" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_postgresql_settings() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("100kB"), Some(100 << 10));
        assert_eq!(parse_size("10 GB"), Some(10 << 30));
        assert_eq!(parse_size("1TB"), Some(1 << 40));
        assert_eq!(parse_size("ten"), None);
        assert_eq!(parse_size("5PB"), None);
    }
}
