#!/usr/bin/env bash
# Installs a built tether into a temporary prefix and builds tests/consumer against it twice:
# with CMake (find_package(tether CONFIG REQUIRED) + tether::tether) and with pkg-config
# (tether.pc). Runs both programs; each must print answer=42.
#
#   scripts/consumer.sh [build-dir]     (default: build; it must already be configured)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

work=$(mktemp -d "${TMPDIR:-/tmp}/tether-consumer.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
prefix="$work/prefix"

echo "== consumer: build and install $build into $prefix"
cmake --build "$build" -j "$jobs"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; exit 1; }
echo "installed $(grep -c 'Installing\|Up-to-date' "$work/install.log") files"

gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)

echo "== consumer: CMake find_package(tether CONFIG REQUIRED)"
cmake -S "$root/tests/consumer" -B "$work/cmake-build" "${gen[@]}" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON \
  -DCMAKE_BUILD_TYPE=Release >"$work/configure.log" || { cat "$work/configure.log"; exit 1; }
grep -h '^tether_DIR' "$work/cmake-build/CMakeCache.txt" || true
cmake --build "$work/cmake-build" -j "$jobs"
"$work/cmake-build/app"

echo "== consumer: pkg-config tether"
pcdir=$(dirname "$(find "$prefix" -name tether.pc -print -quit)")
[ -n "$pcdir" ] || { echo "tether.pc was not installed" >&2; exit 1; }
export PKG_CONFIG_PATH="$pcdir"
echo "pkg-config --cflags --libs tether: $(pkg-config --cflags --libs tether)"
# shellcheck disable=SC2046  # word splitting of pkg-config's output is intended
g++ -O1 -Wall -Wextra -Wpedantic -Werror -o "$work/app-pc" "$root/tests/consumer/main.cpp" \
  $(pkg-config --cflags --libs tether)
"$work/app-pc"

echo "== consumer: a tether configured without a build type is a Release build"
cmake -S "$root" -B "$work/defaults" "${gen[@]}" -DTETHER_BUILD_TESTS=OFF -DTETHER_BUILD_BENCH=OFF \
  -DTETHER_BUILD_EXAMPLES=OFF -DTETHER_BUILD_TOOLS=OFF >"$work/defaults.log" || { cat "$work/defaults.log"; exit 1; }
grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$work/defaults/CMakeCache.txt" || {
  echo "consumer: the default build type is not Release:" >&2
  grep '^CMAKE_BUILD_TYPE' "$work/defaults/CMakeCache.txt" >&2
  exit 1
}

echo "consumer: OK (CMake and pkg-config builds both ran)"
