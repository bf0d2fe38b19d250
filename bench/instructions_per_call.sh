#!/usr/bin/env bash
# Instructions per RPC call (client and server together, user space), counted by callgrind:
# repeatable whatever else the machine is doing, unlike the timed ratios of bench_rpc_bench.
# Each phase runs twice (N1 and N2 calls); the difference divided by N2 - N1 cancels set-up.
#
#   bench/instructions_per_call.sh [BUILD_DIR (build)] [PHASES (sync pipe)]
#   EXTRA="--no-metrics" bench/instructions_per_call.sh build svc   # the cost of ServeOptions::metrics
set -euo pipefail
build=${1:-build}
phases=${2:-sync pipe}
bin=$build/bench/bench_rpc_bench
command -v valgrind >/dev/null || { echo "instructions_per_call: needs valgrind (apt-get install valgrind)" >&2; exit 2; }
[ -x "$bin" ] || { echo "instructions_per_call: build $bin first" >&2; exit 2; }
n1=${N1:-2000}
n2=${N2:-12000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
count() {  # phase calls -> total instructions
  valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$bin" --only "$1" --no-raw --rounds 1 --calls "$2" ${EXTRA:-} \
    >/dev/null 2>"$tmp/log"
  grep -o 'refs: *[0-9,]*' "$tmp/log" | tr -dc '0-9'
}
for phase in $phases; do
  a=$(count "$phase" "$n1")
  b=$(count "$phase" "$n2")
  echo "$phase: $(((b - a) / (n2 - n1))) instructions per call (client + server, user space)"
done
