# Installs libllama4, the public headers (csrc/include/llama4 only) and a relocatable CMake package:
#   find_package(llama4_native) -> imported target llama4_native::llama4
include(CMakePackageConfigHelpers)

if(SKBUILD)
  # In a wheel the BLAS comes from the scipy-openblas32 package installed beside us.
  set(_blas_rpath "$ORIGIN/../scipy_openblas32/lib")
else()
  set(_blas_rpath "${LLAMA4_BLAS_RUNTIME_DIR}")
endif()
set_target_properties(llama4 PROPERTIES INSTALL_RPATH "$ORIGIN;${_blas_rpath}")

# (The include directory reaches consumers through llama4's $<INSTALL_INTERFACE:...>.)
install(TARGETS llama4 EXPORT llama4_nativeTargets
        LIBRARY DESTINATION ${LLAMA4_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${LLAMA4_INSTALL_LIBDIR})
install(DIRECTORY csrc/include/llama4 DESTINATION ${LLAMA4_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")
install(EXPORT llama4_nativeTargets NAMESPACE llama4_native::
        DESTINATION ${LLAMA4_INSTALL_CMAKEDIR})
configure_package_config_file(cmake/llama4_nativeConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/llama4_nativeConfig.cmake
  INSTALL_DESTINATION ${LLAMA4_INSTALL_CMAKEDIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/llama4_nativeConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/llama4_nativeConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/llama4_nativeConfigVersion.cmake
        DESTINATION ${LLAMA4_INSTALL_CMAKEDIR})
