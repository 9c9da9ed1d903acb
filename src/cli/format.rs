//! Docker's `--format` for the listing commands (`images`, `ps`, `history`,
//! `system df`) and `inspect -f`: Go templates over each row, `table`
//! for a header and aligned columns, `json` for one JSON object a line;
//! and the one table writer every listing uses (Go's tabwriter as Docker
//! sets it: columns at least 10 wide, 3 spaces of padding).
//!
//! Templates run on gtmpl (Go's text/template in Rust). Two things differ
//! from Go there and are bridged here: gtmpl prints lists and maps with
//! Rust's debug syntax, so every printing action gets a final `| _go`
//! that prints a value as Go's `%v` does (`[a b]`, `map[k:v]`); and
//! Docker's functions (`json`, `join`, `split`, `lower`, `upper`, `title`,
//! `pad`, `truncate`) are added. A JSON object prints as a Go map (sorted
//! `map[k:v]`) even where Docker has a struct (`{v1 v2}`), and `json`
//! writes keys sorted, which is Docker's order for the listing commands
//! (their rows are maps) but not for `inspect`'s structs.

use std::io::Write;

use anyhow::{anyhow, Result};
use gtmpl::{Context, FuncError, Template, Value};

/// Go's tabwriter settings in Docker's tables.
const MIN_WIDTH: usize = 10;
const PADDING: usize = 3;

/// What `--format` asked for.
pub(super) enum Format {
    /// No `--format`, or `table`: the command's own table.
    Default,
    /// A template run on each row; `table` adds a header and alignment.
    Template { template: Template, table: bool },
}

impl Format {
    /// Docker's reading of `--format`: empty or `table` is the default
    /// table, `json` is `{{json .}}`, `table TEMPLATE` a table; `\t` and
    /// `\n` written as such in the argument are tab and newline.
    pub(super) fn parse(format: Option<&str>) -> Result<Format> {
        let text = format.unwrap_or("").trim();
        if text.is_empty() || text == "table" {
            return Ok(Format::Default);
        }
        let (table, body) = match text.strip_prefix("table ") {
            Some(body) => (true, body.trim()),
            None => (false, text),
        };
        let body = if body == "json" { "{{json .}}" } else { body };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        Ok(Format::Template {
            template: template(&body)?,
            table,
        })
    }

    /// Prints `rows` with the template (a table gets a header line made by
    /// running the template on `headers`, field name -> column title).
    pub(super) fn write_rows(
        &self,
        out: &mut impl Write,
        rows: &[serde_json::Value],
        headers: &[(&str, &str)],
    ) -> Result<()> {
        let Format::Template { template, table } = self else {
            return Ok(());
        };
        let mut lines = Vec::new();
        if *table {
            let names = headers
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect();
            lines.push(render(template, Value::Map(names))?);
        }
        for row in rows {
            lines.push(render(template, to_value(row, ""))?);
        }
        if *table {
            let cells: Vec<Vec<String>> = lines
                .iter()
                .map(|l| l.split('\t').map(String::from).collect())
                .collect();
            write_aligned(out, &cells)?;
        } else {
            for l in lines {
                writeln!(out, "{l}")?;
            }
        }
        Ok(())
    }
}

/// One object through a template (`inspect -f`).
pub(super) fn render_one(format: &str, value: &serde_json::Value) -> Result<String> {
    let body = format.replace("\\t", "\t").replace("\\n", "\n");
    render(&template(&body)?, to_value(value, ""))
}

fn template(text: &str) -> Result<Template> {
    let mut t = Template::default();
    t.add_funcs(&[
        ("_go", go_func as gtmpl::Func),
        ("json", json_func),
        ("join", join_func),
        ("split", split_func),
        ("lower", lower_func),
        ("upper", upper_func),
        ("title", title_func),
        ("pad", pad_func),
        ("truncate", truncate_func),
    ]);
    t.parse(wrap_prints(text))
        .map_err(|e| anyhow!("template parsing error: {e}"))?;
    Ok(t)
}

fn render(t: &Template, value: Value) -> Result<String> {
    t.render(&Context::from(value))
        .map_err(|e| anyhow!("template: executing: {e}"))
}

/// Appends `| _go` to every action that prints, so values print as Go's.
/// Actions that do not print (keywords, comments, `$x := ...`) are kept.
fn wrap_prints(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(len) = action_len(&rest[start + 2..]) else {
            // Unclosed: leave it for the parser to report.
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &rest[start + 2..start + 2 + len];
        out.push_str("{{");
        let right_trim = inner.ends_with(" -") || inner.ends_with("\t-");
        let core = if right_trim {
            &inner[..inner.len() - 1]
        } else {
            inner
        };
        out.push_str(core);
        if prints(core) {
            out.push_str(" | _go ");
        }
        if right_trim {
            out.push('-');
        }
        out.push_str("}}");
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    out
}

/// Length of an action's text up to its closing `}}`, skipping quoted
/// strings (which may hold `}}`).
fn action_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' => {
                let quote = bytes[i];
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Does the action (without delimiters) print its value?
fn prints(core: &str) -> bool {
    let t = core.trim_start_matches('-').trim();
    if t.is_empty() || t.starts_with("/*") {
        return false;
    }
    let word = t.split([' ', '\t', '(']).next().unwrap_or("");
    const KEYWORDS: [&str; 10] = [
        "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
    ];
    if KEYWORDS.contains(&word) {
        return false;
    }
    // `$x := pipeline` and `$x = pipeline` declare, they do not print.
    !(t.starts_with('$') && (t.contains(":=") || t.split_whitespace().nth(1) == Some("=")))
}

/// Docker's Go types, known by the JSON key a value is under: lists and
/// maps whose `null` prints `[]` / `map[]` (other nulls print `<nil>`);
/// the maps print `map[k:v]` and read a missing key as `<no value>`, every
/// other object is a struct, printed `{v1 v2}` (fields in name order here:
/// the JSON keeps no Go field order) where a missing field is an error.
const NULL_LISTS: [&str; 9] = [
    "Env",
    "Cmd",
    "Entrypoint",
    "OnBuild",
    "Shell",
    "RepoTags",
    "RepoDigests",
    "Layers",
    "Mounts",
];
const MAPS: [&str; 4] = ["Labels", "Volumes", "ExposedPorts", "Data"];

/// A JSON value as a template value; `key` is the field it is under.
fn to_value(v: &serde_json::Value, key: &str) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null if NULL_LISTS.contains(&key) => Value::Array(Vec::new()),
        J::Null if MAPS.contains(&key) => Value::Map(Default::default()),
        J::Null => Value::Nil,
        J::Bool(b) => Value::from(*b),
        J::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Value::from(u),
            (None, Some(i), _) => Value::from(i),
            (_, _, f) => Value::from(f.unwrap_or(0.0)),
        },
        J::String(s) => Value::from(s.as_str()),
        J::Array(a) => Value::Array(a.iter().map(|x| to_value(x, "")).collect()),
        J::Object(o) => {
            let fields = o.iter().map(|(k, x)| (k.clone(), to_value(x, k))).collect();
            match MAPS.contains(&key) {
                true => Value::Map(fields),
                false => Value::Object(fields),
            }
        }
    }
}

/// A template value as JSON (objects with sorted keys).
fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::String(s) => J::String(s.clone()),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => J::from(u),
            (None, Some(i), _) => J::from(i),
            (_, _, f) => J::from(f.unwrap_or(0.0)),
        },
        Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        Value::Object(o) | Value::Map(o) => {
            J::Object(o.iter().map(|(k, x)| (k.clone(), to_json(x))).collect())
        }
    }
}

/// A value as Go's `%v` prints it.
fn go_string(v: &Value) -> String {
    match v {
        Value::NoValue => "<no value>".into(),
        Value::Nil => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Function(_) => "<func>".into(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(go_string).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Map(o) => {
            let mut items: Vec<(&String, &Value)> = o.iter().collect();
            items.sort_by(|a, b| a.0.cmp(b.0));
            let items: Vec<String> = items
                .iter()
                .map(|(k, x)| format!("{k}:{}", go_string(x)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
        Value::Object(o) => {
            let mut items: Vec<(&String, &Value)> = o.iter().collect();
            items.sort_by(|a, b| a.0.cmp(b.0));
            let items: Vec<String> = items.iter().map(|(_, x)| go_string(x)).collect();
            format!("{{{}}}", items.join(" "))
        }
    }
}

fn arg<'a>(args: &'a [Value], i: usize, name: &str) -> Result<&'a Value, FuncError> {
    args.get(i)
        .ok_or_else(|| FuncError::Generic(format!("{name}: missing argument {}", i + 1)))
}

fn str_arg(args: &[Value], i: usize, name: &str) -> Result<String, FuncError> {
    Ok(go_string(arg(args, i, name)?))
}

fn int_arg(args: &[Value], i: usize, name: &str) -> Result<usize, FuncError> {
    match arg(args, i, name)? {
        Value::Number(n) => n
            .as_u64()
            .and_then(|u| usize::try_from(u).ok())
            .ok_or_else(|| FuncError::Generic(format!("{name}: not a count"))),
        other => go_string(other)
            .parse()
            .map_err(|_| FuncError::Generic(format!("{name}: not a count"))),
    }
}

fn go_func(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(str_arg(args, 0, "_go")?))
}

/// Docker's `json`: Go's encoder escapes `<`, `>` and `&` (`\u003c`).
fn json_func(args: &[Value]) -> Result<Value, FuncError> {
    let text = to_json(arg(args, 0, "json")?).to_string();
    Ok(Value::from(
        text.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026"),
    ))
}

fn join_func(args: &[Value]) -> Result<Value, FuncError> {
    let sep = str_arg(args, 1, "join")?;
    let items: Vec<String> = match arg(args, 0, "join")? {
        Value::Array(a) => a.iter().map(go_string).collect(),
        other => vec![go_string(other)],
    };
    Ok(Value::from(items.join(&sep)))
}

fn split_func(args: &[Value]) -> Result<Value, FuncError> {
    let (s, sep) = (str_arg(args, 0, "split")?, str_arg(args, 1, "split")?);
    Ok(Value::Array(
        s.split(sep.as_str()).map(Value::from).collect(),
    ))
}

fn lower_func(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(str_arg(args, 0, "lower")?.to_lowercase()))
}

fn upper_func(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(str_arg(args, 0, "upper")?.to_uppercase()))
}

/// Go's `strings.Title`: each word's first letter in upper case.
fn title_func(args: &[Value]) -> Result<Value, FuncError> {
    let s = str_arg(args, 0, "title")?;
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    Ok(Value::from(out))
}

/// Docker's `pad s before after`: spaces around the text.
fn pad_func(args: &[Value]) -> Result<Value, FuncError> {
    let s = str_arg(args, 0, "pad")?;
    let (before, after) = (int_arg(args, 1, "pad")?, int_arg(args, 2, "pad")?);
    Ok(Value::from(format!(
        "{}{s}{}",
        " ".repeat(before),
        " ".repeat(after)
    )))
}

/// Docker's `truncate s n`: at most n characters.
fn truncate_func(args: &[Value]) -> Result<Value, FuncError> {
    let s = str_arg(args, 0, "truncate")?;
    let n = int_arg(args, 1, "truncate")?;
    Ok(Value::from(s.chars().take(n).collect::<String>()))
}

/// A header line and rows, aligned (Docker's tables).
pub(super) fn write_table(
    out: &mut impl Write,
    header: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let mut cells = vec![header.iter().map(|h| h.to_string()).collect()];
    cells.extend(rows.iter().cloned());
    write_aligned(out, &cells)
}

/// Go's tabwriter with Docker's settings: every cell but a line's last is
/// padded to its column's widest cell plus 3, and to at least 10.
fn write_aligned(out: &mut impl Write, lines: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = Vec::new();
    for line in lines {
        for (i, cell) in line.iter().enumerate().take(line.len().saturating_sub(1)) {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    for line in lines {
        let mut s = String::new();
        let last = line.len().saturating_sub(1);
        for (i, cell) in line.iter().enumerate() {
            s.push_str(cell);
            if i < last {
                let width = (widths[i] + PADDING).max(MIN_WIDTH);
                s.push_str(&" ".repeat(width - cell.chars().count()));
            }
        }
        writeln!(out, "{s}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
