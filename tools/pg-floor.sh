#!/usr/bin/env bash
# PostgreSQL's own floor per missed call under batched writes (tools/pg-floor.sql): a fresh
# database with the quick start applied, pgbench with two clients for SECONDS, then the
# missed calls/s and how busy the machine was. Creates the database and drops it after.
#
#   cargo build --release -p textback
#   tools/pg-floor.sh [BATCH] [SECONDS] [POSTGRES_URL_WITHOUT_DATABASE]
set -euo pipefail
cd "$(dirname "$0")/.."

batch="${1:-16}" seconds="${2:-20}"
[[ "$batch" =~ ^[1-9][0-9]*$ && "$seconds" =~ ^[1-9][0-9]*$ ]] ||
  { echo "usage: tools/pg-floor.sh [BATCH] [SECONDS] [POSTGRES_URL]: BATCH and SECONDS are numbers" >&2; exit 2; }
pg="${3:-postgres://postgres@127.0.0.1:5432}"
db="textback_floor_$$"
bin="${BENCH_BIN_DIR:-target/release}/textback"
trap 'psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true' EXIT

psql -q "$pg/postgres" -c "CREATE DATABASE $db"
DATABASE_URL="$pg/$db" "$bin" apply examples/quickstart.toml >/dev/null
psql -q "$pg/$db" -c "CREATE SEQUENCE ceil_seq"
read -r _ u n s i w q sq _ < /proc/stat
busy1=$((u + n + s + q + sq)) all1=$((u + n + s + i + w + q + sq))
out="$(pgbench -n -T "$seconds" -c 2 -j 2 -D n="$batch" -f tools/pg-floor.sql -d "$pg/$db" 2>&1)"
read -r _ u n s i w q sq _ < /proc/stat
busy2=$((u + n + s + q + sq)) all2=$((u + n + s + i + w + q + sq))
grep -q "number of failed transactions: 0 " <<<"$out" || { echo "$out" >&2; echo "FAILED: pgbench reported failures" >&2; exit 1; }
tps="$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out")"
calls="$(psql -Atq "$pg/$db" -c "SELECT count(*) FROM calls")"
sent="$(psql -Atq "$pg/$db" -c "SELECT count(*) FROM messages WHERE status = 'sent'")"
# pgbench stops each client at the time limit, possibly between a batch's transactions.
(( calls - sent <= 2 * batch )) || { echo "FAILED: $calls calls but $sent texts sent" >&2; exit 1; }
busy=$(( 100 * (busy2 - busy1) / (all2 - all1) ))
python3 - "$tps" "$batch" "$busy" "$sent" <<'PY'
import os, sys
tps, batch, busy, calls = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
per_s = tps * batch
cores = os.cpu_count()
print(f"batch {batch}: {per_s:,.0f} missed calls/s ({calls:,} texted in all), machine {busy}% busy: "
      f"{cores * busy / 100 / per_s * 1000:.3f} ms of CPU per call (PostgreSQL and pgbench)")
PY
