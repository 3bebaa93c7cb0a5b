#!/usr/bin/env bash
# `make demo`: generate demo data, ingest it, build three instances, run them, show where to look.
set -euo pipefail
WS="${1:-demo-workspace}"
BIN="$(dirname "$0")/../.venv/bin"
export LIKELY_WORKSPACE="$WS"
rm -rf "$WS"
"$BIN/likely" init "$WS"
"$BIN/likely" demo-data --profiles "${DEMO_PROFILES:-20000}" --days "${DEMO_DAYS:-240}" --seed 7 \
  --out "$WS/demo-data"
"$BIN/likely" datasets ingest events "$WS/demo-data/events.parquet" --name demo-events
"$BIN/likely" datasets ingest profiles "$WS/demo-data/profiles.parquet" --name demo-profiles
if "$BIN/python" -c "import likely.scoring.run" >/dev/null 2>&1; then
  "$BIN/likely" instances create -f examples/purchase-30d.yaml
  "$BIN/likely" instances create -f examples/churn-60d.yaml
  "$BIN/likely" instances create -f examples/clv-90d.yaml
  # A history first: weekly scores over five past weeks (one model, re-scored), so the
  # analytics have trends and flows to show, and the latest run measures what really happened
  # after them for the dashboard's performance summary.
  "$BIN/likely" backfill purchase-30d --from "${DEMO_BACKFILL_FROM:-2025-07-03}" \
    --to "${DEMO_BACKFILL_TO:-2025-07-31}" --every 7d
  "$BIN/likely" run purchase-30d
  "$BIN/likely" run churn-60d
  "$BIN/likely" run clv-90d
  "$BIN/likely" runs list purchase-30d
  "$BIN/likely" scores purchase-30d --top 10
  "$BIN/likely" factors purchase-30d --top 5
  # Segments: every run made one per bucket and per common top reason; save one of our own over
  # both instances and a profile attribute, then drop its members into a folder.
  "$BIN/likely" segments create --name "gold buyers at no churn risk" \
    --rule "\"purchase-30d\".bucket = 'High' AND \"churn-60d\".bucket <> 'High' AND loyalty_tier IN ('gold', 'platinum')" \
    --description "High purchase propensity, not a churn risk, gold or platinum"
  "$BIN/likely" segments list
  "$BIN/likely" destinations add --name demo-drop --kind folder --set "path=$WS/drops"
  "$BIN/likely" segments activate "gold buyers at no churn risk" --destination demo-drop
fi
echo
echo "Workspace: $WS  (catalog: $WS/catalog.sqlite, data: $WS/data, outputs: $WS/runs,"
echo "  segment memberships: $WS/segments, activated files: $WS/drops)"
echo "Try: LIKELY_WORKSPACE=$WS .venv/bin/likely datasets show demo-events"
if [ "${DEMO_SERVE:-1}" = "1" ]; then
  echo
  echo "Dashboard: http://127.0.0.1:${DEMO_PORT:-8000}/instances/purchase-30d  (Ctrl-C stops it;"
  echo "DEMO_SERVE=0 make demo skips serving; later: .venv/bin/likely serve -w $WS)"
  exec "$BIN/likely" serve --port "${DEMO_PORT:-8000}"
fi
