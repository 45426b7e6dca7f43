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
status=0
printf '%s\n' "$@" | xargs -P "$(nproc)" -n 4 clang-tidy -p build/release --quiet 2>/dev/null \
  | grep -E "^$(pwd)/(src|include|examples|tests)/.*: (warning|error):" && status=1
if [ "$status" -eq 0 ]; then echo "lint: clean"; fi
exit "$status"
