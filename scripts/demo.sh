#!/usr/bin/env bash
# The README's main job (`make demo`): builds and runs tether's current demo.
#
#   scripts/demo.sh [build-dir]      (default: build; it must already be configured)
#
# This is the one place that says what "the demo" is. Today it is the echo demo
# (examples/echo_server.cpp + echo_client.cpp); the RPC demo replaces it here later.
# examples/loop_demo.cpp (the event-loop tour) still builds and runs on its own.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

# --- The echo demo (net layer; owner: net). examples/echo_server on a free loopback port,
# examples/echo_client against it, then SIGTERM to the server (graceful shutdown).
cmake --build "$build" -j "$jobs" --target echo_server echo_client
out=$(mktemp)
"$build/examples/echo_server" --host 127.0.0.1 --port 0 >"$out" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; rm -f "$out"' EXIT
# The server's first line is "listening on 127.0.0.1:PORT"; wait for it (at most 10 s).
for _ in $(seq 200); do
  grep -q '^listening on ' "$out" && break
  kill -0 "$server" 2>/dev/null || { echo "demo.sh: echo_server exited early" >&2; exit 1; }
  sleep 0.05
done
line=$(head -n 1 "$out")
port=${line##*:}
echo "== examples/echo_server: $line"
echo "== examples/echo_client --port $port"
"$build/examples/echo_client" --host 127.0.0.1 --port "$port" "hello, tether" "echo me back" "bye"
kill -TERM "$server"
wait "$server"
trap - EXIT
rm -f "$out"
echo "== echo demo done"
