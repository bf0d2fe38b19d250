#!/usr/bin/env bash
# Configure a tether build directory (idempotent; cheap when nothing changed).
#
#   scripts/configure.sh <build-dir> [extra cmake -D options...]
#
# Uses Ninja when it is available, unless the directory was already configured with another
# generator (CMake cannot switch generators in place). Re-running with the same options is a
# no-op apart from CMake's own quick check; changed options are applied.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:?usage: configure.sh <build-dir> [cmake options...]}
shift

gen=()
if [ -f "$build/CMakeCache.txt" ]; then
  : # keep the existing generator
elif command -v ninja >/dev/null 2>&1; then
  gen=(-G Ninja)
fi

# Skip the configure step entirely when the cache already holds exactly these options and the
# build system exists (the build tool re-runs CMake itself when a CMakeLists.txt changes).
stamp="$build/.tether-configure-args"
args="$*"
if [ -f "$build/CMakeCache.txt" ] && { [ -f "$build/build.ninja" ] || [ -f "$build/Makefile" ]; } \
   && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$args" ]; then
  exit 0
fi

# A developer machine with ccache installed gets it as the compiler launcher (several build
# directories and git worktrees then share compiled objects); TETHER_NO_CCACHE=1 turns it off.
launcher=()
if [ -z "${TETHER_NO_CCACHE:-}" ] && command -v ccache >/dev/null 2>&1 && [ ! -f "$build/CMakeCache.txt" ]; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi

cmake -S "$root" -B "$build" "${gen[@]}" "${launcher[@]}" "$@"
printf '%s' "$args" >"$stamp"
