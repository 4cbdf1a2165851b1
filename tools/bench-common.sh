# Sourced by the benchmark scripts (two-instances.sh, serve-soak.sh, grown-db.sh,
# first-call.sh): the release binaries, a scratch directory, the processes started
# (stopped, and the directory removed, on exit), the carrier stand-in and the credentials
# it and the server share. Ports are free ones
# picked at start ($port1, $port2 for the servers; the stand-in's own), so a run does not
# collide with a server already listening, as on 8080.
# BENCH_BIN_DIR: where the binaries are (default target/release), to compare two builds.
bin="${BENCH_BIN_DIR:-target/release}/textback"
standin="${BENCH_BIN_DIR:-target/release}/carrier-standin"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port1="$(free_port)" port2="$(free_port)" standin_port="$(free_port)"

"$standin" "127.0.0.1:$standin_port" >"$work/standin.out" 2>&1 &
pids+=($!)
export TEXTBACK_LISTEN="127.0.0.1:$port1" TEXTBACK_PUBLIC_URL="http://127.0.0.1:$port1" \
  TEXTBACK_TWILIO_API_BASE="http://127.0.0.1:$standin_port" TEXTBACK_LOG=warn \
  TWILIO_ACCOUNT_SID=AC00000000000000000000000000000001 \
  TWILIO_AUTH_TOKEN=test_auth_token_0123456789abcdef

# Starts `serve` on a new SQLite database at $1 with the quick start applied, and waits
# until it is ready; $server is its pid.
start_quickstart_serve() {
  export DATABASE_URL="sqlite:$1"
  "$bin" apply examples/quickstart.toml >/dev/null
  "$bin" serve >"$work/serve.log" 2>&1 &
  server=$!
  pids+=("$server")
  until curl -fs "http://127.0.0.1:$port1/readyz" >/dev/null; do sleep 0.1; done
}

# Waits (up to two minutes) until the stand-in has counted $1 texts.
wait_for_texts() {
  for _ in $(seq 1 120); do
    case "$(tail -1 "$work/standin.out")" in "texts $1,"*) return ;; esac
    sleep 1
  done
}

# Waits (up to $2 seconds, default two minutes) until the stand-in has texted $1 distinct
# numbers.
wait_for_callers() {
  for _ in $(seq 1 "${2:-120}"); do
    case "$(tail -1 "$work/standin.out")" in *", distinct numbers $1,"*) return ;; esac
    sleep 1
  done
}

# Prints the stand-in's last line; fails unless all $1 numbers were texted and none got the
# same text twice: for runs longer than the workflow's follow-up wait, whose follow-ups are
# second texts by design.
expect_each_texted_no_text_twice() {
  local last
  last="$(tail -1 "$work/standin.out")"
  echo "stand-in: $last"
  case "$last" in
    *", distinct numbers $1, "*", same text twice 0,"*) ;;
    *) echo "FAILED: expected all $1 numbers texted, none the same text twice" >&2; exit 1 ;;
  esac
}

# Prints the stand-in's last line; fails unless $1 texts went to $1 numbers, none twice.
expect_each_texted_once() {
  local last
  last="$(tail -1 "$work/standin.out")"
  echo "stand-in: $last"
  case "$last" in
    "texts $1, distinct numbers $1, texted more than once 0,"*) ;;
    *) echo "FAILED: expected $1 texts to $1 numbers, none twice" >&2; exit 1 ;;
  esac
}
