# tether_add_layer(<name> SOURCES ... DEPS ... [PUBLIC_LIBS ...] [PRIVATE_LIBS ...])
# Creates the static library tether_<name> exported as tether::<name>.
set(TETHER_LAYERS "" CACHE INTERNAL "")

function(tether_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-missing-field-initializers)
  if(TETHER_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

function(tether_add_layer name)
  cmake_parse_arguments(L "" "" "SOURCES;DEPS;PUBLIC_LIBS;PRIVATE_LIBS" ${ARGN})
  add_library(tether_${name} ${L_SOURCES})
  add_library(tether::${name} ALIAS tether_${name})
  set_target_properties(tether_${name} PROPERTIES EXPORT_NAME ${name} OUTPUT_NAME tether_${name})
  target_include_directories(tether_${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_compile_features(tether_${name} PUBLIC cxx_std_20)
  foreach(dep IN LISTS L_DEPS)
    target_link_libraries(tether_${name} PUBLIC tether_${dep})
  endforeach()
  if(L_PUBLIC_LIBS)
    target_link_libraries(tether_${name} PUBLIC ${L_PUBLIC_LIBS})
  endif()
  if(L_PRIVATE_LIBS)
    target_link_libraries(tether_${name} PRIVATE ${L_PRIVATE_LIBS})
  endif()
  tether_warnings(tether_${name})
  set(TETHER_LAYERS ${TETHER_LAYERS} ${name} CACHE INTERNAL "")
endfunction()

# Test programs are compiled for build time, not speed: their run time is the library's (built
# as configured) and their own glue. Measured on tests/rpc/policy_test.cpp with g++ 12: -O2 -g
# 33 s -> -O1 -g1 17 s; ASan+UBSan -O1 57 s -> -O0 25 s. Sanitizer builds keep -g1 (set by
# their CMAKE_CXX_FLAGS_DEBUG), so reports still name files and lines.
# Under UBSan the test programs leave out the checks made at every memory access (null,
# alignment, vptr), which cost the most to compile: policy_test.cpp ASan+UBSan -O0 25 s -> 19 s
# (ASan alone 16 s). ASan still reports a null dereference; the library itself keeps every
# UBSan check, header code instantiated in the tests keeps the arithmetic, bounds, enum,
# return and shift checks.
function(tether_test_optimization target)
  if(TETHER_SANITIZE)
    target_compile_options(${target} PRIVATE -O0)
    if(TETHER_SANITIZE MATCHES "undefined")
      target_compile_options(${target} PRIVATE -fno-sanitize=null,alignment,vptr)
    endif()
  elseif(CMAKE_BUILD_TYPE MATCHES "^(RelWithDebInfo|Release)$")
    target_compile_options(${target} PRIVATE -O1 -g1)
  endif()
endfunction()

# tether_add_test(<name> SOURCES ... LIBS ... [LABELS ...] [TIMEOUT s])
function(tether_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  tether_test_optimization(${name})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests ${PROJECT_SOURCE_DIR}/src)
  tether_warnings(${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT ${T_TIMEOUT})
  # Labels are set after discovery: a list passed through gtest_discover_tests' PROPERTIES
  # loses its semicolons ("loop;tsan" became LABELS loop + a stray property "tsan").
  if(T_LABELS)
    set(_labels_file "${CMAKE_CURRENT_BINARY_DIR}/${name}_labels.cmake")
    file(WRITE "${_labels_file}"
      "if(DEFINED ${name}_TESTS)\n"
      "  set_tests_properties(\${${name}_TESTS} PROPERTIES LABELS \"${T_LABELS}\")\n"
      "endif()\n")
    set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${_labels_file}")
  endif()
  # Remembered so that the TSan job can build only the programs holding tsan-labelled tests
  # (target tether_tsan_tests, created in the top-level CMakeLists.txt).
  if("tsan" IN_LIST T_LABELS)
    set_property(GLOBAL APPEND PROPERTY TETHER_TSAN_TEST_TARGETS ${name})
  endif()
endfunction()
