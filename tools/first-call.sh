#!/usr/bin/env bash
# How soon `textback serve` answers the first missed-call webhook after it starts: RUNS
# starts (default 5) on one SQLite database with examples/quickstart.toml applied; each
# waits for /readyz, then PAUSE seconds (default 0.5), then times one signed webhook and a
# second one (tools/loadgen.py, one request each). Prints both latencies per start.
#
#   cargo build --release -p textback -p textback-testkit
#   tools/first-call.sh [RUNS] [PAUSE]
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-5}"
pause="${2:-0.5}"
[[ "$runs" =~ ^[1-9][0-9]*$ && "$pause" =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
  { echo "usage: tools/first-call.sh [RUNS] [PAUSE]: a number of starts, seconds" >&2; exit 2; }
source tools/bench-common.sh
export DATABASE_URL="sqlite:$work/first.db"
"$bin" apply examples/quickstart.toml >/dev/null

webhook() {
  python3 tools/loadgen.py --url "http://127.0.0.1:$port1" --calls 1 --concurrency 1 \
    --offset "$1" --token "$TWILIO_AUTH_TOKEN" --account-sid "$TWILIO_ACCOUNT_SID" |
    sed -n 's/^latency p50 \([0-9.]*\) ms.*/\1/p'
}

for run in $(seq 1 "$runs"); do
  "$bin" serve >"$work/serve-$run.log" 2>&1 &
  server=$!
  until curl -fs "http://127.0.0.1:$port1/readyz" >/dev/null; do sleep 0.02; done
  sleep "$pause"
  first="$(webhook $((run * 10)))"
  second="$(webhook $((run * 10 + 1)))"
  echo "start $run: first webhook $first ms, second $second ms"
  kill "$server"
  wait "$server" 2>/dev/null || true
done
