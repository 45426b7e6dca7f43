#!/usr/bin/env bash
# Installs a build of multinode into a temporary prefix and builds consumer/, a
# project outside the tree, against that install twice: through the CMake package
# (find_package + multinode::multinode) and through pkg-config. Each build must
# link and its program serve one request. The prefix is removed at the end.
#
#   tests/install/run.sh BUILD_DIR LIBDIR CXX [FLAGS]
#     LIBDIR  the build's CMAKE_INSTALL_LIBDIR (lib, lib/x86_64-linux-gnu, ...)
#     FLAGS   compiler and linker flags the consumer needs too (the sanitizers)
# CMAKE names the cmake to use (default: cmake on PATH).
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 BUILD_DIR LIBDIR CXX [FLAGS]" >&2; exit 2; }
build=$1 libdir=$2 cxx=$3 flags=${4:-}
cmake=${CMAKE:-cmake}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_root=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/multinode-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

fail() {
  echo "install test: $*" >&2
  exit 1
}
# run LOG CMD...: CMD with its output in LOG, shown if it fails.
run() {
  local log=$1
  shift
  echo "+ $*"
  "$@" >"$log" 2>&1 || { cat "$log" >&2; fail "failed: $*"; }
}
read -r -a flag_list <<<"$flags"

run "$work/install.log" "$cmake" --install "$build" --prefix "$prefix"

# The library and the multinode command, nothing else: no test, example, benchmark or fuzz program.
unexpected=$(find "$prefix" \( -type f -o -type l \) -printf '%P\n' | grep -Ev \
  "^(bin/multinode|include/multinode/([a-z_]+/)?[a-z_]+\.hpp|$libdir/libmultinode_[a-z_]+\.a|$libdir/cmake/multinode/multinode-[a-z-]+\.cmake|$libdir/pkgconfig/multinode\.pc)$" ||
  true)
[ -z "$unexpected" ] || fail "installed files that are not part of the library:
$unexpected"
# The command runs from where it is installed.
"$prefix/bin/multinode" --version | grep -q '^multinode ' || fail "$prefix/bin/multinode --version does not answer"
# The installed text files must not point back into the source or build tree.
if leaks=$(grep -rlI -F "$source_root" "$prefix"); then
  fail "installed files that name $source_root:
$leaks"
fi

# 1. CMake: find_package(multinode CONFIG REQUIRED) through CMAKE_PREFIX_PATH only.
run "$work/configure.log" "$cmake" -S "$here/consumer" -B "$work/cmake" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags"
found=$(sed -n 's/^multinode_DIR:PATH=//p' "$work/cmake/CMakeCache.txt")
[ "$found" = "$prefix/$libdir/cmake/multinode" ] || fail "find_package found '$found', not the install in $prefix"
run "$work/build.log" "$cmake" --build "$work/cmake"
run "$work/consumer.log" timeout 60 "$work/cmake/consumer"

# 2. pkg-config, with -std=c++20 as the README asks of the user.
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
pc_flags=$(pkg-config --cflags --libs multinode) || fail "pkg-config does not find multinode in $PKG_CONFIG_PATH"
read -r -a pc_flag_list <<<"$pc_flags"
run "$work/pkg-config-build.log" "$cxx" -std=c++20 "${flag_list[@]}" "$here/consumer/main.cpp" \
  -o "$work/consumer-pkg-config" "${pc_flag_list[@]}"
run "$work/consumer-pkg-config.log" timeout 60 "$work/consumer-pkg-config"
echo "install test: the install in $prefix works through CMake and pkg-config"
