#!/usr/bin/env bash
# The README's main job (`make demo`): a guided tour of the `tether` command-line tool.
#
#   scripts/demo.sh [--no-build] [build-dir]      (default: build; it must already be configured)
#
# Builds the tool (unless --no-build), starts `tether serve --demo` on a free loopback port and
# shows, one heading per step: tether call (with a remote exception), tether inspect, tether
# ping, a short tether bench, a stock Python RPyC client (a callback into Python and a C++
# exception arriving as ValueError), and a few lines of tether tap between that Python client
# and the server. Then it stops the server with SIGTERM (graceful drain). The CTest test
# ToolsDemo.tour runs it with --no-build and checks what it prints.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_first=1
if [ "${1:-}" = "--no-build" ]; then
  build_first=0
  shift
fi
build=${1:-build}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
python=/usr/bin/python3

if [ "$build_first" = 1 ]; then
  cmake --build "$build" -j "$jobs" --target tether_cli
fi
tether="$build/tools/tether"
[ -x "$tether" ] || { echo "demo.sh: $tether is not built" >&2; exit 1; }

work=$(mktemp -d)
server=""
tap=""
cleanup() {
  [ -n "$tap" ] && kill "$tap" 2>/dev/null || true
  [ -n "$server" ] && kill -TERM "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
# Prints a command as one could type it (arguments with spaces or quotes in double quotes), then
# runs it with its stderr on stdout, so that error lines appear in order.
show() {
  local line="$" a
  for a in "$@"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./:@=+-]+$ ]]; then
      line+=" $a"
    else
      a=${a//\\/\\\\}
      a=${a//\"/\\\"}
      a=${a//\$/\\\$}
      line+=" \"$a\""
    fi
  done
  printf '%s\n' "$line"
  "$@" 2>&1
}

# Starts "$@" in the background with stdout on a FIFO and reads its first line (at most 10 s):
# sets $bg_pid and $bg_line; the rest of its output goes to $2-named file.
start_bg() {
  local out=$1
  shift
  mkfifo "$work/fifo"
  "$@" >"$work/fifo" &
  bg_pid=$!
  exec {bg_fd}<"$work/fifo"
  rm -f "$work/fifo"
  if ! IFS= read -r -t 10 bg_line <&"$bg_fd"; then
    echo "demo.sh: $1 did not start" >&2
    exit 1
  fi
  cat <&"$bg_fd" >"$out" &
  exec {bg_fd}<&-
}

step "tether serve --demo 127.0.0.1:0   (the kernel picks the port)"
start_bg "$work/server.out" "$tether" --log-level info serve --demo 127.0.0.1:0 2>"$work/server.log"
server=$bg_pid
echo "$bg_line"
addr=${bg_line#listening on }
host=${addr%:*}
port=${addr##*:}

step "tether call: arguments are Python literals, results print as Python reprs"
show "$tether" call "$addr" add 1 2
show "$tether" call "$addr" add 12345678901234 "-1"
show "$tether" call "$addr" upper "'hello from the shell'"
show "$tether" call "$addr" echo "b'\\x00\\xffbytes'"
show "$tether" call "$addr" store.set "'answer'" "(42, 'forty-two')"
show "$tether" call "$addr" store.get "'answer'"
show "$tether" call "$addr" stats --json

step "tether call: a remote exception prints as Type: message and exits 1"
set +e
show "$tether" call "$addr" fail "'something broke on the server'"
rc=$?
set -e
echo "(exit code $rc)"

step "tether inspect: what the server exposes"
show "$tether" inspect "$addr"

step "tether ping: RPyC PING round trips"
show "$tether" ping "$addr" -c 3 -i 0.2

step "tether bench: 2 connections x 4 calls in flight for 1 second"
show "$tether" bench "$addr" add 1 2 -c 2 -p 4 -d 1

step "tether tap between a stock Python RPyC client and the server"
start_bg "$work/tap.out" "$tether" tap --listen 127.0.0.1:0 --to "$addr" --once --width 110
tap=$bg_pid
echo "$bg_line"
tap_addr=${bg_line#listening on }
tap_addr=${tap_addr%%,*}

step "a stock Python RPyC client ($python, rpyc), through the tap"
show "$python" "$root/examples/demo_client.py" "${tap_addr%:*}" "${tap_addr##*:}"
wait "$tap"
tap=""
step "what tether tap printed (the first 12 of $(grep -c ' seq=' "$work/tap.out") messages)"
awk '/ seq=/ && n < 12 { print; n++ }' "$work/tap.out"  # no pipe: head would SIGPIPE grep under pipefail

step "stopping the server (SIGTERM: graceful drain)"
kill -TERM "$server"
wait "$server"
server=""
echo "server exited with status 0; its log (--log-level info) had $(wc -l <"$work/server.log") lines, e.g.:"
head -n 3 "$work/server.log"
echo
echo "== demo done"
