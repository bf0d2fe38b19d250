#!/usr/bin/env bash
# Builds tether's libFuzzer targets (fuzz/, TETHER_FUZZ=ON, clang 14 with ASan+UBSan) in
# build-fuzz/ and runs each in turn, one process at a time, printing executions, exec/s and
# coverage per target. Any crash, sanitizer report, failed check, timeout or out-of-memory fails
# the run (exit 1) and leaves the input in build-fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [--seconds N] [--runs N] [--build-only] [target...]
#
#   --seconds N   time per target (default $FUZZ_SECONDS, else 60)
#   --runs N      stop a target after N executions instead (with --seconds as well: whichever first)
#   --build-only  build the targets and stop
#   target...     names from fuzz/CMakeLists.txt (default: all)
#
# Each target starts from its committed seeds (fuzz/corpus/<target>/, never written to) plus the
# corpus earlier runs grew in build-fuzz/corpus/<target>/, with fuzz/dict/<dict>.dict. To keep a
# crash input as a regression test: fix the bug, then copy the artifact to
# fuzz/corpus/<target>/crash-<what> (the normal build's CTest replays every corpus file).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${FUZZ_BUILD_DIR:-build-fuzz}
seconds=${FUZZ_SECONDS:-60}
runs=
build_only=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --build-only) build_only=1; shift ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

scripts/deps.sh fuzz
t0=$SECONDS
# -O1 with line tables only: about half the compile time of -O2 -g (the CI phase is mostly this
# build), and what libFuzzer's own documentation suggests for sanitizer builds.
scripts/configure.sh "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DNDEBUG" \
  -DTETHER_FUZZ=ON -DTETHER_BUILD_TESTS=OFF -DTETHER_BUILD_BENCH=OFF -DTETHER_BUILD_EXAMPLES=OFF \
  -DTETHER_BUILD_TOOLS=OFF
cmake --build "$build" -j "${JOBS:-2}" --target tether_fuzzers
echo "fuzz.sh: targets built in $((SECONDS - t0))s"
[ "$build_only" = 1 ] && exit 0

# Leak checks on (per input, as libFuzzer does them); the slower stack-use-after-return
# detection of the unit-test jobs off.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

list="$build/fuzz/fuzzers.txt"
failed=()
summary=()
while read -r name exe corpus dict; do
  if [ ${#targets[@]} -gt 0 ] && [[ ! " ${targets[*]} " == *" $name "* ]]; then continue; fi
  work="$build/corpus/$name"
  art="$build/artifacts/$name"
  log="$build/logs/$name.log"
  mkdir -p "$work" "$art" "$(dirname "$log")"
  args=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1 -artifact_prefix="$art/")
  [ -n "$runs" ] && args+=(-runs="$runs")
  [ "$dict" != "-" ] && args+=(-dict="$dict")
  echo "== fuzz $name: ${args[*]} $work $corpus"
  start=$SECONDS
  rc=0
  "$exe" "${args[@]}" "$work" "$corpus" >"$log" 2>&1 || rc=$?
  took=$((SECONDS - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 || true)
  line=$(printf '%-10s %12s execs %6ss %8s exec/s  %s  rss %s MB' "$name" "${execs:-?}" "$took" "${rate:-?}" "${cov:-?}" "${rss:-?}")
  if [ "$rc" -ne 0 ]; then
    line="$line  FAILED (exit $rc)"
    failed+=("$name")
    grep -E 'ERROR|fuzz check failed|runtime error|SUMMARY|Test unit written|^(reader|load|op|end)' "$log" | head -20 || true
    echo "   log: $log; inputs: $art/"
  fi
  echo "$line"
  summary+=("$line")
done <"$list"

echo
echo "================ fuzz summary (${seconds}s per target${runs:+, at most $runs runs}) ================"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}"
  exit 1
fi
[ ${#summary[@]} -gt 0 ] || { echo "fuzz: no target ran" >&2; exit 1; }
echo "fuzz: all targets ran without a finding"
