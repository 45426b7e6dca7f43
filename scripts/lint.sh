#!/usr/bin/env bash
# clang-tidy's bugprone checks (.clang-tidy) over the library, examples and test programs.
# Slow (each file pulls in Asio and Beast): run it before a release, not on every build.
#   scripts/lint.sh [files...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
if [ "$#" -eq 0 ]; then
  mapfile -t files < <(ls src/*/*.cpp examples/*.cpp tests/programs/*.cpp)
  set -- "${files[@]}"
fi
# clang-tidy exits non-zero on every finding, so its findings are read from its
# output (the project's files only), not from its exit status.
findings=$(printf '%s\n' "$@" | xargs -P "$(nproc)" -n 4 clang-tidy -p build/release --quiet 2>/dev/null \
  | grep -E "^$(pwd)/(src|include|examples|tests)/.*: (warning|error):" | sort -u || true)
if [ -n "$findings" ]; then
  printf '%s\n' "$findings"
  echo "lint: $(printf '%s\n' "$findings" | wc -l) finding(s)" >&2
  exit 1
fi
echo "lint: clean"
