//! Reading the names decoderbufs sends: `quote_identifier` output (quoted only when
//! needed: `public.items`, `"My Schema"."Odd ""Name"""`, `"user"`).
//!
//! PostgreSQL leaves an identifier unquoted only when it is lowercase letters, digits and
//! underscores, not starting with a digit, and not a reserved word; anything else here is
//! an error rather than a guess at the name.

/// The identifier `text` names, when it is exactly one.
pub(super) fn identifier(text: &str) -> Option<String> {
    match next_identifier(text)? {
        (name, "") => Some(name),
        _ => None,
    }
}

/// The schema and table of `schema.table`.
pub(super) fn qualified(text: &str) -> Option<(String, String)> {
    let (schema, rest) = next_identifier(text)?;
    let rest = rest.strip_prefix('.')?;
    Some((schema, identifier(rest)?))
}

/// The identifier at the start of `text`, and the text after it.
fn next_identifier(text: &str) -> Option<(String, &str)> {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.char_indices();
        while let Some((at, ch)) = chars.next() {
            if ch != '"' {
                name.push(ch);
                continue;
            }
            // `""` is a quote inside the name; a lone `"` ends it.
            if quoted.get(at + 1..)?.starts_with('"') {
                name.push('"');
                chars.next();
                continue;
            }
            let rest = quoted.get(at + 1..)?;
            return (!name.is_empty()).then_some((name, rest));
        }
        return None;
    }
    let end = text.find('.').unwrap_or(text.len());
    let (name, rest) = text.split_at_checked(end)?;
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    (first_ok && rest_ok).then(|| (name.to_owned(), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_and_plain_names_read_back() {
        assert_eq!(
            qualified("public.items"),
            Some(("public".into(), "items".into()))
        );
        assert_eq!(
            qualified(r#""My Schema"."Odd ""Name""""#),
            Some(("My Schema".into(), r#"Odd "Name""#.into()))
        );
        assert_eq!(qualified(r#""a.b".c"#), Some(("a.b".into(), "c".into())));
        assert_eq!(identifier(r#""user""#), Some("user".into()));
        assert_eq!(identifier(r#""Mixed Case""#), Some("Mixed Case".into()));
        assert_eq!(identifier("_x1"), Some("_x1".into()));
        assert_eq!(identifier(r#""ünï""#), Some("ünï".into()));
    }

    #[test]
    fn anything_else_is_rejected() {
        for text in [
            "", "Items", "1x", "a b", r#""open"#, r#""""#, r#""a"b"#, "a.b", r#""a"."#,
        ] {
            assert_eq!(identifier(text), None, "{text}");
        }
        for text in ["items", "a.b.c", ".b", "a.", r#""a""b"#] {
            assert_eq!(qualified(text), None, "{text}");
        }
    }
}
