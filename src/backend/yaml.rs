//! The one YAML writer for documents PyYAML-based tools read (Sigma rules,
//! `detc ir`): block style that YAML 1.1 (PyYAML) and YAML 1.2 (serde_yaml)
//! readers both read back as the value written. serde_yaml's own emitter
//! writes YAML 1.2 plain scalars such as `yes`, `=` or `1_000` that YAML 1.1
//! readers turn into booleans and numbers.

use super::text;
use serde_yaml::{Mapping, Value as Yaml};

/// A line break for YAML (and PyYAML).
pub fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Characters YAML (and PyYAML) accept in a stream, tab and breaks excluded.
pub fn yaml_printable(c: char) -> bool {
    matches!(c as u32, 0x20..=0x7e | 0xa0..=0xd7ff | 0xe000..=0xfffd | 0x10000..=0x10ffff)
}

/// Write `v` as block-style YAML that YAML 1.1 (PyYAML) and YAML 1.2
/// (serde_yaml) readers both read back as `v`. Strings are plain only when
/// no resolver can take them for anything else, single-quoted when they
/// are printable on one line, a literal block for safe multi-line text,
/// and double-quoted with escapes otherwise.
pub fn emit_yaml(v: &Yaml) -> String {
    let mut out = String::new();
    match v {
        Yaml::Mapping(m) if !m.is_empty() => emit_map(&mut out, m, 0, false),
        Yaml::Sequence(xs) if !xs.is_empty() => emit_seq(&mut out, xs, 0),
        other => {
            out.push_str(&scalar(other, 0, ScalarAt::Value));
            out.push('\n');
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum ScalarAt {
    Key,
    Value,
}

const INDENT: usize = 4;

fn emit_map(out: &mut String, m: &Mapping, indent: usize, first_inline: bool) {
    for (i, (k, v)) in m.iter().enumerate() {
        if !(first_inline && i == 0) {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&scalar(k, indent, ScalarAt::Key));
        out.push(':');
        emit_child(out, v, indent, k.as_str());
    }
}

fn emit_child(out: &mut String, v: &Yaml, indent: usize, key: Option<&str>) {
    match v {
        Yaml::Mapping(m) if !m.is_empty() => {
            out.push('\n');
            emit_map(out, m, indent + INDENT, false);
        }
        Yaml::Sequence(xs) if !xs.is_empty() => {
            out.push('\n');
            emit_seq(out, xs, indent + INDENT);
        }
        Yaml::String(d)
            if matches!(key, Some("date" | "modified")) && is_iso_date(d) && indent == 0 =>
        {
            // Sigma's dates are written as YAML dates, as in SigmaHQ.
            out.push(' ');
            out.push_str(d);
            out.push('\n');
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other, indent, ScalarAt::Value));
            out.push('\n');
        }
    }
}

fn emit_seq(out: &mut String, xs: &[Yaml], indent: usize) {
    for x in xs {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match x {
            Yaml::Mapping(m) if !m.is_empty() => {
                out.push(' ');
                emit_map(out, m, indent + 2, true);
            }
            Yaml::Sequence(ys) if !ys.is_empty() => {
                out.push('\n');
                emit_seq(out, ys, indent + INDENT);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other, indent, ScalarAt::Value));
                out.push('\n');
            }
        }
    }
}

fn is_iso_date(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

fn scalar(v: &Yaml, indent: usize, at: ScalarAt) -> String {
    match v {
        Yaml::Null => "null".into(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => number(n),
        Yaml::String(x) => string(x, indent, at),
        Yaml::Mapping(_) => "{}".into(),
        Yaml::Sequence(_) => "[]".into(),
        Yaml::Tagged(t) => scalar(&t.value, indent, at),
    }
}

/// Integers as is; floats always with a `.` and a signed exponent, the form
/// YAML 1.1 requires (`1e21` is a string there).
fn number(n: &serde_yaml::Number) -> String {
    if n.is_f64() {
        let f = n.as_f64().unwrap_or(0.0);
        let t = format!("{f:?}");
        match t.split_once('e') {
            Some((m, e)) => {
                let m = if m.contains('.') {
                    m.to_string()
                } else {
                    format!("{m}.0")
                };
                let e = if e.starts_with('-') {
                    e.to_string()
                } else {
                    format!("+{e}")
                };
                format!("{m}e{e}")
            }
            None if t.contains('.') => t,
            None => format!("{t}.0"),
        }
    } else {
        n.to_string()
    }
}

const YAML11_WORDS: &[&str] = &["y", "n", "yes", "no", "true", "false", "on", "off", "null"];

fn plain_ok(x: &str) -> bool {
    x.starts_with(|c: char| c.is_ascii_alphabetic())
        && x.chars()
            .all(|c| (c.is_ascii_graphic() && !"[]{}".contains(c)) || c == ' ')
        && !x.contains(": ")
        && !x.contains(" #")
        && !x.ends_with(':')
        && !x.ends_with(' ')
        && !YAML11_WORDS.iter().any(|w| w.eq_ignore_ascii_case(x))
}

fn single_line_ok(x: &str) -> bool {
    x.chars()
        .all(|c| yaml_printable(c) && !is_break(c) && c != '\u{feff}')
}

fn string(x: &str, indent: usize, at: ScalarAt) -> String {
    if plain_ok(x) || is_uuid(x) {
        return x.to_string();
    }
    if single_line_ok(x) {
        return format!("'{}'", x.replace('\'', "''"));
    }
    let lines_ok = x.split('\n').all(single_line_ok);
    let trailing = x.len() - x.trim_end_matches('\n').len();
    if at == ScalarAt::Value
        && lines_ok
        && x.contains('\n')
        && !x.starts_with([' ', '\n'])
        && trailing <= 1
    {
        let pad = " ".repeat(indent + INDENT);
        let body = x.strip_suffix('\n').unwrap_or(x);
        let mut out = String::from(if trailing == 1 { "|" } else { "|-" });
        for line in body.split('\n') {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
                out.push_str(line);
            }
        }
        return out;
    }
    // Double-quoted with escapes.
    text::yaml_str(x)
}

/// A lower-case hyphenated UUID, which YAML reads back as the same string.
fn is_uuid(x: &str) -> bool {
    uuid::Uuid::try_parse(x).is_ok_and(|u| u.hyphenated().to_string() == x)
}
