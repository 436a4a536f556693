# The CUDA backend as two static libraries linked into libllama4:
#   llama4_cuda        csrc/cuda/*.cu except *_sm90a.cu, for LLAMA4_CUDA_ARCHS (Ampere and Hopper)
#   llama4_cuda_sm90a  csrc/cuda/*_sm90a.cu (CUTLASS wgmma/TMA kernels), for 90a only
# cudart is linked statically so the module imports on machines without a driver.
file(GLOB _all_cu CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/csrc/cuda/*.cu)
set(_hopper_cu ${_all_cu})
list(FILTER _hopper_cu INCLUDE REGEX "_sm90a\\.cu$")
set(_portable_cu ${_all_cu})
list(FILTER _portable_cu EXCLUDE REGEX "_sm90a\\.cu$")

set(_cuda_flags --expt-relaxed-constexpr -DNDEBUG -Xcompiler=-fPIC)
add_library(llama4_cuda STATIC ${_portable_cu})
set_target_properties(llama4_cuda PROPERTIES CUDA_ARCHITECTURES "${LLAMA4_CUDA_ARCHS}"
                      CUDA_RUNTIME_LIBRARY Static POSITION_INDEPENDENT_CODE ON)
target_include_directories(llama4_cuda PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/csrc
                           ${CMAKE_CURRENT_SOURCE_DIR}/csrc/include)
target_compile_options(llama4_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${_cuda_flags}>)
# Host-side warnings for our own kernels' translation units, as the C++ core gets them.
target_compile_options(llama4_cuda PRIVATE
                       $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Wno-unused-parameter>)
target_link_libraries(llama4_cuda PUBLIC CUDA::cudart_static)

if(_hopper_cu)
  add_library(llama4_cuda_sm90a STATIC ${_hopper_cu})
  set_target_properties(llama4_cuda_sm90a PROPERTIES CUDA_ARCHITECTURES "${LLAMA4_CUDA_HOPPER_ARCHS}"
                        CUDA_RUNTIME_LIBRARY Static POSITION_INDEPENDENT_CODE ON)
  target_include_directories(llama4_cuda_sm90a PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/csrc
                             ${CMAKE_CURRENT_SOURCE_DIR}/csrc/include)
  target_include_directories(llama4_cuda_sm90a SYSTEM PRIVATE ${CUTLASS_INCLUDE_DIRS})
  target_compile_options(llama4_cuda_sm90a PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${_cuda_flags}>)
  target_link_libraries(llama4_cuda_sm90a PUBLIC CUDA::cudart_static)
  target_link_libraries(llama4_cuda PUBLIC llama4_cuda_sm90a)
  target_compile_definitions(llama4_cuda PRIVATE LLAMA4_WITH_SM90A=1)
endif()
