#!/usr/bin/env bash
# The one place that lists the Debian 12 packages tether needs to build, test and demo.
#
#   scripts/deps.sh            install whatever is missing (apt-get update first)
#   scripts/deps.sh format     ... plus the formatting/linting tools (clang-format, clang-tidy)
#   scripts/deps.sh fuzz       ... plus clang 14 and its sanitizer/libFuzzer runtimes (make fuzz)
#   scripts/deps.sh --list     print the package list and exit
#
# When every package is already installed it returns at once without touching apt, so it is
# safe (and fast) to call before every build, also as a non-root user.
set -euo pipefail

PACKAGES=(
  # toolchain and build
  build-essential g++ make cmake ninja-build pkg-config git
  # libraries
  libfmt-dev zlib1g-dev libssl-dev openssl libre2-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libcli11-dev nlohmann-json3-dev liburing-dev libcurl4-openssl-dev libhttp-parser-dev
  # interop tests (Python RPyC peer) and process/network tools used by tests
  python3 python3-rpyc procps iproute2
  # nftables: random packet loss on a veth pair (tests/reliability, when run as root)
  nftables
  # etcd for the registry's etcd backend tests (started by the tests on loopback ports)
  etcd-server
  # certificates for TLS tests against the system store
  ca-certificates
  # observability tests: a real Prometheus scrapes /metrics, headless Chromium loads the console
  prometheus chromium chromium-driver python3-selenium
)
FORMAT_PACKAGES=(clang-format clang-tidy)
FUZZ_PACKAGES=(clang-14 libclang-rt-14-dev)

want=("${PACKAGES[@]}")
for arg in "$@"; do
  case "$arg" in
    format) want+=("${FORMAT_PACKAGES[@]}") ;;
    fuzz) want+=("${FUZZ_PACKAGES[@]}") ;;
    --list) printf '%s\n' "${want[@]}"; exit 0 ;;
    *) echo "deps.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

# One dpkg-query call for all packages; unknown packages are simply absent from its output.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${want[@]}" 2>/dev/null || true)
missing=()
for p in "${want[@]}"; do
  if ! grep -qx "$p installed" <<<"$installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps.sh: installing missing Debian packages: ${missing[*]}"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "deps.sh: not root and no sudo; please install as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
