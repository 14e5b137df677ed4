//! The settings tables of docs/operations.md, read: under `## Settings`, the first table of
//! each `### ` section, columns `Variable | Flag | Default | Meaning`. Variable and Flag are
//! code (`` `NAME` ``, `` `--flag` ``), Flag `—` for environment-only variables; Default is
//! code (the default `--help` prints, a note may follow) or starts with `unset`.

use std::collections::BTreeMap;

pub const HEADER: [&str; 4] = ["Variable", "Flag", "Default", "Meaning"];
pub const ENV_ONLY: &str = "—";

/// One row of a settings table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `None`: environment only (`—`).
    pub flag: Option<String>,
    /// `None`: `unset` (or, for an environment-only variable, anything but code).
    pub default: Option<String>,
    /// `docs/operations.md:LINE`.
    pub at: String,
}

/// The rows of each section asked for, by variable, and the problems met reading them.
#[derive(Debug, Default)]
pub struct Tables {
    pub sections: BTreeMap<String, BTreeMap<String, Row>>,
    pub problems: Vec<String>,
}

/// (line number, line) of every line outside fenced code blocks.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<String> = None;
    let mut lines = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let stripped = line.trim_start();
        // A run of three or more backticks or tildes opens a fence; the same run closes it.
        let first = stripped.chars().next().filter(|c| *c == '`' || *c == '~');
        let marker: String = stripped.chars().take_while(|c| Some(*c) == first).collect();
        if marker.len() >= 3 {
            match &fence {
                None => {
                    fence = Some(marker);
                    continue;
                }
                Some(open) if stripped.starts_with(open.as_str()) => {
                    fence = None;
                    continue;
                }
                Some(_) => {}
            }
        }
        if fence.is_none() {
            lines.push((index + 1, line));
        }
    }
    lines
}

/// (line number, level, text) of every ATX heading outside code blocks.
fn headings(text: &str) -> Vec<(usize, usize, &str)> {
    prose_lines(text)
        .into_iter()
        .filter_map(|(number, line)| {
            let level = line.chars().take_while(|c| *c == '#').count();
            let rest = line.get(level..)?;
            ((1..=6).contains(&level) && rest.starts_with([' ', '\t']))
                .then(|| (number, level, rest.trim().trim_end_matches('#').trim_end()))
        })
        .collect()
}

/// The content of the code span a cell starts with.
fn code(cell: &str) -> Option<&str> {
    let ticks = cell.chars().take_while(|c| *c == '`').count();
    if ticks == 0 {
        return None;
    }
    // The shortest closing run of the same length, as markdown (and check-docs.py) reads it.
    (1..=ticks).rev().find_map(|n| {
        let fence = &cell[..n];
        cell[n..].find(fence).map(|end| &cell[n..n + end])
    })
}

/// The cells of a table row; `\|` is a `|` inside a cell (GitHub's escape).
fn split_row(line: &str) -> Vec<String> {
    let line = line.trim();
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '|' => cells.push(std::mem::take(&mut cell)),
            c => cell.push(c),
        }
    }
    cells.push(cell);
    if line.starts_with('|') {
        cells.remove(0);
    }
    if line.ends_with('|') && !line.ends_with("\\|") {
        cells.pop();
    }
    cells.iter().map(|c| c.trim().to_string()).collect()
}

/// Reads the tables of `sections` from `text` (docs/operations.md, named `file` in problems).
pub fn settings_tables(file: &str, text: &str, sections: &[&str]) -> Tables {
    let mut tables = Tables::default();
    let marks = headings(text);
    let Some(start) = marks
        .iter()
        .find(|(_, l, h)| *l == 2 && *h == "Settings")
        .map(|m| m.0)
    else {
        tables
            .problems
            .push(format!("{file}: no '## Settings' section"));
        return tables;
    };
    let lines: Vec<&str> = text.split('\n').collect();
    for title in sections {
        let Some(number) = marks
            .iter()
            .find(|(n, l, h)| *l == 3 && h == title && *n > start)
            .map(|m| m.0)
        else {
            tables.problems.push(format!(
                "{file}: no '### {title}' settings table under '## Settings'"
            ));
            continue;
        };
        let mut table = Vec::new();
        for (index, line) in lines.iter().enumerate().skip(number) {
            if line.starts_with('#') {
                break;
            }
            if line.starts_with('|') {
                table.push((index + 1, *line));
            } else if !table.is_empty() {
                break;
            }
        }
        let rows = tables.sections.entry(title.to_string()).or_default();
        if table.len() < 2 || split_row(table[0].1) != HEADER {
            tables.problems.push(format!(
                "{file}:{number}: '### {title}': the first table must have the columns {}",
                HEADER.join(" | ")
            ));
            continue;
        }
        for (line_number, line) in &table[2..] {
            let at = format!("{file}:{line_number}");
            match row(&split_row(line)) {
                Ok((name, _)) if rows.contains_key(&name) => tables
                    .problems
                    .push(format!("{at}: {name} appears twice in '### {title}'")),
                Ok((name, fields)) => {
                    rows.insert(name, Row { at, ..fields });
                }
                Err(problem) => tables.problems.push(format!("{at}: {problem}")),
            }
        }
    }
    tables
}

/// A row's variable and fields (`at` left empty), or what is wrong with it.
fn row(cells: &[String]) -> Result<(String, Row), String> {
    let [variable, flag_cell, default_cell, _] = cells else {
        return Err(format!("{} cells, expected {}", cells.len(), HEADER.len()));
    };
    let name = code(variable)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("variable {variable:?} is not code"))?;
    let flag = if flag_cell == ENV_ONLY {
        None
    } else {
        match code(flag_cell) {
            Some(flag) if flag.starts_with("--") => Some(flag.to_string()),
            _ => {
                return Err(format!(
                    "{name}: flag {flag_cell:?} is neither `--flag` nor {ENV_ONLY}"
                ));
            }
        }
    };
    let default = if default_cell.starts_with("unset") {
        None
    } else if let Some(default) = code(default_cell) {
        Some(default.to_string())
    } else if flag.is_none() {
        None
    } else {
        return Err(format!(
            "{name}: default {default_cell:?} is neither code nor 'unset…'"
        ));
    };
    Ok((
        name.to_string(),
        Row {
            flag,
            default,
            at: String::new(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# Ops\n\n## Settings\n\n```\n### not a heading\n```\n\n### a\n\n\
        | Variable | Flag | Default | Meaning |\n|---|---|---|---|\n\
        | `A_ONE` | `--a-one` | `1` (one) | x |\n\
        | `A_TWO` | — | unset | y |\n\
        | `A_RE` | `--a-re` | `\"\"` (empty) | `a\\|b` |\n\
        | `A_BAD` | a-bad | `1` | z |\n\n### b\n\ntext\n";

    #[test]
    fn reads_flags_defaults_and_the_environment_only_rows() {
        let tables = settings_tables("ops.md", DOC, &["a"]);
        let a = &tables.sections["a"];
        assert_eq!(a["A_ONE"].flag.as_deref(), Some("--a-one"));
        assert_eq!(a["A_ONE"].default.as_deref(), Some("1"));
        assert_eq!(a["A_ONE"].at, "ops.md:13");
        assert_eq!(
            a["A_TWO"],
            Row {
                flag: None,
                default: None,
                at: "ops.md:14".into()
            }
        );
        assert_eq!(a["A_RE"].default.as_deref(), Some("\"\""));
        assert_eq!(
            tables.problems,
            ["ops.md:16: A_BAD: flag \"a-bad\" is neither `--flag` nor —"]
        );
    }

    #[test]
    fn a_section_without_a_table_or_missing_is_a_problem() {
        let tables = settings_tables("ops.md", DOC, &["b", "c"]);
        assert_eq!(
            tables.problems,
            [
                "ops.md:18: '### b': the first table must have the columns Variable | Flag | Default | Meaning",
                "ops.md: no '### c' settings table under '## Settings'",
            ]
        );
    }

    #[test]
    fn code_spans_and_cells() {
        assert_eq!(code("`x` note"), Some("x"));
        assert_eq!(code("``"), Some(""));
        assert_eq!(code("``a`b`` c"), Some("a`b"));
        assert_eq!(code("unset"), None);
        assert_eq!(split_row("| a | b\\|c |"), ["a", "b|c"]);
    }
}
