//! docs/operations.md's settings tables against what `clap` says of each binary's arguments
//! (`Command::get_arguments`: environment variable, long flag, default), both ways: every
//! argument has a row with the same flag and default; every row with a flag is an argument;
//! a row whose flag is `—` (environment only) is not. A default is compared as `--help` prints
//! it (values joined by spaces, an empty one or one with spaces quoted), so the table shows
//! what an operator reads in `--help`.

use std::collections::BTreeMap;

use crate::markdown::{self, ENV_ONLY, Row};

pub const OPERATIONS: &str = "docs/operations.md";

/// The `### ` sections of docs/operations.md's `## Settings`, and the binaries each applies to.
pub const SECTIONS: [(&str, &[&str]); 6] = [
    (
        "Every service",
        &["call-simulator", "host-metrics", "web-prober", "aggregator"],
    ),
    ("call-simulator", &["call-simulator"]),
    ("host-metrics", &["host-metrics"]),
    ("web-prober", &["web-prober"]),
    ("aggregator", &["aggregator"]),
    ("devbroker", &["devbroker"]),
];

/// One argument of a binary as `clap` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub variable: String,
    /// `--flag`; `None` for an argument read from the environment only.
    pub flag: Option<String>,
    /// The default as `--help` prints it; `None` when it prints none.
    pub default: Option<String>,
}

/// The arguments of `command` (a binary's `Config::command()`), or the problem of one
/// without an environment variable. `--help`, `--version` and hidden arguments are not
/// settings.
pub fn settings_of(binary: &str, command: &clap::Command) -> (Vec<Setting>, Vec<String>) {
    // Built as for parsing: the actions (a switch takes no value) and defaults are final.
    let mut command = command.clone();
    command.build();
    let mut settings = Vec::new();
    let mut problems = Vec::new();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if arg.is_hide_set() || id == "help" || id == "version" {
            continue;
        }
        let flag = arg.get_long().map(|l| format!("--{l}"));
        let Some(variable) = arg.get_env() else {
            let name = flag.clone().unwrap_or_else(|| id.to_string());
            problems.push(format!(
                "{binary}: argument {name} has no environment variable (env = ...)"
            ));
            continue;
        };
        settings.push(Setting {
            variable: variable.to_string_lossy().into_owned(),
            flag,
            default: shown_default(arg),
        });
    }
    (settings, problems)
}

/// The default as clap's help prints it (`[default: ...]`).
fn shown_default(arg: &clap::Arg) -> Option<String> {
    let values = arg.get_default_values();
    if !arg.get_action().takes_values() || arg.is_hide_default_value_set() || values.is_empty() {
        return None;
    }
    let shown: Vec<String> = values
        .iter()
        .map(|v| {
            let v = v.to_string_lossy();
            if v.is_empty() || v.contains(char::is_whitespace) {
                format!("{v:?}")
            } else {
                v.into_owned()
            }
        })
        .collect();
    Some(shown.join(" "))
}

/// Every problem between the settings tables of `doc` (docs/operations.md's text) and the
/// binaries' arguments; and how many arguments were compared.
pub fn check(doc: &str, binaries: &[(&str, clap::Command)]) -> (Vec<String>, usize) {
    let titles: Vec<&str> = SECTIONS.iter().map(|(t, _)| *t).collect();
    let tables = markdown::settings_tables(OPERATIONS, doc, &titles);
    let mut problems = tables.problems.clone();
    let mut compared = 0;
    for (binary, command) in binaries {
        let (settings, mut found) = settings_of(binary, command);
        problems.append(&mut found);
        let (rows, mut clashes) = rows_for(binary, &tables);
        problems.append(&mut clashes);
        compared += settings.len();
        problems.extend(compare(binary, &settings, &rows));
    }
    (problems, compared)
}

/// The rows of every section that applies to `binary`, with their section's title.
fn rows_for<'t>(
    binary: &str,
    tables: &'t markdown::Tables,
) -> (BTreeMap<&'t str, (&'t str, &'t Row)>, Vec<String>) {
    let mut rows: BTreeMap<&str, (&str, &Row)> = BTreeMap::new();
    let mut problems = Vec::new();
    for (title, applies) in SECTIONS {
        if !applies.contains(&binary) {
            continue;
        }
        let Some(section) = tables.sections.get(title) else {
            continue;
        };
        for (variable, row) in section {
            if let Some((other, _)) = rows.insert(variable, (title, row)) {
                problems.push(format!(
                    "{}: {variable} is in both '### {other}' and '### {title}', both of which apply to {binary}",
                    row.at
                ));
            }
        }
    }
    (rows, problems)
}

/// The problems between one binary's arguments and its rows.
fn compare(binary: &str, settings: &[Setting], rows: &BTreeMap<&str, (&str, &Row)>) -> Vec<String> {
    let mut problems = Vec::new();
    let shown = SECTIONS
        .iter()
        .filter(|(_, applies)| applies.contains(&binary))
        .map(|(t, _)| format!("'### {t}'"))
        .collect::<Vec<_>>()
        .join(" or ");
    let flag_of = |s: &Setting| s.flag.clone().unwrap_or_else(|| ENV_ONLY.to_string());
    for setting in settings {
        let variable = setting.variable.as_str();
        let Some((_, row)) = rows.get(variable) else {
            problems.push(format!(
                "{OPERATIONS}: {binary}: {variable} ({}) is an argument but not in {shown}",
                flag_of(setting)
            ));
            continue;
        };
        let at = format!("{}: {binary}", row.at);
        if row.flag != setting.flag {
            let table = row.flag.as_deref().unwrap_or(ENV_ONLY);
            problems.push(format!(
                "{at}: {variable}: flag {table}, clap says {}",
                flag_of(setting)
            ));
        }
        if row.default != setting.default {
            let table = row
                .default
                .as_ref()
                .map_or("unset".to_string(), |d| format!("`{d}`"));
            let clap = setting
                .default
                .as_ref()
                .map_or("none (write 'unset')".to_string(), |d| format!("`{d}`"));
            problems.push(format!(
                "{at}: {variable}: default {table}, clap says {clap}"
            ));
        }
    }
    for (variable, (_, row)) in rows {
        let known = settings.iter().any(|s| s.variable == *variable);
        if let Some(flag) = &row.flag
            && !known
            && !variable.contains('*')
        {
            problems.push(format!(
                "{}: {binary}: {variable} ({flag}) is not an argument of {binary}",
                row.at
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// A binary with one of each kind of argument.
    #[derive(Debug, Parser)]
    #[command(name = "demo")]
    struct Demo {
        #[arg(long, env = "DEMO_PORT", default_value_t = 6066)]
        port: u16,
        #[arg(long, env = "DEMO_REGEX", default_value = "")]
        regex: String,
        #[arg(
            long,
            env = "DEMO_TOPICS",
            value_delimiter = ',',
            default_value = "a,b"
        )]
        topics: Vec<String>,
        #[arg(long, env = "DEMO_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[arg(long, env = "DEMO_VERBOSE")]
        verbose: bool,
    }

    fn doc(rows: &str) -> String {
        let mut text = String::from("## Settings\n");
        for (title, _) in SECTIONS {
            text.push_str(&format!(
                "\n### {title}\n\n| Variable | Flag | Default | Meaning |\n|---|---|---|---|\n"
            ));
            if title == "devbroker" {
                text.push_str(rows);
            }
        }
        text
    }

    const GOOD: &str = "| `DEMO_PORT` | `--demo-port` | `6066` | p |\n\
        | `DEMO_REGEX` | `--regex` | `\"\"` (none) | r |\n\
        | `DEMO_TOPICS` | `--topics` | `a,b` | t |\n\
        | `DEMO_TOKEN` | `--token` | unset | s |\n\
        | `DEMO_VERBOSE` | `--verbose` | unset | v |\n\
        | `DEMO_ENV` | — | `x` | read elsewhere |\n";

    fn problems(rows: &str) -> Vec<String> {
        check(&doc(rows), &[("devbroker", Demo::command())]).0
    }

    #[test]
    fn reads_clap_arguments_as_help_prints_them() {
        let (settings, problems) = settings_of("demo", &Demo::command());
        assert!(problems.is_empty());
        let by_name = |n: &str| settings.iter().find(|s| s.variable == n).cloned();
        assert_eq!(
            by_name("DEMO_REGEX").and_then(|s| s.default).as_deref(),
            Some("\"\"")
        );
        assert_eq!(
            by_name("DEMO_TOPICS").and_then(|s| s.default).as_deref(),
            Some("a,b")
        );
        assert_eq!(by_name("DEMO_TOKEN").and_then(|s| s.default), None);
        // A switch takes no value: help prints no default (clap's is `false`).
        assert_eq!(by_name("DEMO_VERBOSE").and_then(|s| s.default), None);
        assert_eq!(settings.len(), 5);
    }

    #[test]
    fn a_matching_table_has_no_problem_but_the_flag_that_differs() {
        assert_eq!(
            problems(GOOD),
            ["docs/operations.md:32: devbroker: DEMO_PORT: flag --demo-port, clap says --port"]
        );
    }

    #[test]
    fn every_kind_of_drift_is_named() {
        let rows = GOOD
            .replace("`--demo-port` | `6066`", "`--port` | `6067`")
            .replace("| `DEMO_TOPICS` | `--topics` | `a,b` | t |\n", "")
            .replace("`--token` | unset", "— | unset")
            .replace("`DEMO_ENV` | —", "`DEMO_ENV` | `--env`");
        assert_eq!(
            problems(&rows),
            [
                "docs/operations.md:32: devbroker: DEMO_PORT: default `6067`, clap says `6066`",
                "docs/operations.md: devbroker: DEMO_TOPICS (--topics) is an argument but not in '### devbroker'",
                "docs/operations.md:34: devbroker: DEMO_TOKEN: flag —, clap says --token",
                "docs/operations.md:36: devbroker: DEMO_ENV (--env) is not an argument of devbroker",
            ]
        );
    }
}
