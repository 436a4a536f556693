# Decides whether the CUDA backend is built and finds the CUTLASS headers.
#   LLAMA4_CUDA=AUTO: build it when a CUDA compiler is found; ON: require it; OFF: never.
# Outputs: LLAMA4_WITH_CUDA, LLAMA4_CUDA_ARCHS_STRING, CUTLASS_INCLUDE_DIRS, LLAMA4_CUTLASS_VERSION.
set(LLAMA4_WITH_CUDA OFF)
set(LLAMA4_CUDA_ARCHS_STRING "")
set(LLAMA4_CUTLASS_VERSION "")
# Plain CUDA kernels: Ampere SASS + PTX, and Hopper. Hopper-only (wgmma/TMA) kernels: 90a only,
# never plain 90, for which CUTLASS silently compiles an empty kernel.
set(LLAMA4_CUDA_ARCHS "80;90a-real" CACHE STRING "Architectures of the portable CUDA kernels")
set(LLAMA4_CUDA_HOPPER_ARCHS "90a-real" CACHE STRING "Architectures of the Hopper-only kernels")

string(TOUPPER "${LLAMA4_CUDA}" _llama4_cuda_mode)
if(NOT _llama4_cuda_mode STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES ${LLAMA4_CUDA_ARCHS})
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    set(LLAMA4_WITH_CUDA ON)
    # Every arch some kernel is built for, each once (the Hopper-only list repeats 90a-real).
    set(_llama4_all_archs ${LLAMA4_CUDA_ARCHS} ${LLAMA4_CUDA_HOPPER_ARCHS})
    list(REMOVE_DUPLICATES _llama4_all_archs)
    set(LLAMA4_CUDA_ARCHS_STRING "${_llama4_all_archs}")
  elseif(_llama4_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "LLAMA4_CUDA=ON but no CUDA compiler was found (put nvcc on PATH or set CUDACXX)")
  else()
    message(STATUS "llama4: no CUDA compiler found, building the CPU backend only")
  endif()
endif()

if(LLAMA4_WITH_CUDA)
  # CUTLASS headers: CUTLASS_DIR (a CUTLASS checkout or the wheel's cutlass_library/source folder),
  # else the PyPI wheel nvidia-cutlass (installed with --no-deps) found through Python.
  if(NOT CUTLASS_DIR AND DEFINED ENV{CUTLASS_DIR})
    set(CUTLASS_DIR $ENV{CUTLASS_DIR})
  endif()
  if(NOT CUTLASS_DIR)
    find_package(Python 3.10 COMPONENTS Interpreter)
    if(Python_Interpreter_FOUND)
      execute_process(
        COMMAND ${Python_EXECUTABLE} -c
          "import importlib.util as u, os; s = u.find_spec('cutlass_library'); print(os.path.join(s.submodule_search_locations[0], 'source') if s else '')"
        OUTPUT_VARIABLE CUTLASS_DIR OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    endif()
  endif()
  if(NOT CUTLASS_DIR OR NOT EXISTS "${CUTLASS_DIR}/include/cutlass/version.h")
    set(_msg "CUTLASS headers not found. Install them with "
      "'pip install --no-deps nvidia-cutlass==4.2.0.0' or pass -DCUTLASS_DIR=<dir with include/cutlass>")
    if(_llama4_cuda_mode STREQUAL "ON")
      message(FATAL_ERROR ${_msg})
    endif()
    message(WARNING "${_msg}; building the CPU backend only (LLAMA4_CUDA=AUTO)")
    set(LLAMA4_WITH_CUDA OFF)
    set(LLAMA4_CUDA_ARCHS_STRING "")
  endif()
endif()

if(LLAMA4_WITH_CUDA)
  set(CUTLASS_DIR "${CUTLASS_DIR}" CACHE PATH "CUTLASS source folder (holds include/cutlass)" FORCE)
  set(CUTLASS_INCLUDE_DIRS "${CUTLASS_DIR}/include" "${CUTLASS_DIR}/tools/util/include")
  file(STRINGS "${CUTLASS_DIR}/include/cutlass/version.h" _v REGEX "#define CUTLASS_(MAJOR|MINOR|PATCH) ")
  string(REGEX REPLACE ".*CUTLASS_MAJOR ([0-9]+).*" "\\1" _maj "${_v}")
  string(REGEX REPLACE ".*CUTLASS_MINOR ([0-9]+).*" "\\1" _min "${_v}")
  string(REGEX REPLACE ".*CUTLASS_PATCH ([0-9]+).*" "\\1" _pat "${_v}")
  set(LLAMA4_CUTLASS_VERSION "${_maj}.${_min}.${_pat}")
  message(STATUS "llama4: CUDA ${CUDAToolkit_VERSION}, archs ${LLAMA4_CUDA_ARCHS_STRING}, CUTLASS ${LLAMA4_CUTLASS_VERSION} at ${CUTLASS_DIR}")
endif()
