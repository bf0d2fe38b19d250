# RPyC 6.x clients against the tether interop server. Label: interop.
#
# interop.minirpyc6_client_to_tether_server always runs: the project's own 6.x peer
# (tests/interop/minirpyc) is in the repository, so the 6.x server side is tested on every run.
#
# interop.python6_client_to_tether_server runs test_python_client.py under a stock RPyC 6.x
# tree named by TETHER_RPYC6_PATH *when the test runs* (with_rpyc6.sh: reported as skipped
# without it, never as passed; a tree that does not import as 6.x fails).
add_test(NAME interop.minirpyc6_client_to_tether_server
  COMMAND ${TETHER_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/test_minirpyc6_client.py $<TARGET_FILE:interop_server>)
set_tests_properties(interop.minirpyc6_client_to_tether_server PROPERTIES LABELS interop TIMEOUT 300)

add_test(NAME interop.python6_client_to_tether_server
  COMMAND /bin/sh ${CMAKE_CURRENT_SOURCE_DIR}/with_rpyc6.sh
          ${TETHER_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/test_python_client.py $<TARGET_FILE:interop_server>)
set_tests_properties(interop.python6_client_to_tether_server PROPERTIES LABELS interop TIMEOUT 300
  SKIP_RETURN_CODE 77)
