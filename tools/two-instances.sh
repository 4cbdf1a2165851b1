#!/usr/bin/env bash
# Two `textback serve` instances on one PostgreSQL database, each driven by its own
# tools/loadgen.py, texting through one carrier-standin: the multi-instance figure in
# docs/PERFORMANCE.md. Creates a fresh database and drops it afterwards.
#
#   cargo build --release -p textback -p textback-testkit
#   tools/two-instances.sh [CALLS_PER_INSTANCE] [POSTGRES_URL_WITHOUT_DATABASE]
#
# Prints each generator's summary, the stand-in's last line (texts, distinct numbers,
# numbers texted twice, texts/s) and how busy the machine was. Fails if any caller was
# not texted exactly once.
set -euo pipefail
cd "$(dirname "$0")/.."

calls="${1:-3000}"
pg="${2:-postgres://postgres@127.0.0.1:5432}"
bin=target/release/textback
standin=target/release/carrier-standin
db="textback_two_$$"
work="$(mktemp -d)"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  rm -rf "$work"
}
trap cleanup EXIT

psql -q "$pg/postgres" -c "CREATE DATABASE $db"
"$standin" 127.0.0.1:4010 >"$work/standin.out" 2>&1 &
pids+=($!)
export DATABASE_URL="$pg/$db" TEXTBACK_PUBLIC_URL=http://127.0.0.1:8080 \
  TEXTBACK_TWILIO_API_BASE=http://127.0.0.1:4010 TEXTBACK_LOG=warn \
  TWILIO_ACCOUNT_SID=AC00000000000000000000000000000001 \
  TWILIO_AUTH_TOKEN=test_auth_token_0123456789abcdef
"$bin" apply examples/quickstart.toml >/dev/null
for port in 8080 8081; do
  TEXTBACK_LISTEN="127.0.0.1:$port" "$bin" serve >"$work/serve-$port.log" 2>&1 &
  pids+=($!)
done
for port in 8080 8081; do
  until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.1; done
done

read -r _ u n s i w q sq _ < /proc/stat
busy1=$((u + n + s + q + sq)) all1=$((u + n + s + i + w + q + sq))
# Both instances sign with the one public URL, as behind a load balancer.
python3 tools/loadgen.py --url http://127.0.0.1:8080 --calls "$calls" --concurrency 32 \
  --token "$TWILIO_AUTH_TOKEN" --account-sid "$TWILIO_ACCOUNT_SID" --offset 0 >"$work/lg1.out" &
lg1=$!
python3 tools/loadgen.py --url http://127.0.0.1:8081 --public-url http://127.0.0.1:8080 \
  --calls "$calls" --concurrency 32 --token "$TWILIO_AUTH_TOKEN" \
  --account-sid "$TWILIO_ACCOUNT_SID" --offset 500000 >"$work/lg2.out" &
lg2=$!
wait "$lg1" "$lg2"
want=$((2 * calls))
for _ in $(seq 1 120); do
  case "$(tail -1 "$work/standin.out")" in "texts $want,"*) break ;; esac
  sleep 1
done
read -r _ u n s i w q sq _ < /proc/stat
busy2=$((u + n + s + q + sq)) all2=$((u + n + s + i + w + q + sq))

echo "instance 1: $(tail -2 "$work/lg1.out" | tr '\n' ' ')"
echo "instance 2: $(tail -2 "$work/lg2.out" | tr '\n' ' ')"
last="$(tail -1 "$work/standin.out")"
echo "stand-in: $last"
echo "machine busy: $(( 100 * (busy2 - busy1) / (all2 - all1) ))%"
case "$last" in
  "texts $want, distinct numbers $want, texted more than once 0,"*) ;;
  *) echo "FAILED: expected $want texts to $want numbers, none twice" >&2; exit 1 ;;
esac
