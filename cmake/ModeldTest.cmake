# Helpers for tests: one cmocka binary per module, each run by CTest as its own process with a
# timeout; libFuzzer targets built only in the fuzz build (MODELD_FUZZ=ON, clang).

# modeld_unit_test(NAME name SOURCES a.c ... [LIBS extra...] [TIMEOUT s] [LABELS l...])
function(modeld_unit_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT MODELD_TESTS OR MODELD_FUZZ)
    return()
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE modeld_all ${CMOCKA_LINK_LIBRARIES} ${T_LIBS})
  target_include_directories(${T_NAME} PRIVATE ${CMOCKA_INCLUDE_DIRS} ${CMAKE_SOURCE_DIR}/tests)
  add_test(NAME ${T_NAME} COMMAND ${T_NAME})
  set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "MODELD_SOURCE_DIR=${CMAKE_SOURCE_DIR};MODELD_CORPUS_DIR=${CMAKE_SOURCE_DIR}/tests/fixtures/corpus;CMOCKA_MESSAGE_OUTPUT=stdout")
  if(T_LABELS)
    set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}")
  endif()
endfunction()

# modeld_fuzz_target(NAME name SOURCES a.c ...): a libFuzzer binary build/fuzz/<name>.
# Seeds, if any, live in tests/fuzz/corpus/<name>/.
function(modeld_fuzz_target)
  cmake_parse_arguments(F "" "NAME" "SOURCES;LIBS" ${ARGN})
  if(NOT MODELD_FUZZ)
    return()
  endif()
  add_executable(${F_NAME} ${F_SOURCES})
  target_link_libraries(${F_NAME} PRIVATE modeld_all ${F_LIBS})
  target_link_options(${F_NAME} PRIVATE -fsanitize=fuzzer)
  # Harnesses that need the shipped models find the repository here.
  target_compile_definitions(${F_NAME} PRIVATE MODELD_SOURCE_ROOT="${CMAKE_SOURCE_DIR}")
  set_property(GLOBAL APPEND PROPERTY MODELD_FUZZ_TARGETS ${F_NAME})
endfunction()
