#!/usr/bin/env bash
# Applies .clang-format to every C++ source and header git tracks (outside build/
# and fuzz/corpus/), with the clang-format of scripts/bootstrap.sh (Debian 12: 14).
#
#   scripts/format.sh          reformats those files in place
#   scripts/format.sh --check  changes nothing; lists the files that differ and fails
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/format.sh [--check]" >&2; }
check=0
case "$#:${1:-}" in
  0:) ;;
  1:--check) check=1 ;;
  1:-h | 1:--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) usage; exit 2 ;;
esac
command -v clang-format >/dev/null 2>&1 ||
  { echo "format.sh: clang-format is not installed (scripts/bootstrap.sh test installs it)" >&2; exit 1; }

files=()
while IFS= read -r -d '' file; do
  [ -f "$file" ] && files+=("$file")  # tracked but deleted in the work tree: nothing to format
done < <(git ls-files -z -- '*.cpp' '*.hpp' ':!:build/**' ':!:fuzz/corpus/**')
[ "${#files[@]}" -gt 0 ] || exit 0

if [ "$check" = 0 ]; then
  printf '%s\0' "${files[@]}" | xargs -0 -P "$(nproc)" -n 16 clang-format -i
  exit 0
fi

# shellcheck disable=SC2016  # $1 is the inner shell's
differ=$(printf '%s\0' "${files[@]}" |
  xargs -0 -P "$(nproc)" -n 1 sh -c 'clang-format "$1" | cmp -s - "$1" || printf "%s\n" "$1"' sh | sort)
if [ -n "$differ" ]; then
  echo "format.sh: $(wc -l <<<"$differ") file(s) differ from .clang-format (scripts/format.sh fixes them):" >&2
  # shellcheck disable=SC2001  # every line of a list, not one string
  sed 's/^/  /' <<<"$differ" >&2
  exit 1
fi
echo "format.sh: ${#files[@]} files match .clang-format"
