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
python_packages=(numpy matplotlib)

missing=()
for pkg in "${apt_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]})); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
  echo "setup: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: system packages present"
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import numpy, matplotlib" 2>/dev/null; then
  echo "setup: pip install ${python_packages[*]} into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check "${python_packages[@]}"
else
  echo "setup: .venv ready"
fi
