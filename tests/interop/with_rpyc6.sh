#!/bin/sh
# Runs a Python test under the stock RPyC 6.x tree named by TETHER_RPYC6_PATH *when the test
# runs* (not at configure time, so one build serves both):
#
#   with_rpyc6.sh PYTHON SCRIPT ARGS...
#
# Exits 77 (CTest's SKIP_RETURN_CODE: reported as skipped, never as passed) when the variable is
# not set. A tree that does not import as 6.x fails: PYTHONPATH would otherwise fall back to
# Debian's 5.3 silently.
if [ -z "$TETHER_RPYC6_PATH" ]; then
  echo "TETHER_RPYC6_PATH is not set: no stock RPyC 6.x tree to run $2 with"
  exit 77
fi
export PYTHONPATH="$TETHER_RPYC6_PATH"
v=$("$1" -c 'import rpyc; print(rpyc.__version__)') || exit 1
case "$v" in
  6.*) echo "stock RPyC $v from $TETHER_RPYC6_PATH" ;;
  *) echo "TETHER_RPYC6_PATH=$TETHER_RPYC6_PATH imports rpyc $v, not 6.x"; exit 1 ;;
esac
exec "$@"
