# Cross-compiles for 64-bit Arm Linux with Debian's cross toolchain (g++-aarch64-linux-gnu); ctest
# runs the executables under qemu-user (CMAKE_CROSSCOMPILING_EMULATOR) with the target's libraries
# from /usr/aarch64-linux-gnu. qemu-user checks function, not the memory model: it runs the
# guest's threads on the host's cores, so arm64's weak ordering is not reproduced (the review of
# every ordering is in the design essay of include/pardict/detail/concurrent_table.hpp).
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake \
#         -DPARDICT_GTEST_SOURCE_DIR=/usr/src/googletest
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(pardict_cross_prefix aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${pardict_cross_prefix}-gcc)
set(CMAKE_CXX_COMPILER ${pardict_cross_prefix}-g++)

set(CMAKE_FIND_ROOT_PATH /usr/${pardict_cross_prefix})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

find_program(PARDICT_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(PARDICT_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${PARDICT_QEMU_AARCH64};-L;/usr/${pardict_cross_prefix}")
endif()
