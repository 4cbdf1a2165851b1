#!/usr/bin/env bash
# A soak of `textback serve` itself (SQLite, the recommended workflow of
# examples/quickstart.toml), driven by tools/loadgen.py from another process through the
# carrier stand-in. Every 30 s it prints the resident set, its high-water mark, SQLite's
# memory and the jobs due (from /metrics), the -wal and database file sizes, serve's CPU
# seconds so far, and the resident set split into anonymous memory (the heaps) and file
# pages (mostly the executable's code, faulted in as paths first run); then the
# generator's summary, how soon the carrier had each missed call's text (serve's own
# histogram) and the stand-in's summary. Fails unless every
# caller was texted exactly once; a run of 30 minutes or more also sends the workflow's
# follow-ups, and fails unless every caller was texted and none got the same text twice.
#
#   cargo build --release -p textback -p textback-testkit
#   tools/serve-soak.sh 120000 100          # calls, calls per second (here 20 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."

calls="${1:-120000}"
rate="${2:-100}"
[[ "$calls" =~ ^[1-9][0-9]*$ && "$rate" =~ ^[1-9][0-9]*$ ]] ||
  { echo "usage: tools/serve-soak.sh [CALLS] [CALLS_PER_SECOND]: numbers" >&2; exit 2; }
source tools/bench-common.sh
start_quickstart_serve "$work/soak.db"

mib() { awk -v k="$1" '$1 == k":" {printf "%.1f", $2 / 1024}' "/proc/$server/status"; }
size() { stat -c %s "$1" 2>/dev/null | awk '{printf "%.1f", $1 / 1048576}' || echo 0; }
sample() {
  local m
  m="$(curl -fs "http://127.0.0.1:$port1/metrics" || true)"
  echo "$(($(date +%s) - start)) $(mib VmRSS) $(mib VmHWM)" \
    "$(echo "$m" | awk '/^textback_sqlite_memory_bytes/ {printf "%.1f", $2 / 1048576}')" \
    "$(echo "$m" | awk '/^textback_queue_depth/ {print $2}')" \
    "$(size "$work/soak.db-wal") $(size "$work/soak.db")" \
    "$(awk '{printf "%.1f", ($14 + $15) / 100}' "/proc/$server/stat")" \
    "$(mib RssAnon) $(mib RssFile)"
}

start=$(date +%s)
echo "seconds rss_mib hwm_mib sqlite_mib queue_depth wal_mib db_mib cpu_s anon_mib file_mib"
python3 tools/loadgen.py --url "http://127.0.0.1:$port1" --calls "$calls" --concurrency 16 --rate "$rate" \
  --token "$TWILIO_AUTH_TOKEN" --account-sid "$TWILIO_ACCOUNT_SID" >"$work/loadgen.out" 2>&1 &
loadgen=$!
while kill -0 "$loadgen" 2>/dev/null; do
  sample
  # Every 30 s, or sooner once the generator is done.
  for _ in $(seq 1 30); do kill -0 "$loadgen" 2>/dev/null && sleep 1; done
done
wait "$loadgen"
# The recommended workflow follows up 30 minutes after a call: a longer run sends those
# second texts by design, and is checked for callers texted and identical texts instead.
follow_ups=$(( calls / rate >= 1800 ))
if (( follow_ups )); then wait_for_callers "$calls"; else wait_for_texts "$calls"; fi
sleep 3
sample
cat "$work/loadgen.out"
# From serve's own histograms (buckets of /metrics): the share of missed calls whose text
# the carrier had accepted within 10, 25 and 50 ms (the bar: p99 within 50 ms), and of the
# webhooks answered within 5 and 10 ms as serve timed them (the bar: p99 within 10 ms; the
# generator's figures above add its own scheduling on the same two cores).
curl -fs "http://127.0.0.1:$port1/metrics" | awk '
  /^textback_missed_call_to_carrier_seconds_bucket/ {
    for (le in want) if (index($0, "le=\"" le "\"")) n[le] = $2
  }
  /^textback_missed_call_to_carrier_seconds_count/ { total = $2 }
  /^textback_http_request_seconds_bucket/ && index($0, "dial-status") {
    for (le in want) if (index($0, "le=\"" le "\"")) w[le] = $2
  }
  /^textback_http_request_seconds_count/ && index($0, "dial-status") { webhooks = $2 }
  BEGIN { want["0.005"]; want["0.01"]; want["0.025"]; want["0.05"] }
  END {
    if (total == 0) { print "missed call -> carrier: no samples"; exit }
    printf "missed call -> carrier accepted: %.2f%% within 10 ms, %.2f%% within 25 ms, %.2f%% within 50 ms\n",
      100 * n["0.01"] / total, 100 * n["0.025"] / total, 100 * n["0.05"] / total
    if (webhooks > 0)
      printf "webhook answered (serve'"'"'s own timing): %.2f%% within 5 ms, %.2f%% within 10 ms\n",
        100 * w["0.005"] / webhooks, 100 * w["0.01"] / webhooks
  }'
if (( follow_ups )); then expect_each_texted_no_text_twice "$calls"; else expect_each_texted_once "$calls"; fi
