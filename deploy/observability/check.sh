#!/usr/bin/env bash
# make observability-check: the alert rules pass `promtool check rules` and their unit
# tests `promtool test rules` (promtool installed from Debian's `prometheus` package when
# missing; only the tool is used, no service runs),
# the dashboard is valid JSON whose queries promtool parses, and both reference only
# metrics in metrics.txt, the catalog the tests hold against real scrapes.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v promtool >/dev/null 2>&1; then
  echo "observability-check: installing promtool (Debian package prometheus)" >&2
  SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool check rules alerts.yml
# Each alert fires on the series it is for, and not before (alerts_test.yml).
promtool test rules alerts_test.yml

queries=$(mktemp --suffix=.yml)
trap 'rm -f "$queries"' EXIT
python3 - "$queries" <<'PY'
import json, re, sys

catalog = {}
for line in open("metrics.txt"):
    line = line.strip()
    if line and not line.startswith("#"):
        name, kind = line.split()[:2]
        catalog[name] = kind

def referenced(text):
    return set(re.findall(r"\bcart_[a-z0-9_]+", text))

def known(name):
    if name in catalog:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and catalog.get(name[: -len(suffix)]) == "histogram":
            return True
    return False

dashboard = json.load(open("dashboard.json"))
exprs = []
def walk(panels):
    for p in panels:
        exprs.extend(t.get("expr", "") for t in p.get("targets", []))
        walk(p.get("panels", []))
walk(dashboard.get("panels", []))
if not exprs:
    sys.exit("dashboard.json: no queries")

bad = []
for source, text in (("dashboard.json", "\n".join(exprs)), ("alerts.yml", open("alerts.yml").read())):
    for name in sorted(referenced(text)):
        if not known(name):
            bad.append(f"{source}: {name} is not an exported metric (metrics.txt)")
if bad:
    sys.exit("\n".join(bad))

# The dashboard's queries as recording rules, for promtool to parse (Grafana's interval
# variables replaced by fixed ranges).
with open(sys.argv[1], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        e = e.replace("$__rate_interval", "5m").replace("$__range", "1h")
        out.write(f"      - record: dashboard_query_{i}\n        expr: {json.dumps(e)}\n")
print(f"dashboard.json: {len(exprs)} queries; every metric name of the dashboard and the alerts is exported")
PY
if ! out=$(promtool check rules "$queries" 2>&1); then
  echo "$out" >&2
  echo "dashboard.json: a query does not parse" >&2
  exit 1
fi
echo "dashboard.json: every query parses (promtool)"
