#!/usr/bin/env bash
# Does a missed call cost `textback serve` more once its SQLite database is large? Times
# MEASURE calls on a fresh database, fills it with FILL more, then times MEASURE calls
# again: serve's CPU per call (utime + stime from /proc), the generator's webhooks/s and
# p99, and the database's size. The recommended workflow of examples/quickstart.toml;
# tools/loadgen.py from another process, flat out at concurrency 32.
#
#   cargo build --release -p textback -p textback-testkit
#   tools/grown-db.sh [FILL] [MEASURE]            # default 1000000 and 30000
#
# Fails unless every caller was texted. The fill's follow-ups fall due 30 minutes after
# each call and stay queued: a short run does not send them.
set -euo pipefail
cd "$(dirname "$0")/.."

fill="${1:-1000000}"
measure="${2:-30000}"
[[ "$fill" =~ ^[0-9]+$ && "$measure" =~ ^[1-9][0-9]*$ ]] ||
  { echo "usage: tools/grown-db.sh [FILL] [MEASURE]: numbers of calls" >&2; exit 2; }
source tools/bench-common.sh

start_quickstart_serve "$work/grown.db"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
db_mib() { stat -c %s "$work/grown.db" | awk '{printf "%.0f", $1 / 1048576}'; }
texted=0
# Sends $1 calls from callers numbered from $2 and waits until each was texted.
send() {
  python3 tools/loadgen.py --url "http://127.0.0.1:$port1" --calls "$1" --concurrency 32 \
    --offset "$2" --token "$TWILIO_AUTH_TOKEN" --account-sid "$TWILIO_ACCOUNT_SID" >"$work/loadgen.out"
  texted=$((texted + $1))
  # A measure taken while serve still works off the fill's backlog would not be its own.
  wait_for_callers "$texted" 900
  case "$(tail -1 "$work/standin.out")" in
    *", distinct numbers $texted,"*) ;;
    *) echo "FAILED: serve had not texted all $texted callers 15 minutes after the last call" >&2; exit 1 ;;
  esac
}
# Times $2 calls from callers numbered from $3, labelled $1.
timed() {
  local before after
  before="$(cpu_ticks)"
  send "$2" "$3"
  after="$(cpu_ticks)"
  echo "$1 (database $(db_mib) MiB before the checkpoint's next round): serve's CPU" \
    "$(awk -v t="$((after - before))" -v n="$2" 'BEGIN {printf "%.3f", t * 10 / n}') ms per call;" \
    "$(tail -2 "$work/loadgen.out" | tr '\n' ' ')"
}

timed "fresh database, $measure calls" "$measure" 0
send "$fill" 1000000
echo "filled: $fill more calls; database $(db_mib) MiB"
timed "after the fill, $measure calls" "$measure" 7000000
expect_each_texted_no_text_twice "$texted"
