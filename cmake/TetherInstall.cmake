include(CMakePackageConfigHelpers)

set(_tether_targets)
foreach(layer IN LISTS TETHER_LAYERS)
  list(APPEND _tether_targets tether_${layer})
endforeach()
list(APPEND _tether_targets tether_tether)

install(TARGETS ${_tether_targets} EXPORT tetherTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/tether DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT tetherTargets NAMESPACE tether:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tether)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/tetherConfig.cmake.in
  ${PROJECT_BINARY_DIR}/tetherConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tether)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/tetherConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/tetherConfig.cmake ${PROJECT_BINARY_DIR}/tetherConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tether)

# pkg-config: static archives listed from the top layer down.
set(_tether_pc_libs "")
list(REVERSE _tether_targets)
foreach(t IN LISTS _tether_targets)
  if(NOT t STREQUAL "tether_tether")
    string(APPEND _tether_pc_libs " -l${t}")
  endif()
endforeach()
# The prefix is written relative to the .pc file's own directory (${pcfiledir}), so the file
# stays right for `cmake --install --prefix <elsewhere>` and for relocated installs.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(_tether_pc_prefix "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _tether_pc_up "/_p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/_p")
  set(_tether_pc_prefix "\${pcfiledir}/${_tether_pc_up}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/tether.pc.in ${PROJECT_BINARY_DIR}/tether.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/tether.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
