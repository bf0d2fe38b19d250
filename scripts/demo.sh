#!/usr/bin/env bash
# The README's main job (`make demo`): builds and runs tether's current demo.
#
#   scripts/demo.sh [build-dir]      (default: build; it must already be configured)
#
# This is the one place that says what "the demo" is. Today it is the event-loop demo
# (examples/loop_demo.cpp); the echo demo and later the RPC demo replace it here.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

demo=loop_demo
if [ ! -f "$root/examples/$demo.cpp" ]; then
  echo "demo.sh: examples/$demo.cpp does not exist yet; nothing to run" >&2
  exit 1
fi

cmake --build "$build" -j "$jobs" --target "$demo"
echo "== running examples/$demo"
"$build/examples/$demo"
