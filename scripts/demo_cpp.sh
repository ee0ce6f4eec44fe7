#!/usr/bin/env bash
# Sets up the machine, builds in Release and runs the growth demo: N int64 keys inserted from
# 1, 2 and 8 threads into an empty pardict::concurrent_map, against std::unordered_map + mutex.
#   bash scripts/demo_cpp.sh [N] [T1,T2,...]     (defaults: 10000000 and 1,2,8)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j 2 --target pardict_growth_demo
echo
build/release/examples/cpp/pardict_growth_demo "$@"
