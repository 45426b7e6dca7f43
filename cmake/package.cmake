# `cpack -G DEB` in the build directory (or `cmake --build --preset release --target
# package`): multinode_<version>_amd64.deb from the CMake install (cmake/install.cmake):
# the `multinode` command, the headers, the static libraries, the CMake package and
# multinode.pc, under /usr. Included after cmake/install.cmake. Tested by
# tests/package/run.sh (the package extracted and its command run).
#
# One package for both uses, with the dependencies split by what needs them:
# - Depends: what the command needs to run, i.e. the shared libraries it links,
#   computed from the binary by dpkg-shlibdeps (Debian's package names and
#   versions: libc6 and libhiredis0.14 with the default build, which links
#   libstdc++ statically; libstdc++6 and libgcc-s1 too with
#   -DMULTINODE_STATIC_LIBSTDCXX=OFF).
# - Recommends: what building against the libraries needs, the -dev packages of
#   what the CMake package's find_dependency() and multinode.pc name: the Boost
#   headers and static Boost.JSON of the version the libraries were compiled with
#   (its ABI is not stable across versions) and hiredis's link library. apt
#   installs Recommends by default, so `apt install ./multinode_*.deb` gives a
#   working C++ setup; `--no-install-recommends` gives the command alone (for
#   Python, Node.js or other programs under `multinode run`), without a hundred
#   megabytes of Boost headers it does not use.
# - Suggests: the build tools that read the CMake package and multinode.pc.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME multinode)
set(CPACK_PACKAGE_VENDOR "multinode")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "run any program as N supervised workers; C++20 multi-process server library")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
  "multinode runs a program as N supervised worker processes behind one\n\
listening socket that the supervisor owns (multinode run -- PROGRAM),\n\
speaking systemd's protocols to it (LISTEN_FDS, NOTIFY_SOCKET, WATCHDOG=1):\n\
rolling restarts, replacement with backoff, heartbeats, recycling, a control\n\
socket and Prometheus metrics.\n\
.\n\
It also contains the C++20 library (headers, static libraries, a CMake package\n\
and a pkg-config file) for TCP, HTTP and WebSocket servers on several processes\n\
with a mesh between them.")
# Who answers for the package (lintian wants a real mail host): set it when
# publishing, e.g. -DMULTINODE_DEB_MAINTAINER="Name <name@example.org>".
set(MULTINODE_DEB_MAINTAINER "multinode maintainers <multinode@localhost>" CACHE STRING
  "Maintainer field of the Debian package (cpack -G DEB)")
set(CPACK_PACKAGE_CONTACT "${MULTINODE_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${MULTINODE_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # multinode_<version>_<arch>.deb
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# (CPack installs with CMAKE_INSTALL_PREFIX=/usr into a staging directory: what is
# written at install time, multinode.pc's prefix, says /usr; the test checks it.)
set(CPACK_STRIP_FILES ON)

find_program(MULTINODE_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(MULTINODE_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
else()
  # Without dpkg-dev: the default build's shared libraries, by hand (ldd build/release/bin/multinode).
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "libc6 (>= 2.34), libhiredis0.14 (>= 0.14.0)")
endif()
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS
  "libboost${Boost_VERSION_MAJOR}.${Boost_VERSION_MINOR}-dev, libboost-json${Boost_VERSION_MAJOR}.${Boost_VERSION_MINOR}-dev, libhiredis-dev")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "cmake, pkgconf, g++ (>= 4:12)")

include(CPack)
