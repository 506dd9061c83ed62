//! String literals for every generated language, and the tera filters that
//! apply them. A value from a rule reaches generated code only through these.

use std::collections::HashMap;

/// `s` in double quotes, each character written by `escape` when it
/// returns an escape and as itself otherwise.
fn quoted(s: &str, escape: impl Fn(char) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match escape(c) {
            Some(e) => out.push_str(&e),
            None => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The escapes every double-quoted literal here shares: `\\` and `\"`.
fn backslash_quote(c: char) -> Option<String> {
    match c {
        '\\' => Some("\\\\".into()),
        '"' => Some("\\\"".into()),
        _ => None,
    }
}

/// `\n`, `\r`, `\t` on top of [`backslash_quote`].
fn c_escapes(c: char) -> Option<String> {
    match c {
        '\n' => Some("\\n".into()),
        '\r' => Some("\\r".into()),
        '\t' => Some("\\t".into()),
        c => backslash_quote(c),
    }
}

/// A double-quoted Python literal: `\\ \" \n \r \t`, `\xNN` for other
/// controls and 0x7f-0x9f, `\uNNNN` for the line and paragraph separators,
/// the BOM and U+FFFE/U+FFFF; everything else as UTF-8.
pub fn python_str(s: &str) -> String {
    quoted(s, |c| match c as u32 {
        0x0..=0x1f | 0x7f..=0x9f if c_escapes(c).is_none() => Some(format!("\\x{:02x}", c as u32)),
        // Line separators (YAML 1.1 reads them as breaks), the BOM and the
        // non-characters YAML refuses as unprintable.
        0x2028 | 0x2029 | 0xfeff | 0xfffe | 0xffff => Some(format!("\\u{:04x}", c as u32)),
        _ => c_escapes(c),
    })
}

/// A TOML basic string, escaped by the toml crate.
pub fn toml_str(s: &str) -> String {
    // What `toml::Value::String(..).to_string()` writes (toml_edit's string
    // repr), without building a document around it.
    use toml_write::ToTomlValue;
    toml_write::TomlStringBuilder::new(s)
        .as_default()
        .to_toml_value()
}

/// A double-quoted SPL value: `\\` and `\"` escaped. Newlines cannot be
/// written in SPL strings; the Splunk backend refuses such values first.
pub fn spl_str(s: &str) -> String {
    quoted(s, backslash_quote)
}

/// A double-quoted EQL string: `\\ \" \n \r \t`.
pub fn eql_str(s: &str) -> String {
    quoted(s, c_escapes)
}

/// A double-quoted KQL or ES|QL string: `\\ \" \n \r \t` are the only
/// escapes both languages have, so a value holding any other control
/// character is refused (`lang` names the language in the reason).
pub fn c_quoted(s: &str, lang: &str) -> Result<String, String> {
    if let Some(c) = s
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(format!(
            "the value holds the control character U+{:04X}, which a {lang} string literal cannot carry",
            c as u32
        ));
    }
    Ok(quoted(s, c_escapes))
}

/// A YAML double-quoted scalar. YAML's double-quoted escapes include
/// Python's (`\xNN`, `\uNNNN`), and escaping 0x85, U+2028 and U+2029 keeps
/// YAML 1.1 parsers from reading them as line breaks.
pub fn yaml_str(s: &str) -> String {
    python_str(s)
}

/// Text for a `#` comment line: line breaks and other characters YAML or
/// Python would not keep inside a comment become spaces.
pub fn comment_text(s: &str) -> String {
    let breaks = |c: char| {
        let u = c as u32;
        u < 0x20
            || (0x7f..=0x9f).contains(&u)
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
            )
    };
    if !s.chars().any(breaks) {
        return s.to_string();
    }
    s.chars().map(|c| if breaks(c) { ' ' } else { c }).collect()
}

fn filter(f: fn(&str) -> String) -> impl tera::Filter {
    move |v: &tera::Value, _: &HashMap<String, tera::Value>| -> tera::Result<tera::Value> {
        match v {
            tera::Value::String(s) => Ok(tera::Value::String(f(s))),
            tera::Value::Null => Ok(tera::Value::String(f(""))),
            other => Ok(tera::Value::String(f(&other.to_string()))),
        }
    }
}

/// `| py`, `| toml`, `| spl`, `| eql`, `| yaml`, `| comment` in templates.
pub fn register_filters(t: &mut tera::Tera) {
    t.register_filter("py", filter(python_str));
    t.register_filter("toml", filter(toml_str));
    t.register_filter("spl", filter(spl_str));
    t.register_filter("eql", filter(eql_str));
    t.register_filter("yaml", filter(yaml_str));
    t.register_filter("comment", filter(comment_text));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_escapes() {
        assert_eq!(
            python_str("a\"b\\c\n\u{7f}\u{2028}😀"),
            "\"a\\\"b\\\\c\\n\\x7f\\u2028😀\""
        );
    }

    #[test]
    fn toml_and_yaml_escape_quotes() {
        for v in [
            "a\"b",
            "'''",
            "\"\"\"",
            "a\\b\n\u{1}\u{7f}😀",
            "it's \"x\"\n'''",
            "",
        ] {
            let doc: toml::Table = toml::from_str(&format!("x = {}", toml_str(v))).unwrap();
            assert_eq!(doc["x"].as_str(), Some(v));
            // The same text the toml crate writes for a string value.
            assert_eq!(toml_str(v), toml::Value::String(v.into()).to_string());
        }
        assert_eq!(yaml_str("x: \"y\"\n"), "\"x: \\\"y\\\"\\n\"");
    }
}
