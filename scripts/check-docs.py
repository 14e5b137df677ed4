#!/usr/bin/env python3
"""Checks the docs against what they describe, so that they cannot drift:

- alerts: every alert of prometheus/rules/alerts.yml and prometheus/e2e/fast-alerts.yml has a
  `### Alert: Name` section in docs/alerts.md (and every section an alert), and every `runbook`
  URL of those files and of prometheus/tests/alerts_test.yml is an anchor of docs/alerts.md
  (in a rules file, the anchor of its own alert);
- links: every relative link of README.md and docs/*.md points to an existing file and, for
  `#anchor` links into markdown, to one of its headings (GitHub's slugs).

The settings tables of docs/operations.md are checked against each binary's arguments by
the Rust test crates/e2e/tests/settings.rs (clap's own description of them), in
`cargo nextest run`.

    python3 scripts/check-docs.py

Prints one line per problem and exits 1, or prints a one-line summary and exits 0.
Python 3.11 standard library only.
"""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALERTS = "docs/alerts.md"
RULE_FILES = ["prometheus/rules/alerts.yml", "prometheus/e2e/fast-alerts.yml"]
RULE_TEST_FILES = ["prometheus/tests/alerts_test.yml"]
RUNBOOK_BASE = "https://github.com/fleetpulse/fleetpulse/blob/main/docs/alerts.md"

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


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    alerts = check_alerts()
    files = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
    links = check_links(files)
    if problems:
        for line in problems:
            print(f"check-docs: {line}")
        print(f"check-docs: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check-docs: ok: {alerts} alerts have runbooks in {ALERTS}, {links} links in "
          f"{len(files)} files resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
