#!/usr/bin/env bash
# Formats the sources: C and C++ with clang-format (.clang-format at the repository root), Python
# with ruff format (pyproject.toml).
#   scripts/format.sh           rewrite files in place
#   scripts/format.sh --check   list files that differ and exit 1 if there are any
# Files: tracked plus untracked-but-not-ignored *.hpp *.cpp *.h *.cc, and every Python file ruff
# does not exclude.
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

clang_format=""
for candidate in clang-format-14 clang-format; do
  if command -v "$candidate" >/dev/null 2>&1; then clang_format=$candidate; break; fi
done
if [[ -z $clang_format ]]; then
  echo "format.sh: clang-format not found (run scripts/setup.sh)" >&2
  exit 1
fi

files=()
while IFS= read -r f; do
  [[ -f $f ]] && files+=("$f")  # skip files deleted from the work tree but still in the index
done < <(git ls-files --cached --others --exclude-standard -- '*.hpp' '*.cpp' '*.h' '*.cc' | sort -u)
if ((${#files[@]} == 0)); then
  echo "format.sh: no C/C++ files"
  exit 0
fi

ruff=(.venv/bin/python -m ruff format --no-cache)
if ((check == 0)); then
  "$clang_format" -i --style=file "${files[@]}"
  echo "format.sh: formatted ${#files[@]} files with $clang_format"
  "${ruff[@]}" .
  exit 0
fi

if ! "${ruff[@]}" --check . >/dev/null; then
  "${ruff[@]}" --check . || true
  echo "format.sh: Python files need formatting (run: bash scripts/format.sh)"
  exit 1
fi

bad=()
for f in "${files[@]}"; do
  if ! "$clang_format" --style=file --dry-run --Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done
if ((${#bad[@]})); then
  echo "format.sh: ${#bad[@]} of ${#files[@]} files need formatting (run: bash scripts/format.sh):"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "format.sh: ${#files[@]} C/C++ files formatted correctly ($clang_format); Python files too (ruff)"
