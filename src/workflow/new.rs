//! `detc new`: a rule file to fill in, with a fresh id and today's date. Its
//! `match TODO` fails `detc check` with a message saying what to write, and
//! its two tests hold placeholder events to replace with real ones.

use crate::check::PLACEHOLDER;

/// What the template needs.
pub struct NewRule<'a> {
    pub name: &'a str,
    pub source: &'a str,
    /// Platforms of the source the rule covers (all of them when empty).
    pub platforms: &'a [String],
    pub author: &'a str,
    /// `YYYY-MM-DD`
    pub today: &'a str,
    pub id: uuid::Uuid,
}

fn is_ident(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The rule text, or why the request cannot be met.
pub fn render(n: &NewRule) -> Result<String, String> {
    if !is_ident(n.name) {
        return Err(format!(
            "`{}` is not a rule name: use letters, digits and `_`, starting with a letter",
            n.name
        ));
    }
    let catalogs = crate::sources::catalogs();
    let cat = catalogs
        .iter()
        .find(|c| c.source == n.source)
        .ok_or_else(|| {
            let known: Vec<&str> = catalogs.iter().map(|c| c.source.as_str()).collect();
            format!(
                "unknown source `{}` (known: {})",
                n.source,
                known.join(", ")
            )
        })?;
    let platforms: Vec<String> = if n.platforms.is_empty() {
        cat.platforms.clone()
    } else {
        for p in n.platforms {
            if !cat.platforms.contains(p) {
                return Err(format!(
                    "source `{}` has no platform `{p}` (its platforms: {})",
                    n.source,
                    cat.platforms.join(", ")
                ));
            }
        }
        n.platforms.to_vec()
    };
    let title: Vec<String> = n
        .name
        .split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let p0 = &platforms[0];
    Ok(format!(
        r#"# Written by `detc new`. Fill in the title, the description, the condition after
# `match` (it is `{PLACEHOLDER}` until then, and `detc check` says so) and the two test
# events, then run `detc check` and `detc test` until both pass.
# `detc fields {source}` lists the fields of the source.

rule {name} {{
  id          = "{id}"
  title       = "{title}"
  description = """
    TODO: what this rule detects, and why an analyst should look at it.
  """
  author      = {author}
  date        = {today}
  status      = experimental
  severity    = medium
  attack      = []
  references  = []
  tags        = []

  source {source} on [{platforms}] {{
    match {PLACEHOLDER}
  }}

  # Replace each event with a real one (or `file "events/<name>.json"`).
  test "TODO: an event the rule must match" on {p0} expect match {{"TODO": "paste an event the rule must match"}}
  test "TODO: an event the rule must not match" on {p0} expect no match {{"TODO": "paste a near miss"}}
}}
"#,
        name = n.name,
        id = n.id,
        title = title.join(" "),
        author = crate::workflow::fmt::string(n.author),
        today = n.today,
        source = n.source,
        platforms = platforms.join(", "),
    ))
}
