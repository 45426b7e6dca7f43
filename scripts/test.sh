#!/usr/bin/env bash
# Checks the formatting (.clang-format, scripts/format.sh --check), then builds and
# runs every test: unit and integration tests (CTest), including every fuzz
# target's corpus replayed as a test and the install test, in the release build
# and again under AddressSanitizer + UndefinedBehaviorSanitizer. Installs what is
# missing first.
#
#   scripts/test.sh            everything (release and asan)
#   scripts/test.sh release    only the given presets (release, debug, asan, fuzz);
#                              fuzz builds the libFuzzer targets with clang and runs each over its corpus
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh test
# First, as it takes seconds: a file that differs fails the run before any build.
echo "== format: scripts/format.sh --check (scripts/format.sh fixes)" >&2
scripts/format.sh --check

presets=("$@")
if [ "${#presets[@]}" -eq 0 ]; then presets=(release asan); fi
jobs="$(nproc)"

for preset in "${presets[@]}"; do
  echo "== $preset: configure and build" >&2
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  if [ "$preset" = fuzz ]; then
    echo "== fuzz: every target over its seed corpus" >&2
    for target in build/fuzz/fuzz/*_fuzz; do
      name="$(basename "$target")"
      "$target" -runs=0 "fuzz/corpus/$name" 2>&1 | tail -n 1
    done
  else
    echo "== $preset: tests" >&2
    ctest --preset "$preset" -j "$jobs"
  fi
done
