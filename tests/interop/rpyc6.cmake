# RPyC 6.x clients against the tether interop server. Label: interop.
#
# interop.minirpyc6_client_to_tether_server always runs: the project's own 6.x peer
# (tests/interop/minirpyc) is in the repository, so the 6.x server side is tested on every run.
#
# interop.python6_client_to_tether_server runs test_python_client.py under a stock RPyC 6.x
# tree named by TETHER_RPYC6_PATH *when the test runs* (not at configure time, so one build
# serves both), and is reported as skipped (77) without it, never as passed. A tree that does
# not import as 6.x fails: PYTHONPATH falls back to Debian's 5.3 silently otherwise.
add_test(NAME interop.minirpyc6_client_to_tether_server
  COMMAND ${TETHER_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/test_minirpyc6_client.py $<TARGET_FILE:interop_server>)
set_tests_properties(interop.minirpyc6_client_to_tether_server PROPERTIES LABELS interop TIMEOUT 300)

add_test(NAME interop.python6_client_to_tether_server
  COMMAND /bin/sh -c [=[
if [ -z "$TETHER_RPYC6_PATH" ]; then
  echo "TETHER_RPYC6_PATH is not set: no stock RPyC 6.x tree to run the Python client with"
  exit 77
fi
export PYTHONPATH="$TETHER_RPYC6_PATH"
v=$("$1" -c 'import rpyc; print(rpyc.__version__)') || exit 1
case "$v" in
  6.*) echo "stock RPyC $v from $TETHER_RPYC6_PATH" ;;
  *) echo "TETHER_RPYC6_PATH=$TETHER_RPYC6_PATH imports rpyc $v, not 6.x"; exit 1 ;;
esac
exec "$1" "$2" "$3"
]=] sh ${TETHER_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/test_python_client.py $<TARGET_FILE:interop_server>)
set_tests_properties(interop.python6_client_to_tether_server PROPERTIES LABELS interop TIMEOUT 300
  SKIP_RETURN_CODE 77)
