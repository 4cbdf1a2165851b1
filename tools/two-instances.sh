#!/usr/bin/env bash
# Two `textback serve` instances on one PostgreSQL database, each driven by its own
# tools/loadgen.py, texting through one carrier-standin: the multi-instance figure in
# docs/PERFORMANCE.md. Creates a fresh database and drops it afterwards.
#
#   cargo build --release -p textback -p textback-testkit
#   tools/two-instances.sh [CALLS_PER_INSTANCE] [POSTGRES_URL_WITHOUT_DATABASE]
#
# The URL may end in a query, e.g. postgres://postgres@localhost?host=/var/run/postgresql
# for PostgreSQL's Unix socket.
#
# Prints each generator's summary, the stand-in's last line (texts, distinct numbers,
# numbers texted twice, texts/s) and how busy the machine was. Fails if any caller was
# not texted exactly once.
set -euo pipefail
cd "$(dirname "$0")/.."

calls="${1:-3000}"
[[ "$calls" =~ ^[1-9][0-9]*$ ]] ||
  { echo "usage: tools/two-instances.sh [CALLS_PER_INSTANCE] [POSTGRES_URL]: CALLS is a number" >&2; exit 2; }
pg="${2:-postgres://postgres@127.0.0.1:5432}"
db="textback_two_$$"
pg_query=""
if [[ "$pg" == *\?* ]]; then pg_query="?${pg#*\?}"; pg="${pg%%\?*}"; fi
source tools/bench-common.sh
trap 'cleanup; psql -q "$pg/postgres$pg_query" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true' EXIT

psql -q "$pg/postgres$pg_query" -c "CREATE DATABASE $db"
export DATABASE_URL="$pg/$db$pg_query"
"$bin" apply examples/quickstart.toml >/dev/null
for port in "$port1" "$port2"; do
  TEXTBACK_LISTEN="127.0.0.1:$port" "$bin" serve >"$work/serve-$port.log" 2>&1 &
  pids+=($!)
done
for port in "$port1" "$port2"; do
  until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.1; done
done

read -r _ u n s i w q sq _ < /proc/stat
busy1=$((u + n + s + q + sq)) all1=$((u + n + s + i + w + q + sq))
# Both instances sign with the one public URL, as behind a load balancer.
python3 tools/loadgen.py --url "http://127.0.0.1:$port1" --calls "$calls" --concurrency 32 \
  --token "$TWILIO_AUTH_TOKEN" --account-sid "$TWILIO_ACCOUNT_SID" --offset 0 >"$work/lg1.out" &
lg1=$!
python3 tools/loadgen.py --url "http://127.0.0.1:$port2" --public-url "http://127.0.0.1:$port1" \
  --calls "$calls" --concurrency 32 --token "$TWILIO_AUTH_TOKEN" \
  --account-sid "$TWILIO_ACCOUNT_SID" --offset 500000 >"$work/lg2.out" &
lg2=$!
wait "$lg1" "$lg2"
want=$((2 * calls))
wait_for_texts "$want"
read -r _ u n s i w q sq _ < /proc/stat
busy2=$((u + n + s + q + sq)) all2=$((u + n + s + i + w + q + sq))

echo "instance 1: $(tail -2 "$work/lg1.out" | tr '\n' ' ')"
echo "instance 2: $(tail -2 "$work/lg2.out" | tr '\n' ' ')"
echo "machine busy: $(( 100 * (busy2 - busy1) / (all2 - all1) ))%"
expect_each_texted_once "$want"
