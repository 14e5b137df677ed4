#!/usr/bin/env python3
"""Prints every query of the Grafana dashboards, ready to run outside Grafana.

Reads grafana/dashboards/*.json (or the directory given as the only argument), walks every
panel, including the panels nested in rows, and prints one JSON object per panel target:

    {"dashboard": <uid>, "panel": <title>, "datasource": "prometheus"|"postgres", "query": <text>}

Grafana's variables and macros are replaced as for a one-hour range ending now, so that the
PromQL runs through Prometheus' HTTP API and the SQL through psql; a SQL query that reads the
hourly rollups (a `*_1h` table, which the panels read for ranges over two days) is printed
again for a 30-day range. The dashboard's own
template variables (`templating.list`) are replaced as when "All" is selected: by their
`allValue` (e.g. `.*`, for `host=~"$host"` in PromQL and `host ~ '^${host:regex}$'` in SQL),
else by their saved `current` value; the query that fills a variable is printed too, as a
line whose panel is `variable NAME` (`label_values(SELECTOR, LABEL)` becomes
`group by (LABEL) (SELECTOR)`). Exits 1, naming the dashboard and panel, on a target whose
datasource uid is not `prometheus` or `postgres`, on a target without a query, on a variable
without a value or with a query it cannot translate, or on a `$` variable left after
substitution. Python 3.11, stdlib only.
"""

import json
import re
import sys
from pathlib import Path

DATASOURCES = {"prometheus": "expr", "postgres": "rawSql"}

# Grafana's variables and macros, for a range ending now (one hour, or LONG_RANGE).
# `$__timeFilter(col)` takes its column from the query, so it is a regular expression.
def substitutions(hours: int) -> list:
    return [
        (re.compile(r"\$__timeFilter\(\s*([^()]+?)\s*\)"),
         rf"\1 BETWEEN now() - interval '{hours} hours' AND now()"),
        (re.compile(r"\$__timeFrom\(\s*\)"), f"now() - interval '{hours} hours'"),
        (re.compile(r"\$__timeTo\(\s*\)"), "now()"),
        (re.compile(r"\$__rate_interval\b|\$\{__rate_interval\}"), "1m"),
        (re.compile(r"\$__interval\b|\$\{__interval\}"), "15s"),
        (re.compile(r"\$__range\b|\$\{__range\}"), f"{hours}h"),
    ]


SUBSTITUTIONS = substitutions(1)
# A panel that reads the hourly rollups (`*_1h`) for ranges longer than two days is printed a
# second time for 30 days, so that both of its tables are proven to return data.
LONG_RANGE_HOURS = 30 * 24
ROLLUPS = re.compile(r"\b\w+_1h\b")

# Any variable left: $name, ${name}, [[name]]. `$1` (label_replace) and a `$` ending a regex
# are not variables.
LEFTOVER = re.compile(r"\$\{?[A-Za-z_]\w*|\[\[\w+\]\]")


class DashboardError(Exception):
    """A dashboard that the e2e test could not run as is."""


def substitute(query: str, variables: dict[str, str] | None = None,
               subs: list | None = None) -> str:
    for pattern, replacement in subs or SUBSTITUTIONS:
        query = pattern.sub(replacement, query)
    for name, value in (variables or {}).items():
        # $name, ${name}, ${name:format} and [[name]]; `\b` keeps $host from matching $hostname.
        # The format is ignored: Grafana, too, inserts a custom allValue unformatted.
        pattern = re.compile(r"\$\{" + re.escape(name) + r"(?::\w+)?\}|\$" + re.escape(name)
                             + r"\b|\[\[" + re.escape(name) + r"\]\]")
        query = pattern.sub(lambda _: value, query)
    return query


# Grafana's Prometheus variable function label_values([SELECTOR,] LABEL), as PromQL.
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.+?)\s*,\s*)?(\w+)\s*\)\s*$", re.S)


def variable_values(board: dict, where: str) -> tuple[dict[str, str], list[dict]]:
    """The value of every template variable, as with "All" selected, and the queries that
    fill the query variables (as `datasource`, `query` pairs)."""
    values, lines = {}, []
    for var in board.get("templating", {}).get("list", []):
        name = var.get("name")
        if not name:
            raise DashboardError(f"{where}: a template variable without a name")
        current = (var.get("current") or {}).get("value")
        if var.get("includeAll") and var.get("allValue"):
            values[name] = var["allValue"]
        elif isinstance(current, str) and current and current != "$__all":
            values[name] = current
        else:
            raise DashboardError(
                f"{where}: variable {name!r} has neither includeAll with an allValue nor a "
                f"saved current value")
        if var.get("type") != "query":
            continue
        uid = datasource_uid(var.get("datasource"))
        raw = var.get("query")
        if isinstance(raw, dict):
            raw = raw.get("query") or raw.get("rawSql")
        if uid == "prometheus":
            match = LABEL_VALUES.match(raw or "")
            if not match:
                raise DashboardError(
                    f"{where}: variable {name!r}: only label_values(...) queries are "
                    f"supported, got {raw!r}")
            selector = match.group(1) or f'{{{match.group(2)}!=""}}'
            query = f"group by ({match.group(2)}) ({selector})"
        elif uid == "postgres" and isinstance(raw, str) and raw.strip():
            query = raw
        else:
            raise DashboardError(f"{where}: variable {name!r}: no query for datasource {uid!r}")
        lines.append({"panel": f"variable {name}", "datasource": uid, "query": query})
    return values, lines


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
    variables, variable_queries = variable_values(board, path.name)
    lines = []
    for line in variable_queries:
        query = substitute(line["query"], variables)
        leftover = LEFTOVER.search(query)
        if leftover:
            raise DashboardError(
                f"{path.name}: {line['panel']}: variable {leftover.group(0)!r} has no "
                f"substitution")
        lines.append({"dashboard": uid, "panel": line["panel"],
                      "datasource": line["datasource"], "query": query})
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
            ranges = [(title, SUBSTITUTIONS)]
            if uid_ == "postgres" and ROLLUPS.search(raw):
                ranges.append((f"{title} (30 days: hourly rollups)",
                               substitutions(LONG_RANGE_HOURS)))
            for name, subs in ranges:
                query = substitute(raw, variables, subs)
                leftover = LEFTOVER.search(query)
                if leftover:
                    raise DashboardError(
                        f"{where}, target {ref}: variable {leftover.group(0)!r} has no "
                        f"substitution")
                lines.append({"dashboard": uid, "panel": name, "datasource": uid_,
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
