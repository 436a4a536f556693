# nlohmann-json headers for the checkpoint loader (private to libllama4: no installed header
# includes them), as the imported target llama4_json. Order: NLOHMANN_JSON_INCLUDE_DIR (a folder
# holding nlohmann/json.hpp), the PyPI wheel nlohmann-json (installed with --no-deps; found without
# importing it, whose __init__ needs importlib_resources), else a system package's CMake config
# (Debian: nlohmann-json3-dev).
if(NOT NLOHMANN_JSON_INCLUDE_DIR AND DEFINED ENV{NLOHMANN_JSON_INCLUDE_DIR})
  set(NLOHMANN_JSON_INCLUDE_DIR $ENV{NLOHMANN_JSON_INCLUDE_DIR})
endif()
if(NOT NLOHMANN_JSON_INCLUDE_DIR)
  find_package(Python 3.10 COMPONENTS Interpreter)
  if(Python_Interpreter_FOUND)
    execute_process(
      COMMAND ${Python_EXECUTABLE} -c
        "import importlib.util as u, os; s = u.find_spec('nlohmann_json'); print(os.path.join(s.submodule_search_locations[0], 'include') if s else '')"
      OUTPUT_VARIABLE _nlohmann_dir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(_nlohmann_dir AND EXISTS "${_nlohmann_dir}/nlohmann/json.hpp")
      set(NLOHMANN_JSON_INCLUDE_DIR "${_nlohmann_dir}")
    endif()
  endif()
endif()

add_library(llama4_json INTERFACE IMPORTED)
if(NLOHMANN_JSON_INCLUDE_DIR AND EXISTS "${NLOHMANN_JSON_INCLUDE_DIR}/nlohmann/json.hpp")
  set_target_properties(llama4_json PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${NLOHMANN_JSON_INCLUDE_DIR}")
  message(STATUS "llama4: nlohmann-json headers at ${NLOHMANN_JSON_INCLUDE_DIR}")
else()
  find_package(nlohmann_json 3.10 CONFIG QUIET)
  if(NOT nlohmann_json_FOUND)
    message(FATAL_ERROR "nlohmann-json headers not found. Install them with "
      "'pip install --no-deps nlohmann-json==3.12.0' or pass -DNLOHMANN_JSON_INCLUDE_DIR=<dir with nlohmann/json.hpp>")
  endif()
  set_target_properties(llama4_json PROPERTIES INTERFACE_LINK_LIBRARIES nlohmann_json::nlohmann_json)
  message(STATUS "llama4: nlohmann-json ${nlohmann_json_VERSION} (system)")
endif()
