//! String literals for every generated language, and the tera filters that
//! apply them. A value from a rule reaches generated code only through these.

use std::collections::HashMap;

/// A double-quoted Python literal: `\\ \" \n \r \t`, `\xNN` for other
/// controls and 0x7f-0x9f, `\u2028`/`\u2029`; everything else as UTF-8.
pub fn python_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            // Line separators (YAML 1.1 reads them as breaks), the BOM and the
            // non-characters YAML refuses as unprintable.
            '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML basic string, escaped by the toml crate.
pub fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A double-quoted SPL value: `\\` and `\"` escaped. Newlines cannot be
/// written in SPL strings; the Splunk backend refuses such values first.
pub fn spl_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A double-quoted EQL string: `\\ \" \n \r \t`.
pub fn eql_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
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
    s.chars()
        .map(|c| {
            let u = c as u32;
            if u < 0x20
                || (0x7f..=0x9f).contains(&u)
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                )
            {
                ' '
            } else {
                c
            }
        })
        .collect()
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
        for v in ["a\"b", "'''", "\"\"\"", "a\\b\n\u{1}\u{7f}😀"] {
            let doc: toml::Table = toml::from_str(&format!("x = {}", toml_str(v))).unwrap();
            assert_eq!(doc["x"].as_str(), Some(v));
        }
        assert_eq!(yaml_str("x: \"y\"\n"), "\"x: \\\"y\\\"\\n\"");
    }
}
