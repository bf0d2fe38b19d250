#----------------------------------------------------------------
# Generated CMake target import file for configuration "Debug".
#----------------------------------------------------------------

# Commands may need to know the format version.
set(CMAKE_IMPORT_FILE_VERSION 1)

# Import target "tether::base" for configuration "Debug"
set_property(TARGET tether::base APPEND PROPERTY IMPORTED_CONFIGURATIONS DEBUG)
set_target_properties(tether::base PROPERTIES
  IMPORTED_LINK_INTERFACE_LANGUAGES_DEBUG "CXX"
  IMPORTED_LOCATION_DEBUG "${_IMPORT_PREFIX}/lib/libtether_base.a"
  )

list(APPEND _cmake_import_check_targets tether::base )
list(APPEND _cmake_import_check_files_for_tether::base "${_IMPORT_PREFIX}/lib/libtether_base.a" )

# Import target "tether::loop" for configuration "Debug"
set_property(TARGET tether::loop APPEND PROPERTY IMPORTED_CONFIGURATIONS DEBUG)
set_target_properties(tether::loop PROPERTIES
  IMPORTED_LINK_INTERFACE_LANGUAGES_DEBUG "CXX"
  IMPORTED_LOCATION_DEBUG "${_IMPORT_PREFIX}/lib/libtether_loop.a"
  )

list(APPEND _cmake_import_check_targets tether::loop )
list(APPEND _cmake_import_check_files_for_tether::loop "${_IMPORT_PREFIX}/lib/libtether_loop.a" )

# Commands beyond this point should not need to know the version.
set(CMAKE_IMPORT_FILE_VERSION)
