#!/usr/bin/env bash
# Sets up the machine, then runs every test stage and stops at the first failure:
#   release  Release build of everything with -Werror, ctest (unit + concurrency suites)
#   tsan     ThreadSanitizer build of pardict_concurrency_tests, run with halt_on_error=1
#   asan     ASan+UBSan build of both test executables, run
#   fuzz     libFuzzer target for 60 s (only when clang is installed)
#   python   pytest tests/python (the package built by setup.sh; numba, every threading layer)
#   install  scripts/test_install.sh: install, then build a find_package consumer
#   mingw    scripts/test_cross.sh mingw: Windows x86-64 build (mingw-w64) of the C ABI and both
#            test executables, run under wine
#   aarch64  scripts/test_cross.sh aarch64: Linux aarch64 build of the same, run under qemu-user
#   libcxx   scripts/test_cross.sh libcxx: the same built with clang++ -stdlib=libc++
#   wheel    scripts/test_wheel.sh: sdist and wheel (python -m build), auditwheel repair, the
#            manylinux wheel installed into a fresh venv and run without a compiler on PATH
#   format   scripts/format.sh --check (clang-format, ruff format); ruff check (Python lint);
#            mypy over python/pardict (pyproject.toml configures both)
# mingw, aarch64 and libcxx are skipped, with the reason in the summary, when their toolchains
# are not installed (scripts/setup.sh installs them where the package index has them).
# Build dirs: build/{release,tsan,asan,fuzz,mingw,aarch64,libcxx,wheel}. FUZZ_SECONDS overrides the
# fuzzing time.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

jobs=2
fuzz_seconds=${FUZZ_SECONDS:-60}
generator=(-G Ninja)
# Sanitizer builds keep assertions (no -DNDEBUG) and debug info.
san_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g")
have_clang=0
if command -v clang++ >/dev/null 2>&1; then have_clang=1; fi

summary=()
current=""
stage_start=0
begin_stage() {
  current=$1
  stage_start=$SECONDS
  printf '\n==> [%s] %s\n' "$1" "$2"
}
end_stage() {
  summary+=("$(printf '  %-8s %-6s %4ds  %s' "$current" "${2:-ok}" $((SECONDS - stage_start)) "${1:-}")")
  current=""
}
on_exit() {
  local rc=$?
  if [[ -n $current ]]; then
    printf '\n==> FAILED in stage [%s] (exit %d)\n' "$current" "$rc"
    ((${#summary[@]})) && printf '%s\n' "${summary[@]}"
  fi
}
trap on_exit EXIT

# (a) Release build + ctest --------------------------------------------------------------------
begin_stage release "Release build and ctest"
cmake -S . -B build/release "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DPARDICT_BUILD_TESTS=ON -DPARDICT_BUILD_EXAMPLES=ON -DPARDICT_WERROR=ON
cmake --build build/release -j "$jobs"
ctest --test-dir build/release --output-on-failure --no-tests=error 2>&1 | tee build/release/ctest.log
ctest_line=$(grep -E '^[0-9]+% tests passed' build/release/ctest.log | tail -n 1)
end_stage "$ctest_line"

# (b) TSan: the concurrency suite ------------------------------------------------------------------
tsan_cxx=g++
if ((have_clang)); then tsan_cxx=clang++; fi
begin_stage tsan "ThreadSanitizer build ($tsan_cxx) of pardict_concurrency_tests"
cmake -S . -B build/tsan "${generator[@]}" "${san_flags[@]}" -DCMAKE_CXX_COMPILER="$tsan_cxx" \
  -DPARDICT_SANITIZE=thread -DPARDICT_BUILD_TESTS=ON -DPARDICT_BUILD_EXAMPLES=OFF
cmake --build build/tsan -j "$jobs" --target pardict_concurrency_tests
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
  build/tsan/tests/cpp/pardict_concurrency_tests --gtest_brief=1
end_stage "$tsan_cxx"

# (c) ASan + UBSan: both suites ------------------------------------------------------------------------
begin_stage asan "ASan+UBSan build (g++) of both test executables"
cmake -S . -B build/asan "${generator[@]}" "${san_flags[@]}" -DCMAKE_CXX_COMPILER=g++ \
  -DPARDICT_SANITIZE=address -DPARDICT_BUILD_TESTS=ON -DPARDICT_BUILD_EXAMPLES=OFF
cmake --build build/asan -j "$jobs" --target pardict_unit_tests pardict_concurrency_tests
export ASAN_OPTIONS="detect_leaks=1 ${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1 ${UBSAN_OPTIONS:-}"
build/asan/tests/cpp/pardict_unit_tests --gtest_brief=1
build/asan/tests/cpp/pardict_concurrency_tests --gtest_brief=1
end_stage "g++"

# (d) libFuzzer ----------------------------------------------------------------------------------------
if ((have_clang)); then
  begin_stage fuzz "libFuzzer pardict_fuzz_map for ${fuzz_seconds}s"
  cmake -S . -B build/fuzz "${generator[@]}" "${san_flags[@]}" -DCMAKE_CXX_COMPILER=clang++ \
    -DPARDICT_FUZZ=ON -DPARDICT_BUILD_TESTS=OFF -DPARDICT_BUILD_EXAMPLES=OFF
  cmake --build build/fuzz -j "$jobs" --target pardict_fuzz_map
  mkdir -p build/fuzz/corpus
  seeds=()
  if [[ -d tests/fuzz/corpus ]]; then seeds=(tests/fuzz/corpus); fi
  # New inputs go to build/fuzz/corpus; the committed seeds are only read.
  if ! build/fuzz/tests/cpp/pardict_fuzz_map -max_total_time="$fuzz_seconds" -timeout=30 \
      build/fuzz/corpus "${seeds[@]}" >build/fuzz/fuzz.log 2>&1; then
    tail -n 60 build/fuzz/fuzz.log
    exit 1
  fi
  fuzz_done=$(grep -E '^Done [0-9]+ runs' build/fuzz/fuzz.log | tail -n 1 || true)
  echo "$fuzz_done"
  end_stage "$fuzz_done"
else
  summary+=("  fuzz     skip       -  clang++ not installed")
fi

# (e) Python package ------------------------------------------------------------------------------
begin_stage python "pytest tests/python"
# The whole suite as users run it (stores inlined, lookups calling the C ABI: pardict.numba.jit),
# then the suites of the single-key path again with the lookups inlined too.
PARDICT_REQUIRE_JIT=1 .venv/bin/python -m pytest tests/python -q -p no:cacheprovider 2>&1 | tee build/pytest.log
PARDICT_REQUIRE_JIT=1 PARDICT_JIT_INLINE=1 .venv/bin/python -m pytest tests/python/test_jit.py \
  tests/python/test_njit_api.py -q -p no:cacheprovider 2>&1 | tee build/pytest_inline.log
pytest_line="$(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed)' build/pytest.log | tail -n 1);"
pytest_line+=" lookups inline: $(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed)' \
  build/pytest_inline.log | tail -n 1)"
end_stage "$pytest_line"

# (f) Install + find_package consumer -------------------------------------------------------------
begin_stage install "install into a temporary prefix and build tests/cmake_consumer"
bash scripts/test_install.sh
end_stage

# (g) Other platforms and standard libraries -------------------------------------------------------
declare -A cross_what=(
  [mingw]="Windows x86-64 build (mingw-w64) of the C ABI and both test executables, run under wine"
  [aarch64]="Linux aarch64 build of the C ABI and both test executables, run under qemu-user"
  [libcxx]="clang++ -stdlib=libc++ build of the C ABI and both test executables"
)
for target in mingw aarch64 libcxx; do
  if ! why=$(bash scripts/test_cross.sh "$target" --check); then
    summary+=("$(printf '  %-8s %-6s %4s  %s' "$target" skip - "$why")")
    continue
  fi
  begin_stage "$target" "${cross_what[$target]}"
  mkdir -p build
  bash scripts/test_cross.sh "$target" 2>&1 | tee "build/$target.log"
  end_stage "$(tail -n 1 "build/$target.log")"
done

# (h) Wheel ------------------------------------------------------------------------------------------
begin_stage wheel "sdist + wheel, auditwheel repair, install into a fresh venv, run without a compiler"
mkdir -p build
bash scripts/test_wheel.sh 2>&1 | tee build/wheel.log
end_stage "$(tail -n 1 build/wheel.log)"

# (i) Formatting ---------------------------------------------------------------------------------------
begin_stage format "clang-format and ruff format check; ruff lint; mypy"
bash scripts/format.sh --check
.venv/bin/python -m ruff check --no-cache .
.venv/bin/python -m mypy
end_stage

printf '\n==> all test stages passed\n'
printf '%s\n' "${summary[@]}"
printf '  %-8s %-6s %4ds  %s\n' total "" "$SECONDS" "setup included"
echo
echo "$ctest_line"
# ctest's line changes between versions; the last line is the plain count of ctest's tests.
ctest_total=$(grep -oE 'out of [0-9]+' <<<"$ctest_line" | grep -oE '[0-9]+')
echo "ctest: ${ctest_total} passed, 0 failed"
echo "pytest: ${pytest_line}"
