# tether's entry points. Every target installs missing Debian packages first
# (scripts/deps.sh, a no-op when all are present), configures its build directory (Ninja when
# available) and builds incrementally.
#
#   make demo            build and run the current demo (scripts/demo.sh)
#   make test            build everything in build/ and run the whole test suite
#   make asan            ASan+UBSan build in build-asan/, all unit tests (not interop/bench)
#   make tsan            TSan build in build-tsan/ of the programs with tests labelled "tsan"; runs those
#   make check-headers   every public header compiles on its own
#   make check-layering  no upward #include between layers
#   make consumer        install build/ to a temp prefix, build+run tests/consumer (CMake, pkg-config)
#   make bench           build and run the benchmarks (short runs)
#   make soak            load and soak tests (CTest label slow, not in test/asan/tsan): 10,000
#                        idle connections, SOAK_SECONDS (600) of 64 pipelined connections with
#                        RSS/fds/latency sampled into build/soak.csv, a server restarted under load
#   make soak-short      the same with SOAK_SECONDS=20 and 2,000 idle connections (about 30 s)
#   make fuzz            clang libFuzzer build in build-fuzz/, runs every fuzz target FUZZ_SECONDS (60) each
#   make fuzz-ci         the same for FUZZ_CI_SECONDS (10) each: CI's short bounded run
#   make format          clang-format every source file in place (format-check: dry run)
#   make clean           remove the build directories
#   make ci              what .ci/run does

SHELL := /bin/bash
.DEFAULT_GOAL := build

JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
BUILD_DIR ?= build
ASAN_DIR  ?= build-asan
TSAN_DIR  ?= build-tsan
FUZZ_DIR  ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_CI_SECONDS ?= 10
SOAK_SECONDS ?= 600
SOAK_IDLE ?= 10000

CMAKE_OPTIONS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTETHER_WERROR=ON
# Sanitizer builds: tests only, -O1 (fast enough to run) with -g1 (line tables: reports keep
# file:line, and the build is much quicker than with full debug info), Debug so that
# assertions and loop-affinity checks are on. Warnings are errors in the main build only
# (GCC emits sanitizer-specific false positives).
SAN_OPTIONS := -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O1\ -g1 \
               -DTETHER_BUILD_BENCH=OFF -DTETHER_BUILD_EXAMPLES=OFF -DTETHER_BUILD_TOOLS=OFF \
               -DTETHER_BUILD_INTEROP_TESTS=OFF

CTEST_FLAGS ?= --output-on-failure -j2 --no-tests=error
export ASAN_OPTIONS  ?= detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1:strict_string_checks=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS  ?= halt_on_error=1:second_deadlock_stack=1
BENCH_ARGS ?= --benchmark_min_time=0.2

FORMAT_DIRS := include src tests bench examples tools fuzz

.PHONY: build demo test asan tsan check-headers check-layering consumer bench format format-check \
        clean ci deps configure fuzz fuzz-ci soak soak-short

deps:
	@scripts/deps.sh

configure: deps
	@scripts/configure.sh $(BUILD_DIR) $(CMAKE_OPTIONS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

demo: configure
	JOBS=$(JOBS) scripts/demo.sh $(BUILD_DIR)

test: build
	cd $(BUILD_DIR) && ctest $(CTEST_FLAGS) -LE slow

asan: deps
	@scripts/configure.sh $(ASAN_DIR) $(SAN_OPTIONS) -DTETHER_SANITIZE=address,undefined
	cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && ctest $(CTEST_FLAGS) -LE 'interop|bench|slow'

tsan: deps
	@scripts/configure.sh $(TSAN_DIR) $(SAN_OPTIONS) -DTETHER_SANITIZE=thread
	cmake --build $(TSAN_DIR) -j $(JOBS) --target tether_tsan_tests
	cd $(TSAN_DIR) && ctest $(CTEST_FLAGS) -L tsan -LE slow

# One test at a time (-j1): the soak's latency and RSS samples should not share the machine
# with the idle-connection test. The CSV is plotted by scripts/soak_plot.py.
soak: build
	cd $(BUILD_DIR) && TETHER_SOAK_SECONDS=$(SOAK_SECONDS) TETHER_SOAK_IDLE=$(SOAK_IDLE) \
	  TETHER_SOAK_CSV=$(abspath $(BUILD_DIR))/soak.csv ctest --output-on-failure --no-tests=error -j1 -L slow -V
	@[ -f $(BUILD_DIR)/soak.csv ] && /usr/bin/python3 scripts/soak_plot.py $(BUILD_DIR)/soak.csv || true

soak-short:
	$(MAKE) soak SOAK_SECONDS=20 SOAK_IDLE=2000

check-headers: deps
	JOBS=2 scripts/check_headers.sh

check-layering:
	scripts/check_layering.sh

consumer: configure
	JOBS=$(JOBS) scripts/consumer.sh $(BUILD_DIR)

# Google Benchmark programs get BENCH_ARGS; the ratio benchmarks (stream, net, rpc: interleaved
# against raw sockets) take their own options and run with their defaults; then the stock
# Python client against calc_server vs a Python ThreadedServer.
GBENCH_PROGRAMS := bench_brine_bench bench_channel_bench bench_loop_bench
bench: build
	@set -e; found=0; for b in $(BUILD_DIR)/bench/bench_*; do \
	  [ -x "$$b" ] || continue; found=1; echo "== $$b"; \
	  case " $(GBENCH_PROGRAMS) " in *" $$(basename $$b) "*) "$$b" $(BENCH_ARGS) ;; *) "$$b" ;; esac; done; \
	  [ $$found = 1 ] || echo "no benchmarks built yet (bench/*.cpp)"; \
	  echo "== bench/python_client_bench.py"; \
	  /usr/bin/python3 bench/python_client_bench.py $(BUILD_DIR)/examples/calc_server && \
	  echo "== bench/busy_poll_cpu.py" && \
	  /usr/bin/python3 bench/busy_poll_cpu.py $(BUILD_DIR)/examples/calc_server

# libFuzzer targets (fuzz/): built with clang in $(FUZZ_DIR), one target at a time; a finding
# fails the run. The normal build replays their corpora under CTest (label fuzz) instead.
fuzz:
	FUZZ_BUILD_DIR=$(FUZZ_DIR) FUZZ_SECONDS=$(FUZZ_SECONDS) JOBS=$(JOBS) scripts/fuzz.sh

fuzz-ci:
	FUZZ_BUILD_DIR=$(FUZZ_DIR) FUZZ_SECONDS=$(FUZZ_CI_SECONDS) JOBS=$(JOBS) scripts/fuzz.sh

format:
	@scripts/deps.sh format
	find $(FORMAT_DIRS) -type f \( -name '*.hpp' -o -name '*.cpp' \) -print0 2>/dev/null \
	  | xargs -0 -r clang-format -i --style=file

format-check:
	@scripts/deps.sh format
	find $(FORMAT_DIRS) -type f \( -name '*.hpp' -o -name '*.cpp' \) -print0 2>/dev/null \
	  | xargs -0 -r clang-format --dry-run --Werror --style=file

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(TSAN_DIR) $(FUZZ_DIR)

ci:
	bash .ci/run
