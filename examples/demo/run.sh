#!/usr/bin/env bash
# The README demo: a real campaign, end to end, on a fresh SQLite file (demo.db by default).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CAMPAIGN_DB="${CAMPAIGN_DB:-demo.db}"
rm -f "$CAMPAIGN_DB" "$CAMPAIGN_DB-wal" "$CAMPAIGN_DB-shm"
set -x
campaign users import "$here/../users.jsonl"
python3 "$here/crowd.py" "${DEMO_USERS:-20000}" | campaign users import --format jsonl -
campaign segment create -f "$here/../segments/all-users.yaml"
campaign send -f "$here/announce-everyone.yaml"
campaign messages list --campaign demo-release --limit 3
campaign events list --campaign demo-release --limit 4
campaign send -f "$here/announce-everyone.yaml"
