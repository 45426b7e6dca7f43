#!/usr/bin/env bash
# The Debian package: `cpack -G DEB` of a build into a temporary directory, its
# control fields and contents checked, then the package extracted (dpkg-deb -x,
# no install) and its own `multinode` run: --version, and `multinode run` of
# examples/run/python_http.py with 2 workers answering GET / until `multinode
# stop` ends it with status 0; then tests/install/consumer is built against the
# extracted CMake package and run (with CXX_FOR_PACKAGE_TEST set, as ctest does).
# lintian, when installed, must report no error but the known ones listed below. Everything it starts is stopped and the directory
# removed at the end, also on failure.
#
#   tests/package/run.sh BUILD_DIR VERSION
# CPACK and CMAKE name the cpack and cmake to use (default: on PATH);
# CXX_FOR_PACKAGE_TEST and CXX_FLAGS_FOR_PACKAGE_TEST the consumer's compiler and
# flags (no consumer build without the first). Exit status 77 (skipped) without dpkg-deb.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR VERSION" >&2; exit 2; }
build=$(cd "$1" && pwd) version=$2
cpack=${CPACK:-cpack}
python=/usr/bin/python3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_root=$(cd "$here/../.." && pwd)

fail() {
  echo "package test: $*" >&2
  exit 1
}
for tool in dpkg-deb dpkg "$python"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "package test: $tool is not installed: skipped"; exit 77; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/multinode-package.XXXXXX")
supervisor=""
cleanup() {
  if [ -n "$supervisor" ] && kill -0 "$supervisor" 2>/dev/null; then
    kill -KILL -- "-$supervisor" 2>/dev/null || true
    wait "$supervisor" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
# run LOG CMD...: CMD with its output in LOG, shown if it fails.
run() {
  local log=$1
  shift
  echo "+ $*"
  "$@" >"$log" 2>&1 || { cat "$log" >&2; fail "failed: $*"; }
}

# --- build the package ---------------------------------------------------------
run "$work/cpack.log" "$cpack" -G DEB -B "$work/cpack" --config "$build/CPackConfig.cmake"
arch=$(dpkg --print-architecture)
deb="$work/cpack/multinode_${version}_${arch}.deb"
[ -f "$deb" ] || fail "cpack made no $deb; it made: $(cd "$work/cpack" && ls -- *.deb 2>/dev/null)"

# --- control fields ------------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = multinode ] || fail "Package is '$(field Package)', not multinode"
[ "$(field Version)" = "$version" ] || fail "Version is '$(field Version)', not $version"
[ "$(field Architecture)" = "$arch" ] || fail "Architecture is '$(field Architecture)', not $arch"
for name in Maintainer Description Section Priority; do
  [ -n "$(field "$name")" ] || fail "the control file has no $name"
done
# Names of a comma-separated relation field, one a line, without versions.
names() { field "$1" | tr ',|' '\n' | sed -e 's/(.*)//' -e 's/[[:space:]]//g' -e '/^$/d'; }
depends=$(names Depends)
recommends=$(names Recommends)
# Every shared library the command links comes from a Debian package named in Depends.
# The package that owns PATH: as named, resolved, or on the other side of the
# merged /usr (dpkg knows /lib/x86_64-linux-gnu/libc.so.6, not /usr/lib/...).
owner_of() {
  local path candidate found
  path=$(readlink -f "$1")
  for candidate in "$1" "$path" "${path#/usr}" "/usr$path"; do
    if found=$(dpkg -S "$candidate" 2>/dev/null); then
      echo "${found%%:*}"
      return 0
    fi
  done
  return 1
}
while read -r library; do
  owner=$(owner_of "$library") || fail "no Debian package owns $library, which bin/multinode links"
  grep -qx "$owner" <<<"$depends" ||
    fail "bin/multinode links $library of $owner, which Depends does not name: $(field Depends)"
done < <(ldd "$build/bin/multinode" | awk '$3 ~ /^\// { print $3 }')
# What building against the library needs, from the build's own find_package and
# pkg-config results, comes from packages named in Recommends (not Depends: the
# command alone needs none of them).
for key in Boost_DIR boost_json_DIR pkgcfg_lib_HIREDIS_hiredis; do
  path=$(sed -n "s/^$key:[A-Z]*=//p" "$build/CMakeCache.txt")
  [ -n "$path" ] || fail "$build/CMakeCache.txt has no $key"
  owner=$(owner_of "$path") || fail "no Debian package owns $path ($key)"
  grep -qx "$owner" <<<"$recommends" ||
    fail "$key is $path of $owner, which Recommends does not name: $(field Recommends)"
  if grep -qx "$owner" <<<"$depends"; then fail "$owner is in Depends: the command does not need it"; fi
done

# --- contents ------------------------------------------------------------------
contents=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./||')
for wanted in usr/bin/multinode usr/include/multinode/multinode.hpp 'usr/lib/.*libmultinode_core\.a' \
  'usr/lib/.*cmake/multinode/multinode-config\.cmake' 'usr/lib/.*pkgconfig/multinode\.pc'; do
  grep -qx "$wanted" <<<"$contents" || fail "the package has no $wanted; it has:
$contents"
done
if unexpected=$(grep -Ev '^usr/(bin|include|lib)/' <<<"$contents" | grep -v '^usr/$'); then
  fail "files outside usr/bin, usr/include and usr/lib:
$unexpected"
fi

root="$work/root"
run "$work/extract.log" dpkg-deb -x "$deb" "$root"
if leaks=$(grep -rlI -e "$source_root" -e "$build" -e "$work/cpack" "$root"); then
  fail "packaged files that name the source, build or staging directory:
$leaks"
fi
grep -qx 'prefix=/usr' "$root"/usr/lib/*pkgconfig/multinode.pc 2>/dev/null ||
  grep -qx 'prefix=/usr' "$root"/usr/lib/*/pkgconfig/multinode.pc ||
  fail "multinode.pc does not say prefix=/usr"

# --- the extracted command -------------------------------------------------------
multinode="$root/usr/bin/multinode"
answer=$("$multinode" --version) || fail "$multinode --version failed"
[ "$answer" = "multinode $version" ] || fail "$multinode --version says '$answer', not 'multinode $version'"

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
control="$work/control.sock"
echo "+ $multinode run -n 2 -p $port --ready started -- $python examples/run/python_http.py"
setsid "$multinode" run -n 2 -p "$port" --host 127.0.0.1 --ready started --control "$control" \
  -- "$python" "$source_root/examples/run/python_http.py" >"$work/run.out" 2>"$work/run.err" </dev/null &
supervisor=$!
# GET / until both workers have answered (at most 20 s).
if ! pids=$("$python" - "$port" <<'PY'
import re, sys, time, urllib.request
port = int(sys.argv[1])
seen, last = set(), "no answer"
deadline = time.monotonic() + 20
while len(seen) < 2 and time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            body = response.read().decode()
        match = re.fullmatch(r"Hello from node (\d+) \(pid (\d+)\)\n", body)
        if not match:
            sys.exit(f"unexpected answer: {body!r}")
        seen.add(int(match.group(2)))
    except OSError as error:
        last = str(error)
        time.sleep(0.05)
if len(seen) < 2:
    sys.exit(f"{len(seen)} worker(s) answered within 20 s (last error: {last})")
print(" ".join(map(str, sorted(seen))))
PY
); then
  cat "$work/run.out" "$work/run.err" >&2
  fail "the workers of the extracted multinode did not both answer"
fi
run "$work/status.log" "$multinode" status --control "$control"
for pid in $pids; do
  grep -Eq "^[0-9]+ +[0-9]+ +$pid +ready " "$work/status.log" ||
    fail "multinode status does not show pid $pid ready:
$(cat "$work/status.log")"
done
run "$work/stop.log" "$multinode" stop --control "$control"
status=0
for _ in $(seq 200); do  # at most 20 s
  kill -0 "$supervisor" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$supervisor" 2>/dev/null && fail "multinode run did not exit within 20 s of multinode stop"
wait "$supervisor" || status=$?
supervisor=""
[ "$status" = 0 ] || { cat "$work/run.err" >&2; fail "multinode run exited with status $status after multinode stop"; }
for pid in $pids; do
  grep -q "pid $pid) exited with status 0" "$work/run.err" || fail "worker $pid did not exit with status 0:
$(cat "$work/run.err")"
done

# --- the library from the extracted package ----------------------------------------
# tests/install/consumer built through the packaged CMake package (relocatable:
# found under the extraction, not under /usr) and run: the headers, libraries and
# config of the .deb work, with the dependencies of Recommends.
if [ -n "${CXX_FOR_PACKAGE_TEST:-}" ]; then
  cmake=${CMAKE:-cmake}
  run "$work/consumer-configure.log" "$cmake" -S "$source_root/tests/install/consumer" -B "$work/consumer" -G Ninja \
    -DCMAKE_PREFIX_PATH="$root/usr" -DCMAKE_CXX_COMPILER="$CXX_FOR_PACKAGE_TEST" \
    -DCMAKE_CXX_FLAGS="${CXX_FLAGS_FOR_PACKAGE_TEST:-}" -DCMAKE_EXE_LINKER_FLAGS="${CXX_FLAGS_FOR_PACKAGE_TEST:-}"
  found=$(sed -n 's/^multinode_DIR:PATH=//p' "$work/consumer/CMakeCache.txt")
  case "$found" in "$root"/usr/lib/*) ;; *) fail "find_package found '$found', not the package extracted in $root" ;; esac
  run "$work/consumer-build.log" "$cmake" --build "$work/consumer"
  run "$work/consumer-run.log" timeout 60 "$work/consumer/consumer"
fi

# --- lintian (when installed) ----------------------------------------------------
# Known errors, each with its reason (README.md, "The Debian package"):
#   bogus-mail-host       the default maintainer; set -DMULTINODE_DEB_MAINTAINER to publish
#   no-copyright-file     the project has no licence yet to state in one
#   no-changelog          no Debian changelog is kept
#   pkg-config-multi-arch-wrong-dir  the libraries are not multiarch: the default build
#                         installs to lib/ (configure with -DCMAKE_INSTALL_PREFIX=/usr for
#                         lib/<triplet>/) and multinode.pc names Boost's multiarch directory
if command -v lintian >/dev/null 2>&1; then
  lintian "$deb" >"$work/lintian.log" 2>&1 || true
  cat "$work/lintian.log"
  if errors=$(grep '^E: ' "$work/lintian.log" |
    grep -Ev '^E: multinode: (bogus-mail-host|no-copyright-file|no-changelog|pkg-config-multi-arch-wrong-dir)( |$)'); then
    fail "lintian errors:
$errors"
  fi
else
  echo "package test: lintian is not installed: its checks are skipped"
fi
echo "package test: $deb extracted; its multinode ran 2 workers and stopped with status 0"
