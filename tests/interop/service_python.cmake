# A stock Python RPyC 5.3 client against a real tether::Service served by tether::serve():
# typed bindings, Class<T> objects, sessions, callbacks, and the graceful drain on SIGTERM and
# SIGINT (test_python_service.py starts service_server itself). Label: interop.
add_executable(interop_service_server service_server.cpp)
tether_test_optimization(interop_service_server)
target_link_libraries(interop_service_server PRIVATE tether::service tether::rpc tether::stream)
tether_warnings(interop_service_server)

add_test(NAME interop.python_client_to_tether_service
  COMMAND ${TETHER_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/test_python_service.py
          $<TARGET_FILE:interop_service_server>)
set_tests_properties(interop.python_client_to_tether_service PROPERTIES LABELS interop TIMEOUT 300)
