#!/usr/bin/env bash
# Checks that every public header under include/ compiles on its own (self-contained, include
# guard / #pragma once works): for each header it generates a translation unit that includes
# it twice and runs `g++ -std=c++20 -fsyntax-only` on it, two at a time.
#
#   scripts/check_headers.sh [header ...]     (default: every include/**/*.hpp)
# Environment: CXX (default g++), JOBS (default 2), CXXFLAGS (extra flags).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cxx=${CXX:-g++}
jobs=${JOBS:-2}

if [ $# -gt 0 ]; then
  headers=("$@")
else
  mapfile -t headers < <(find include -name '*.hpp' | LC_ALL=C sort)
fi
if [ ${#headers[@]} -eq 0 ]; then
  echo "check_headers: no headers found" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tether-headers.XXXXXX")
trap 'rm -rf "$work"' EXIT

for h in "${headers[@]}"; do
  rel=${h#include/}
  tu="$work/$(echo "$rel" | tr '/.' '__').cpp"
  printf '#include "%s"\n#include "%s"\n' "$rel" "$rel" >"$tu"
  printf '%s\t%s\n' "$tu" "$rel"
done >"$work/list"

export cxx work CXXFLAGS
check_one() {
  local tu=$1 rel=$2
  # shellcheck disable=SC2086  # CXXFLAGS is a list of flags
  if "$cxx" -std=c++20 -fsyntax-only -Wall -Wextra -Wpedantic -Werror ${CXXFLAGS:-} \
      -I"include" "$tu" >"$tu.log" 2>&1; then
    echo "ok    $rel"
  else
    echo "FAIL  $rel"
    sed 's/^/      /' "$tu.log"
    return 1
  fi
}
export -f check_one

status=0
tr '\t' '\n' <"$work/list" | xargs -d '\n' -n 2 -P "$jobs" bash -c 'check_one "$@"' _ \
  | tee "$work/results" || status=$?

total=${#headers[@]}
failed=$(grep -c '^FAIL' "$work/results" || true)
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then
  echo "check_headers: $failed of $total public headers do not compile on their own"
  exit 1
fi
echo "check_headers: all $total public headers compile on their own"
