#!/usr/bin/env python3
"""Checks the docs against what they describe, so that they cannot drift:

- settings: every option of each binary's `--help` (long flag, `[env: VAR]`, `[default: ...]`)
  against the settings tables of docs/operations.md, both ways: each variable of `--help` has
  a row with the same flag and default, each row with a flag is an option of `--help`, and a
  row whose flag is `—` (read from the environment only) is not;
- alerts: every alert of prometheus/rules/alerts.yml and prometheus/e2e/fast-alerts.yml has a
  `### Alert: Name` section in docs/alerts.md (and every section an alert), and every `runbook`
  URL of those files and of prometheus/tests/alerts_test.yml is an anchor of docs/alerts.md
  (in a rules file, the anchor of its own alert);
- links: every relative link of README.md and docs/*.md points to an existing file and, for
  `#anchor` links into markdown, to one of its headings (GitHub's slugs).

The table format of docs/operations.md, under `## Settings`, one `### ` section per table
(SECTIONS below): columns `Variable | Flag | Default | Meaning`; Variable and Flag are code
(`NAME`, `--flag`), Flag `—` for environment-only variables; Default is the default `--help`
prints, as code, optionally followed by a note, or starts with `unset` when `--help` prints
none.

    python3 scripts/check-docs.py --bin-dir target/debug

Prints one line per problem and exits 1, or prints a one-line summary and exits 0.
Python 3.11 standard library only.
"""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = "docs/operations.md"
ALERTS = "docs/alerts.md"
RULE_FILES = ["prometheus/rules/alerts.yml", "prometheus/e2e/fast-alerts.yml"]
RULE_TEST_FILES = ["prometheus/tests/alerts_test.yml"]
RUNBOOK_BASE = "https://github.com/fleetpulse/fleetpulse/blob/main/docs/alerts.md"

SHARED = "Every service"
# The `### ` sections of docs/operations.md's `## Settings`, and the binaries each applies to.
SECTIONS = {
    SHARED: ["call-simulator", "host-metrics", "web-prober", "aggregator"],
    "call-simulator": ["call-simulator"],
    "host-metrics": ["host-metrics"],
    "web-prober": ["web-prober"],
    "aggregator": ["aggregator"],
    "devbroker": ["devbroker"],
}
BINARIES = ["aggregator", "call-simulator", "host-metrics", "web-prober", "devbroker"]
HEADER = ["Variable", "Flag", "Default", "Meaning"]
ENV_ONLY = "—"

problems: list[str] = []


def problem(where: str, message: str) -> None:
    problems.append(f"{where}: {message}")


# ---- markdown ------------------------------------------------------------------------------

def prose_lines(text: str):
    """(line number, line) of every line outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.lstrip()
        marker = re.match(r"(`{3,}|~{3,})", stripped)
        if marker:
            if fence is None:
                fence = marker.group(1)[0] * len(marker.group(1))
                continue
            if stripped.startswith(fence):
                fence = None
                continue
        if fence is None:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def headings(text: str) -> list[tuple[int, int, str]]:
    """(line number, level, text) of every ATX heading."""
    found = []
    for number, line in prose_lines(text):
        match = re.match(r"(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match:
            found.append((number, len(match.group(1)), match.group(2)))
    return found


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for _, _, heading in headings(text):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    for match in re.finditer(r"<a\s+(?:name|id)=\"([^\"]+)\"", text):
        result.add(match.group(1))
    return result


# ---- links ---------------------------------------------------------------------------------

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*<?(\S+?)>?(?:[ \t]+\"[^\"]*\")?[ \t]*$", re.M)


def prose(text: str) -> str:
    """The text with fenced code blocks and inline code spans blanked out (newlines kept, so
    that offsets still give line numbers): links in code are not links."""
    kept = dict(prose_lines(text))
    lines = [kept.get(number, "") for number in range(1, text.count("\n") + 2)]
    def blank(match: re.Match) -> str:
        return re.sub(r"[^\n]", " ", match.group(0))

    return re.sub(r"(`+)(?:(?!\1)[\s\S])+?\1", blank, "\n".join(lines))


def check_links(files: list[Path]) -> int:
    cache: dict[Path, set[str]] = {}
    count = 0
    for path in files:
        text = prose(path.read_text(encoding="utf-8"))
        rel = path.relative_to(ROOT)
        found = [(m.start(), m.group(1)) for m in LINK.finditer(text)]
        found += [(m.start(), m.group(1)) for m in REFERENCE.finditer(text)]
        for offset, target in sorted(found):
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):
                continue  # http(s), mailto: not ours to check
            count += 1
            where = f"{rel}:{text.count(chr(10), 0, offset) + 1}"
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            if not dest.exists():
                problem(where, f"link to {target}: no such file {file_part}")
                continue
            if anchor and dest.suffix == ".md":
                if dest not in cache:
                    cache[dest] = anchors(dest.read_text(encoding="utf-8"))
                if anchor not in cache[dest]:
                    shown = dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest
                    problem(where, f"link to {target}: {shown} has no heading #{anchor}")
    return count


# ---- alerts --------------------------------------------------------------------------------

def check_alerts() -> int:
    alerts_text = (ROOT / ALERTS).read_text(encoding="utf-8")
    alert_anchors = anchors(alerts_text)
    sections = {}
    for number, level, heading in headings(alerts_text):
        match = re.fullmatch(r"Alert: (\S+)", heading)
        if match:
            if level != 3:
                problem(f"{ALERTS}:{number}", f"'{heading}' should be a ### heading")
            sections[match.group(1)] = number
    defined: dict[str, str] = {}
    for name in RULE_FILES + RULE_TEST_FILES:
        current = None
        for number, line in enumerate((ROOT / name).read_text(encoding="utf-8").split("\n"), 1):
            where = f"{name}:{number}"
            alert = re.match(r"\s*-\s*alert:\s*[\"']?([A-Za-z_:][\w:]*)", line)
            if alert and name in RULE_FILES:
                current = alert.group(1)
                defined.setdefault(current, where)
            runbook = re.match(r"\s*runbook:\s*[\"']?(\S+?)[\"']?\s*$", line)
            if not runbook:
                continue
            url = runbook.group(1)
            base, _, anchor = url.partition("#")
            if base != RUNBOOK_BASE or not anchor:
                problem(where, f"runbook {url}: not {RUNBOOK_BASE}#alert-...")
            elif anchor not in alert_anchors:
                problem(where, f"runbook {url}: {ALERTS} has no heading #{anchor}")
            elif name in RULE_FILES and current and anchor != f"alert-{current.lower()}":
                problem(where, f"runbook {url}: alert {current} should link #alert-{current.lower()}")
    for alert, where in sorted(defined.items()):
        if alert not in sections:
            problem(where, f"alert {alert} has no '### Alert: {alert}' section in {ALERTS}")
    for alert, number in sorted(sections.items()):
        if alert not in defined:
            problem(f"{ALERTS}:{number}", f"section 'Alert: {alert}': no rule of "
                    f"{' or '.join(RULE_FILES)} defines that alert")
    return len(defined)


# ---- settings ------------------------------------------------------------------------------

def code(cell: str) -> str | None:
    """The content of the code span a cell starts with, or None."""
    match = re.match(r"(`+)(.*?)\1", cell)
    return match.group(2) if match else None


def split_row(line: str) -> list[str]:
    """The cells of a table row; `\\|` is a `|` inside a cell (GitHub's escape)."""
    line = line.strip()
    cells = re.split(r"(?<!\\)\|", line)
    if line.startswith("|"):
        cells = cells[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        cells = cells[:-1]
    return [cell.strip().replace("\\|", "|") for cell in cells]


def settings_tables() -> dict[str, dict[str, dict]]:
    """Rows of each SECTIONS table: {section: {variable: {flag, default, line}}}."""
    text = (ROOT / OPERATIONS).read_text(encoding="utf-8")
    start = next((n for n, lvl, h in headings(text) if lvl == 2 and h == "Settings"), None)
    if start is None:
        problem(OPERATIONS, "no '## Settings' section")
        return {}
    tables: dict[str, dict[str, dict]] = {}
    lines = text.split("\n")
    marks = headings(text)
    for title in SECTIONS:
        number = next((n for n, lvl, h in marks if lvl == 3 and h == title and n > start), None)
        if number is None:
            problem(OPERATIONS, f"no '### {title}' settings table under '## Settings'")
            continue
        rows: dict[str, dict] = {}
        table_lines = []
        for index in range(number, len(lines)):
            line = lines[index]
            if line.startswith("#"):
                break
            if line.startswith("|"):
                table_lines.append((index + 1, line))
            elif table_lines:
                break
        where = f"{OPERATIONS}:{number}"
        if len(table_lines) < 2 or split_row(table_lines[0][1]) != HEADER:
            problem(where, f"'### {title}': the first table must have the columns "
                    f"{' | '.join(HEADER)}")
            tables[title] = rows
            continue
        for line_number, line in table_lines[2:]:
            cells = split_row(line)
            where = f"{OPERATIONS}:{line_number}"
            if len(cells) != len(HEADER):
                problem(where, f"{len(cells)} cells, expected {len(HEADER)}")
                continue
            variable, flag_cell, default_cell = cells[0], cells[1], cells[2]
            name = code(variable)
            if not name:
                problem(where, f"variable {variable!r} is not code")
                continue
            if flag_cell == ENV_ONLY:
                flag = None
            else:
                flag = code(flag_cell)
                if not flag or not flag.startswith("--"):
                    problem(where, f"{name}: flag {flag_cell!r} is neither `--flag` nor {ENV_ONLY}")
                    continue
            if default_cell.startswith("unset"):
                default = None
            elif code(default_cell) is not None:
                default = code(default_cell)
            elif flag is None:
                default = None
            else:
                problem(where, f"{name}: default {default_cell!r} is neither code nor 'unset…'")
                continue
            if name in rows:
                problem(where, f"{name} appears twice in '### {title}'")
            rows[name] = {"flag": flag, "default": default, "where": where}
        tables[title] = rows
    return tables


def help_options(binary: Path) -> dict[str, dict] | None:
    """{env var: {flag, default}} from `binary --help`; None when it cannot run."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "COLUMNS": "10000", "LANG": "C"}
    try:
        result = subprocess.run([str(binary), "--help"], capture_output=True, text=True,
                                env=env, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        problem(str(binary), f"--help failed: {err}")
        return None
    if result.returncode != 0:
        problem(str(binary), f"--help exited {result.returncode}: {result.stderr.strip()[:200]}")
        return None
    options: dict[str, dict] = {}
    blocks: list[list[str]] = []
    for line in result.stdout.split("\n"):
        if re.match(r"\s{2,}(?:-\w, )?--[a-z0-9]", line):
            blocks.append([line])
        elif blocks:
            blocks[-1].append(line)
    for block in blocks:
        flag = re.match(r"\s+(?:-\w, )?(--[a-z0-9][a-z0-9-]*)", block[0]).group(1)
        if flag in ("--help", "--version"):
            continue
        env_var = default = None
        for line in block:
            env_match = re.search(r"\[env: ([A-Za-z0-9_]+)(?:=[^\]]*)?\]", line)
            if env_match:
                env_var = env_match.group(1)
            default_match = re.search(r"\[default: (.*)\]\s*$", line)
            if default_match:
                default = default_match.group(1)
        if env_var is None:
            problem(binary.name, f"option {flag} has no environment variable ([env: ...])")
            continue
        options[env_var] = {"flag": flag, "default": default}
    return options


def check_settings(bin_dir: Path) -> int:
    tables = settings_tables()
    checked = 0
    for name in BINARIES:
        binary = bin_dir / name
        if not os.access(binary, os.X_OK):
            problem(name, f"no executable {binary} (cargo build --workspace --bins)")
            continue
        options = help_options(binary)
        if options is None:
            continue
        titles = [t for t, applies in SECTIONS.items() if name in applies]
        rows: dict[str, dict] = {}
        for title in titles:
            for variable, row in tables.get(title, {}).items():
                if variable in rows:
                    problem(row["where"], f"{variable} is in both '### {rows[variable]['title']}' "
                            f"and '### {title}', both of which apply to {name}")
                rows[variable] = dict(row, title=title)
        shown = " or ".join(f"'### {t}'" for t in titles)
        for variable, option in options.items():
            checked += 1
            row = rows.get(variable)
            if row is None:
                problem(OPERATIONS, f"{name}: {variable} ({option['flag']}) is in --help but "
                        f"not in {shown}")
                continue
            where = f"{row['where']}: {name}"
            if row["flag"] is None:
                problem(where, f"{variable} is marked {ENV_ONLY} (environment only) but --help "
                        f"has it as {option['flag']}")
            elif row["flag"] != option["flag"]:
                problem(where, f"{variable}: flag `{row['flag']}`, --help says {option['flag']}")
            if row["default"] != option["default"]:
                table = "unset" if row["default"] is None else f"`{row['default']}`"
                helps = "none (write 'unset')" if option["default"] is None else \
                    f"`{option['default']}`"
                problem(where, f"{variable}: default {table}, --help says {helps}")
        for variable, row in rows.items():
            if row["flag"] is not None and variable not in options and "*" not in variable:
                problem(f"{row['where']}: {name}", f"{variable} ({row['flag']}) is not an option "
                        f"of {name} --help")
    return checked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-dir", required=True, type=Path,
                        help="folder with the built binaries (" + ", ".join(BINARIES) + ")")
    args = parser.parse_args()
    options = check_settings(args.bin_dir.resolve())
    alerts = check_alerts()
    files = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
    links = check_links(files)
    if problems:
        for line in problems:
            print(f"check-docs: {line}")
        print(f"check-docs: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check-docs: ok: {options} options of {len(BINARIES)} binaries match "
          f"{OPERATIONS}, {alerts} alerts have runbooks in {ALERTS}, {links} links in "
          f"{len(files)} files resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
