#!/usr/bin/env bash
# make demo: mirror a simulated VaultTerm (3 orgs, 2 days of audit history)
# into Hive-partitioned Parquet under ./demo-out, then prove it with verify.
# DEMO_PORT picks the simulator's port (default 8787; 0 = any free port).
set -euo pipefail
cd "$(dirname "$0")/../.."
DEMO_DIR=$PWD/demo-out
DEMO_PORT=${DEMO_PORT:-8787}
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR/tokens"
# Two whole days of history ending at today's midnight UTC.
DEMO_START=$(date -u -d '2 days ago' +%Y-%m-%dT00:00:00Z)
DEMO_END=$(date -u +%Y-%m-%dT00:00:00Z)
SIM_ARGS=(serve --addr "127.0.0.1:$DEMO_PORT" --orgs 3 --seed 42 --from "$DEMO_START" --to "$DEMO_END" --tokens-dir "$DEMO_DIR/tokens")

echo "==> starting the Events API simulator on 127.0.0.1:$DEMO_PORT (3 orgs, ~2000 events/hour each)"
# vaultsim prints its URL on stdout once it listens, and exits non-zero
# when it cannot: wait for one or the other, never for the port alone
# (another server may hold it).
bin/vaultsim "${SIM_ARGS[@]}" >"$DEMO_DIR/vaultsim.url" 2>"$DEMO_DIR/vaultsim.log" &
SIM=$!
trap 'kill $SIM 2>/dev/null || true' EXIT
DEMO_API=
for _ in $(seq 300); do
  DEMO_API=$(head -n1 "$DEMO_DIR/vaultsim.url")
  [ -n "$DEMO_API" ] && break
  if ! kill -0 "$SIM" 2>/dev/null; then
    wait "$SIM" || true
    echo "make demo: the simulator did not start:" >&2
    sed 's/^/  /' "$DEMO_DIR/vaultsim.log" >&2
    echo "make demo: free port $DEMO_PORT, or run DEMO_PORT=0 make demo (any free port)" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$DEMO_API" ]; then
  echo "make demo: the simulator printed no URL within 30s; its log: $DEMO_DIR/vaultsim.log" >&2
  exit 1
fi
export DEMO_DIR DEMO_START DEMO_API

echo "==> vaultsink sync: one catch-up pass for every org"
bin/vaultsink sync --config deploy/demo/demo.yaml

echo
echo "==> checkpoints"
bin/vaultsink checkpoint list --config deploy/demo/demo.yaml

echo
echo "==> files (one Parquet file per org and hour):"
find "$DEMO_DIR/parquet" -name '*.parquet' | sort | sed -n '1,3p'
echo "    ... $(find "$DEMO_DIR/parquet" -name '*.parquet' | wc -l) files, $(du -sh "$DEMO_DIR/parquet" | cut -f1) in $DEMO_DIR/parquet"

echo
echo "==> vaultsink verify: re-walk the API and compare every window with the files"
bin/vaultsink verify --config deploy/demo/demo.yaml --from "$DEMO_START" --to "$DEMO_END"

echo
echo "==> a second sync changes nothing (every org is current):"
bin/vaultsink sync --config deploy/demo/demo.yaml
echo
echo "Query the files with any Parquet reader, e.g. DuckDB (hive_types reads the partitions as a DATE and an hour number):"
echo "  SELECT org_id, date, action, count(*) FROM read_parquet('$DEMO_DIR/parquet/**/*.parquet', hive_partitioning=true, hive_types={'org_id': VARCHAR, 'date': DATE, 'hour': INTEGER}) GROUP BY ALL ORDER BY 4 DESC LIMIT 10;"
echo
echo "Reuse the demo's config (the simulator stops with this script; the files and checkpoints stay in $DEMO_DIR):"
SIM_ADDR=${DEMO_API#http://}
echo "  bin/vaultsim serve --addr ${SIM_ADDR%/api} --orgs 3 --seed 42 --from $DEMO_START --to $DEMO_END >/dev/null &"
echo "  export DEMO_DIR='$DEMO_DIR' DEMO_START='$DEMO_START' DEMO_API='$DEMO_API'"
echo "  bin/vaultsink checkpoint list --config deploy/demo/demo.yaml"
echo "  bin/vaultsink verify --config deploy/demo/demo.yaml --from $DEMO_START --to $DEMO_END"
