# Where things are installed. A wheel (scikit-build-core) puts everything inside the Python package
# llama4_native/ so `find_package(llama4_native)` works with CMAKE_PREFIX_PATH=<site-packages>;
# a plain `cmake --install` uses the usual lib/ include/ lib/cmake layout.
include(GNUInstallDirs)
if(SKBUILD)
  set(LLAMA4_INSTALL_PYDIR llama4_native)
  set(LLAMA4_INSTALL_LIBDIR llama4_native)
  set(LLAMA4_INSTALL_INCLUDEDIR llama4_native/include)
  set(LLAMA4_INSTALL_CMAKEDIR llama4_native/cmake)
else()
  set(LLAMA4_INSTALL_PYDIR ${CMAKE_INSTALL_LIBDIR}/python/llama4_native)
  set(LLAMA4_INSTALL_LIBDIR ${CMAKE_INSTALL_LIBDIR})
  set(LLAMA4_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR})
  set(LLAMA4_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/llama4_native)
endif()
