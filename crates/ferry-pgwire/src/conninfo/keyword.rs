//! The libpq keyword/value form: `host=db1 port=5432 dbname='my db' password='it\'s'`.
//!
//! Follows libpq's `conninfo_parse`: whitespace separates pairs and may surround `=`; a value is
//! either single-quoted (where `\'` and `\\` are escapes) or runs to the next whitespace (where
//! a backslash also escapes the next character). [`quote`] is the inverse, used when printing
//! settings back in this form.
//!
//! Invariant: errors never contain a value. When an unquoted password contained a space, the
//! word after it is a piece of the password, so errors about that word do not print it.

use std::borrow::Cow;

use super::raw::RawSettings;
use super::ConnInfoError;

/// Parses the keyword/value form; an empty or all-whitespace string gives empty settings.
pub(super) fn parse(s: &str) -> Result<RawSettings, ConnInfoError> {
    let chars: Vec<char> = s.chars().collect();
    let mut raw = RawSettings::default();
    let mut i = 0;
    // Set after an unquoted password: the next word may be the rest of that password.
    let mut after_unquoted_password = false;
    loop {
        skip_whitespace(&chars, &mut i);
        if i >= chars.len() {
            return Ok(raw);
        }
        let keyword_start = i;
        let mut keyword = String::new();
        while let Some(&c) = chars.get(i).filter(|c| !c.is_whitespace() && **c != '=') {
            keyword.push(c);
            i += 1;
        }
        let shown_keyword = (!after_unquoted_password).then(|| keyword.clone());

        skip_whitespace(&chars, &mut i);
        if chars.get(i) != Some(&'=') {
            return Err(ConnInfoError::MissingEquals {
                keyword: shown_keyword,
                position: keyword_start + 1,
            });
        }
        i += 1;
        skip_whitespace(&chars, &mut i);

        let quoted = chars.get(i) == Some(&'\'');
        let value = if quoted {
            read_quoted(&chars, &mut i).ok_or_else(|| ConnInfoError::UnterminatedQuote {
                keyword: keyword.clone(),
                position: i + 1,
            })?
        } else {
            read_unquoted(&chars, &mut i)
        };

        raw.set(&keyword, value).map_err(|err| match err {
            ConnInfoError::UnknownKeyword { .. } => ConnInfoError::UnknownKeyword {
                keyword: shown_keyword,
            },
            other => other,
        })?;
        after_unquoted_password = keyword == "password" && !quoted;
    }
}

fn skip_whitespace(chars: &[char], i: &mut usize) {
    while chars.get(*i).is_some_and(|c| c.is_whitespace()) {
        *i += 1;
    }
}

/// Reads `'...'` starting at the opening quote; `None` if the closing quote is missing (and
/// then `*i` is left at the opening quote, for the error position).
fn read_quoted(chars: &[char], i: &mut usize) -> Option<String> {
    let mut j = *i + 1;
    let mut value = String::new();
    loop {
        match chars.get(j)? {
            '\\' => {
                value.push(*chars.get(j + 1)?);
                j += 2;
            }
            '\'' => {
                *i = j + 1;
                return Some(value);
            }
            c => {
                value.push(*c);
                j += 1;
            }
        }
    }
}

/// Reads a value up to the next whitespace; a backslash takes the next character literally.
fn read_unquoted(chars: &[char], i: &mut usize) -> String {
    let mut value = String::new();
    while let Some(&c) = chars.get(*i) {
        if c.is_whitespace() {
            break;
        }
        if c == '\\' {
            if let Some(&next) = chars.get(*i + 1) {
                value.push(next);
            }
            *i += 2;
        } else {
            value.push(c);
            *i += 1;
        }
    }
    value
}

/// Quotes a value so that [`parse`] reads it back unchanged.
pub(super) fn quote(value: &str) -> Cow<'_, str> {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\');
    if plain {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "hunter2";

    #[test]
    fn empty_string_is_empty_settings() {
        assert_eq!(parse("").unwrap(), RawSettings::default());
        assert_eq!(parse("  \t\n ").unwrap(), RawSettings::default());
    }

    #[test]
    fn plain_pairs() {
        let raw = parse("host=db1 port=5432 user=alice dbname=app").unwrap();
        assert_eq!(raw.host.as_deref(), Some("db1"));
        assert_eq!(raw.port.as_deref(), Some("5432"));
        assert_eq!(raw.user.as_deref(), Some("alice"));
        assert_eq!(raw.dbname.as_deref(), Some("app"));
    }

    #[test]
    fn whitespace_around_equals() {
        let raw = parse("  host =  db1\tport\n=\n5433 ").unwrap();
        assert_eq!(raw.host.as_deref(), Some("db1"));
        assert_eq!(raw.port.as_deref(), Some("5433"));
    }

    #[test]
    fn quoted_values_and_escapes() {
        let raw = parse(r"dbname='my db' password='it\'s' options='-c a=b' sslkey='C:\\k' user=''")
            .unwrap();
        assert_eq!(raw.dbname.as_deref(), Some("my db"));
        assert_eq!(raw.password.unwrap().expose(), "it's");
        assert_eq!(raw.options.as_deref(), Some("-c a=b"));
        assert_eq!(raw.sslkey.as_deref(), Some(r"C:\k"));
        assert_eq!(raw.user.as_deref(), Some(""));
    }

    #[test]
    fn backslash_escapes_in_unquoted_values() {
        let raw = parse(r"dbname=my\ db application_name=a\\b").unwrap();
        assert_eq!(raw.dbname.as_deref(), Some("my db"));
        assert_eq!(raw.application_name.as_deref(), Some(r"a\b"));
    }

    #[test]
    fn empty_unquoted_value_at_end() {
        let raw = parse("host=").unwrap();
        assert_eq!(raw.host.as_deref(), Some(""));
    }

    #[test]
    fn unterminated_quote_reports_position() {
        let err = parse("host=a dbname='oops").unwrap_err();
        assert_eq!(
            err,
            ConnInfoError::UnterminatedQuote {
                keyword: "dbname".into(),
                position: 15
            }
        );
        assert!(err.to_string().contains("position 15"));
    }

    #[test]
    fn unterminated_quoted_password_is_not_echoed() {
        let err = parse(&format!("password='{SECRET}")).unwrap_err();
        assert!(matches!(
            err,
            ConnInfoError::UnterminatedQuote { position: 10, .. }
        ));
        assert!(!err.to_string().contains(SECRET));
        assert!(!format!("{err:?}").contains(SECRET));
        // A trailing backslash escapes nothing and leaves the quote open.
        let err = parse(r"password='abc\").unwrap_err();
        assert!(matches!(err, ConnInfoError::UnterminatedQuote { .. }));
    }

    #[test]
    fn missing_equals_names_the_keyword() {
        let err = parse("host=a dbname").unwrap_err();
        assert_eq!(
            err,
            ConnInfoError::MissingEquals {
                keyword: Some("dbname".into()),
                position: 8
            }
        );
        assert_eq!(
            err.to_string(),
            "missing \"=\" after \"dbname\" at position 8: expected keyword=value (quote values \
             that contain spaces)"
        );
        let err = parse("host a").unwrap_err();
        assert!(matches!(
            err,
            ConnInfoError::MissingEquals { position: 1, .. }
        ));
    }

    #[test]
    fn word_after_unquoted_password_is_never_printed() {
        // The user meant password='hunter2 more', so "more" is part of the secret.
        for input in [
            "password=hunter2 more".to_string(),
            "password=hunter2 more=x".to_string(),
            format!("password=x {SECRET}"),
            format!("password=x {SECRET}=y"),
        ] {
            let err = parse(&input).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("more"), "{shown}");
            assert!(!shown.contains(SECRET), "{shown}");
        }
    }

    #[test]
    fn word_after_quoted_password_is_printed() {
        let err = parse("password='a b' bogus=1").unwrap_err();
        assert_eq!(
            err,
            ConnInfoError::UnknownKeyword {
                keyword: Some("bogus".into())
            }
        );
    }

    #[test]
    fn unknown_keyword() {
        let err = parse("host=a colour=blue").unwrap_err();
        assert_eq!(
            err,
            ConnInfoError::UnknownKeyword {
                keyword: Some("colour".into())
            }
        );
        let err = parse("=x").unwrap_err();
        assert_eq!(
            err,
            ConnInfoError::UnknownKeyword {
                keyword: Some(String::new())
            }
        );
    }

    #[test]
    fn quote_round_trips() {
        for value in ["plain", "", "my db", r"it's", r"a\b", "tab\there", "-c x=1"] {
            let line = format!("dbname={}", quote(value));
            assert_eq!(
                parse(&line).unwrap().dbname.as_deref(),
                Some(value),
                "{line}"
            );
        }
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("my db"), "'my db'");
        assert_eq!(quote(""), "''");
    }
}
