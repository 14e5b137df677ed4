#!/usr/bin/env python3
"""Prints every query of the Grafana dashboards, ready to run outside Grafana.

Reads grafana/dashboards/*.json (or the directory given as the only argument), walks every
panel, including the panels nested in rows, and prints one JSON object per panel target:

    {"dashboard": <uid>, "panel": <title>, "datasource": "prometheus"|"postgres", "query": <text>}

Grafana's variables and macros are replaced as for a one-hour range ending now, so that the
PromQL runs through Prometheus' HTTP API and the SQL through psql. Exits 1, naming the
dashboard and panel, on a target whose datasource uid is not `prometheus` or `postgres`, on a
target without a query, or on a `$` variable left after substitution. Python 3.11, stdlib only.
"""

import json
import re
import sys
from pathlib import Path

DATASOURCES = {"prometheus": "expr", "postgres": "rawSql"}

# Grafana's variables and macros, for a one-hour range ending now. `$__timeFilter(col)` takes
# its column from the query, so it is a regular expression.
SUBSTITUTIONS = [
    (re.compile(r"\$__timeFilter\(\s*([^()]+?)\s*\)"),
     r"\1 BETWEEN now() - interval '1 hour' AND now()"),
    (re.compile(r"\$__timeFrom\(\s*\)"), "now() - interval '1 hour'"),
    (re.compile(r"\$__timeTo\(\s*\)"), "now()"),
    (re.compile(r"\$__rate_interval\b|\$\{__rate_interval\}"), "1m"),
    (re.compile(r"\$__interval\b|\$\{__interval\}"), "15s"),
    (re.compile(r"\$__range\b|\$\{__range\}"), "1h"),
]

# Any variable left: $name, ${name}, [[name]]. `$1` (label_replace) and a `$` ending a regex
# are not variables.
LEFTOVER = re.compile(r"\$\{?[A-Za-z_]\w*|\[\[\w+\]\]")


class DashboardError(Exception):
    """A dashboard that the e2e test could not run as is."""


def substitute(query: str) -> str:
    for pattern, replacement in SUBSTITUTIONS:
        query = pattern.sub(replacement, query)
    return query


def panels(items: list) -> list:
    """Every panel, depth first: rows carry their collapsed panels in `panels`."""
    found = []
    for panel in items:
        found.append(panel)
        found.extend(panels(panel.get("panels", [])))
    return found


def datasource_uid(source) -> str | None:
    return source.get("uid") if isinstance(source, dict) else None


def queries(path: Path) -> list[dict]:
    try:
        board = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DashboardError(f"{path}: not readable JSON: {err}") from err
    uid = board.get("uid")
    if not uid:
        raise DashboardError(f"{path}: no uid")
    lines = []
    for panel in panels(board.get("panels", [])):
        title = panel.get("title", f"panel {panel.get('id')}")
        where = f"{path.name}: panel {title!r}"
        for target in panel.get("targets", []):
            ref = target.get("refId", "?")
            uid_ = datasource_uid(target.get("datasource")) or datasource_uid(
                panel.get("datasource"))
            if uid_ not in DATASOURCES:
                raise DashboardError(
                    f"{where}, target {ref}: datasource uid {uid_!r} is neither "
                    f"'prometheus' nor 'postgres'")
            raw = target.get(DATASOURCES[uid_])
            if not isinstance(raw, str) or not raw.strip():
                raise DashboardError(
                    f"{where}, target {ref}: no {DATASOURCES[uid_]} query")
            query = substitute(raw)
            leftover = LEFTOVER.search(query)
            if leftover:
                raise DashboardError(
                    f"{where}, target {ref}: variable {leftover.group(0)!r} has no "
                    f"substitution")
            lines.append({"dashboard": uid, "panel": title, "datasource": uid_,
                          "query": query})
    return lines


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    directory = Path(argv[1]) if len(argv) > 1 else root / "grafana" / "dashboards"
    files = sorted(directory.glob("*.json"))
    if not files:
        print(f"error: no dashboard in {directory}", file=sys.stderr)
        return 1
    try:
        lines = [line for path in files for line in queries(path)]
    except DashboardError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for line in lines:
        print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
