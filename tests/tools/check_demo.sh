#!/usr/bin/env bash
# Runs the `make demo` tour (scripts/demo.sh --no-build BUILD) and checks what it printed.
# usage: check_demo.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
src=$1
build=$2
out=$(bash "$src/scripts/demo.sh" --no-build "$build" 2>&1)
rc=$?
fail=0
expect() {
  if ! grep -qE -- "$1" <<<"$out"; then
    echo "check_demo.sh: the tour's output lacks /$1/"
    fail=1
  fi
}
[ $rc -eq 0 ] || { echo "check_demo.sh: demo.sh exited $rc"; fail=1; }
expect '^listening on 127\.0\.0\.1:[0-9]+$'
expect '^3$'
expect '^12345678901233$'
expect "^'HELLO FROM THE SHELL'$"
expect "^b'\\\\x00\\\\xffbytes'$"
expect "^\\(42, 'forty-two'\\)$"
expect '"calls.add":2'
expect '^ValueError: something broke on the server$'
expect '^\(exit code 1\)$'
expect 'RPyC 5\.x +service DEMO'
expect '^  store +object +demo\.Store$'
expect '^3 sent, 3 received, 0% lost$'
expect '^rtt min/avg/max/p99 = [0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+ ms$'
expect '^calls/s +[0-9.]+$'
expect '^errors +0$'
expect '^python: root\.add\(1, 2\) = 3$'
expect '^python: root\.countdown\(3, callback\) = 3; the server called the Python callback with \[3, 2, 1\]$'
expect '^python: root\.fail\(\.\.\.\) raised ValueError: raised in C\+\+$'
expect "^python: len\\(store\\) = 3, keys = \\['answer', 'language', 'peer'\\]"
expect '^python: done$'
expect '^#1 c>s +[0-9.]+ms 5\.x seq=0 REQUEST GETROOT \(\)'
expect '^#1 s>c +[0-9.]+ms 5\.x seq=[0-9]+ REPLY 3  \['
expect '^server exited with status 0'
expect '^== demo done$'
if [ $fail -ne 0 ]; then
  echo "---- output ----"
  echo "$out"
  exit 1
fi
echo "check_demo.sh: the tour printed everything expected"
