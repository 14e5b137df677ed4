#!/usr/bin/env bash
# Checks the observability configuration without starting anything:
#   - Prometheus: the config, every rule file (e2e ones included) and the rule unit tests;
#   - Alertmanager: the config;
#   - Grafana: every dashboard is JSON with a unique uid whose panels and query variables use
#     only the provisioned data sources (uids `prometheus` and `postgres`), and
#     scripts/dashboard-queries.py extracts every query.
# promtool and amtool are those of the versions compose runs (deploy/versions.env), built by
# scripts/observability.sh on first use; python3 checks the dashboards.
set -euo pipefail

cd "$(dirname "$0")/.."

command -v python3 >/dev/null 2>&1 || { echo "error: python3 is missing" >&2; exit 1; }
promtool=$(scripts/observability.sh path promtool)
amtool=$(scripts/observability.sh path amtool)

step() { printf '\n== %s\n' "$*"; }

step "promtool check config ($("$promtool" --version | head -n 1))"
"$promtool" check config prometheus/prometheus.yml

step "promtool check rules"
"$promtool" check rules prometheus/rules/*.yml prometheus/e2e/*.yml

step "promtool test rules"
(cd prometheus && "$promtool" test rules tests/*.yml)

step "amtool check-config ($("$amtool" --version | head -n 1))"
"$amtool" check-config alertmanager/alertmanager.yml

step "Grafana provisioning and dashboards"
python3 - grafana <<'PY'
import json
import sys
from pathlib import Path

root = Path(sys.argv[1])
known = {"prometheus", "postgres"}
errors = []

provisioned = (root / "provisioning/datasources/datasources.yml").read_text()
for uid in sorted(known):
    if f"uid: {uid}\n" not in provisioned:
        errors.append(f"datasources.yml: no data source with uid {uid}")

def walk(panels):
    for panel in panels:
        yield panel
        yield from walk(panel.get("panels", []))

seen = {}
files = sorted((root / "dashboards").glob("*.json"))
if not files:
    errors.append("no dashboard in grafana/dashboards")
for path in files:
    try:
        board = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        errors.append(f"{path}: invalid JSON: {err}")
        continue
    uid = board.get("uid")
    if not uid:
        errors.append(f"{path}: no uid")
    elif uid in seen:
        errors.append(f"{path}: uid {uid!r} already used by {seen[uid]}")
    else:
        seen[uid] = path.name
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            source = var.get("datasource")
            ds_uid = source.get("uid") if isinstance(source, dict) else source
            if ds_uid not in known:
                errors.append(f"{path.name}: variable {var.get('name')!r}: datasource uid "
                              f"{ds_uid!r} is not one of {sorted(known)}")
    for panel in walk(board.get("panels", [])):
        title = panel.get("title", panel.get("id"))
        sources = [("panel", panel.get("datasource"))] if "datasource" in panel else []
        sources += [(f"target {t.get('refId', '?')}", t.get("datasource"))
                    for t in panel.get("targets", [])]
        for what, source in sources:
            ds_uid = source.get("uid") if isinstance(source, dict) else source
            if ds_uid not in known:
                errors.append(f"{path.name}: panel {title!r}, {what}: datasource uid "
                              f"{ds_uid!r} is not one of {sorted(known)}")
    print(f"{path}: uid {uid}, {sum(1 for _ in walk(board.get('panels', [])))} panels")

if errors:
    print("\n".join(f"error: {e}" for e in errors), file=sys.stderr)
    sys.exit(1)
PY
python3 scripts/dashboard-queries.py >/dev/null
echo "dashboard-queries.py: $(python3 scripts/dashboard-queries.py | wc -l) queries extracted"

step "all observability configs are valid"
