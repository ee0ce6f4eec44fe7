#!/usr/bin/env bash
# Installs pardict into a temporary prefix, then builds and runs tests/cmake_consumer against it
# with find_package(pardict CONFIG REQUIRED). Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/pardict-install.XXXXXX")
trap 'rm -rf "$work"' EXIT

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi

echo "-- install pardict into $work/prefix"
cmake -S "$root" -B "$work/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DPARDICT_BUILD_TESTS=OFF -DPARDICT_BUILD_EXAMPLES=OFF -DPARDICT_BUILD_BENCH=OFF >/dev/null
cmake --install "$work/build" --prefix "$work/prefix" >/dev/null

echo "-- build tests/cmake_consumer against the installed package"
cmake -S "$root/tests/cmake_consumer" -B "$work/consumer" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" -j2 >/dev/null

"$work/consumer/pardict_consumer"
