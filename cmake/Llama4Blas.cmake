# OpenBLAS for the dense CPU matmuls, as the imported target llama4_blas.
# Order: LLAMA4_BLAS_DIR (a folder with include/ and lib/), the PyPI wheel scipy-openblas32 (a build
# and run-time dependency of the Python package; symbols carry the scipy_ prefix), else the system
# OpenBLAS (Debian: libopenblas-dev).
set(LLAMA4_BLAS_NAME "")
if(NOT LLAMA4_BLAS_DIR)
  find_package(Python 3.10 COMPONENTS Interpreter)
  if(Python_Interpreter_FOUND)
    execute_process(
      COMMAND ${Python_EXECUTABLE} -c
        "import scipy_openblas32 as s, os; print(os.path.dirname(s.get_include_dir()))"
      OUTPUT_VARIABLE _sob_root OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(_sob_root AND EXISTS "${_sob_root}/lib/libscipy_openblas.so")
      set(LLAMA4_BLAS_DIR "${_sob_root}")
    endif()
  endif()
endif()

add_library(llama4_blas INTERFACE IMPORTED)
if(LLAMA4_BLAS_DIR AND EXISTS "${LLAMA4_BLAS_DIR}/lib/libscipy_openblas.so")
  target_include_directories(llama4_blas INTERFACE "${LLAMA4_BLAS_DIR}/include")
  target_link_libraries(llama4_blas INTERFACE "${LLAMA4_BLAS_DIR}/lib/libscipy_openblas.so")
  target_compile_definitions(llama4_blas INTERFACE LLAMA4_BLAS_SCIPY_PREFIX=1)
  set(LLAMA4_BLAS_RUNTIME_DIR "${LLAMA4_BLAS_DIR}/lib")
  set(LLAMA4_BLAS_NAME "scipy-openblas32")
else()
  find_path(_openblas_inc cblas.h PATH_SUFFIXES openblas)
  find_library(_openblas_lib NAMES openblas)
  if(NOT _openblas_inc OR NOT _openblas_lib)
    message(FATAL_ERROR "No BLAS found: 'pip install scipy-openblas32', or install libopenblas-dev, "
                        "or set LLAMA4_BLAS_DIR")
  endif()
  target_include_directories(llama4_blas INTERFACE "${_openblas_inc}")
  target_link_libraries(llama4_blas INTERFACE "${_openblas_lib}")
  get_filename_component(LLAMA4_BLAS_RUNTIME_DIR "${_openblas_lib}" DIRECTORY)
  set(LLAMA4_BLAS_NAME "openblas (system)")
endif()
message(STATUS "llama4: BLAS ${LLAMA4_BLAS_NAME} (${LLAMA4_BLAS_RUNTIME_DIR})")
