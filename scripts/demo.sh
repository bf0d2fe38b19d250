#!/usr/bin/env bash
# The README's main job (`make demo`): a tether RPC server and real calls to it.
#
#   scripts/demo.sh [build-dir]      (default: build; it must already be configured)
#
# Starts examples/calc_server (a C++ service: add, apply with a callback, fail raising
# ValueError, a Store object) on a free loopback port, calls it from C++ (examples/calc_client,
# the blocking facade) and from a stock Python RPyC client (examples/calc_client.py, Debian's
# python3-rpyc), then stops the server with SIGTERM (graceful drain).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

cmake --build "$build" -j "$jobs" --target calc_server calc_client
out=$(mktemp)
"$build/examples/calc_server" --host 127.0.0.1 --port 0 >"$out" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; rm -f "$out"' EXIT
# The server's first line is "listening on 127.0.0.1:PORT"; wait for it (at most 10 s).
for _ in $(seq 200); do
  grep -q '^listening on ' "$out" && break
  kill -0 "$server" 2>/dev/null || { echo "demo.sh: calc_server exited early" >&2; exit 1; }
  sleep 0.05
done
line=$(head -n 1 "$out")
port=${line##*:}
echo "== examples/calc_server (C++): $line"
echo "== examples/calc_client (C++, blocking facade) -> port $port"
"$build/examples/calc_client" --host 127.0.0.1 --port "$port"
echo "== examples/calc_client.py (stock Python RPyC client) -> port $port"
/usr/bin/python3 "$root/examples/calc_client.py" "$port"
echo "== stopping calc_server (SIGTERM, graceful)"
kill -TERM "$server"
wait "$server"
trap - EXIT
rm -f "$out"
echo "== demo done"
