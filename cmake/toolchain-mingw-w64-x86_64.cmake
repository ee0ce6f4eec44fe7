# Cross-compiles for 64-bit Windows with Debian's mingw-w64 toolchain (g++-mingw-w64-x86-64-posix:
# the posix thread model, which std::thread, std::mutex and std::atomic::wait need). The test
# executables are linked statically so that wine runs them without the toolchain's DLLs on its
# path, and ctest runs them through wine (CMAKE_CROSSCOMPILING_EMULATOR).
#   cmake -S . -B build/mingw -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-mingw-w64-x86_64.cmake \
#         -DPARDICT_GTEST_SOURCE_DIR=/usr/src/googletest
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(pardict_mingw_prefix x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${pardict_mingw_prefix}-gcc-posix)
set(CMAKE_CXX_COMPILER ${pardict_mingw_prefix}-g++-posix)
set(CMAKE_RC_COMPILER ${pardict_mingw_prefix}-windres)

set(CMAKE_FIND_ROOT_PATH /usr/${pardict_mingw_prefix})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")

find_program(PARDICT_WINE NAMES wine wine64)
if(PARDICT_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${PARDICT_WINE}")
endif()
