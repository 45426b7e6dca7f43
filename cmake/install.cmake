# `cmake --install`: the public headers, one static library per component, a CMake
# package (find_package(multinode CONFIG) -> multinode::multinode) and multinode.pc
# for pkg-config. Included at the end of the top-level CMakeLists.txt, once every
# multinode_<component> target of MULTINODE_COMPONENTS exists.
# Nothing of the tests, examples, benchmarks or fuzzers is installed.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(MULTINODE_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/multinode)

set(multinode_component_targets "")
foreach(component IN LISTS MULTINODE_COMPONENTS)
  list(APPEND multinode_component_targets multinode_${component})
endforeach()

# What the public headers ask of the code that includes them, so that it travels
# with the targets (and into multinode.pc below):
# - C++20: the headers use std::span (http/request.hpp) and designated initializers are the API's style.
# - BOOST_ASIO_NO_DEPRECATED: the headers include Asio, whose inline members are
#   compiled into the libraries as well as into the user's code, and the define
#   changes some of their signatures without changing their mangled names:
#   basic_socket::close(error_code&) returns void with it and error_code (24 bytes,
#   returned through a hidden pointer) without it. The linker keeps one copy of each
#   such weak symbol, so a user compiled without the define could call, or be
#   called by, the other copy with the wrong calling convention.
# The project's other global define stays private: BOOST_ASIO_DISABLE_BOOST_COROUTINE
# only concerns boost/asio/spawn.hpp,
# which no public header includes.
# MULTINODE_INTERFACE_DEFINITIONS (the top-level CMakeLists.txt) holds them, with the
# io_uring backend's two when MULTINODE_IO_URING is on.
foreach(target IN LISTS multinode_component_targets ITEMS multinode)
  target_compile_features(${target} INTERFACE cxx_std_20)
  target_compile_definitions(${target} INTERFACE ${MULTINODE_INTERFACE_DEFINITIONS})
endforeach()

# Installed as multinode::common, multinode::http... beside multinode::multinode.
foreach(component IN LISTS MULTINODE_COMPONENTS)
  set_target_properties(multinode_${component} PROPERTIES EXPORT_NAME ${component})
endforeach()

install(TARGETS multinode ${multinode_component_targets}
  EXPORT multinode-targets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/multinode
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp")

install(EXPORT multinode-targets
  NAMESPACE multinode::
  DESTINATION ${MULTINODE_INSTALL_CMAKEDIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/multinode-config.cmake.in
  ${PROJECT_BINARY_DIR}/multinode-config.cmake
  INSTALL_DESTINATION ${MULTINODE_INSTALL_CMAKEDIR})
# Before 1.0 a minor version may break the API, so 0.1 accepts 0.1.x only.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(multinode_compatibility SameMinorVersion)
else()
  set(multinode_compatibility SameMajorVersion)
endif()
write_basic_package_version_file(${PROJECT_BINARY_DIR}/multinode-config-version.cmake
  COMPATIBILITY ${multinode_compatibility})
install(FILES
  ${PROJECT_BINARY_DIR}/multinode-config.cmake
  ${PROJECT_BINARY_DIR}/multinode-config-version.cmake
  DESTINATION ${MULTINODE_INSTALL_CMAKEDIR})

# --- multinode.pc -------------------------------------------------------------
# The libraries are static, so `pkg-config --libs` must name what they need
# (Libs, not Libs.private, which only `--static` reads), each component before
# those it links: the order comes from the targets' links, not from the list.
set(MULTINODE_PC_DESCRIPTION "TCP and HTTP servers on several processes, with a supervisor and a mesh between them")
foreach(component IN LISTS MULTINODE_COMPONENTS)
  get_target_property(links multinode_${component} INTERFACE_LINK_LIBRARIES)
  set(multinode_links_${component} "")
  foreach(link IN LISTS links)
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" link "${link}")
    if(TARGET ${link})
      get_target_property(aliased ${link} ALIASED_TARGET)
      if(aliased)
        set(link ${aliased})
      endif()
      list(APPEND multinode_links_${component} ${link})
    endif()
  endforeach()
endforeach()
set(multinode_pc_left ${MULTINODE_COMPONENTS})
set(multinode_pc_order "")
while(multinode_pc_left)
  set(next "")
  foreach(component IN LISTS multinode_pc_left)  # one that no component left links
    set(linked FALSE)
    foreach(other IN LISTS multinode_pc_left)
      if(multinode_${component} IN_LIST multinode_links_${other})
        set(linked TRUE)
      endif()
    endforeach()
    if(NOT linked)
      set(next ${component})
      break()
    endif()
  endforeach()
  if(next STREQUAL "")
    # Components that link each other: named twice, as CMake links such static libraries.
    list(APPEND multinode_pc_order ${multinode_pc_left} ${multinode_pc_left})
    break()
  endif()
  list(APPEND multinode_pc_order ${next})
  list(REMOVE_ITEM multinode_pc_left ${next})
endwhile()
list(TRANSFORM multinode_pc_order PREPEND " -lmultinode_")
string(JOIN "" MULTINODE_PC_LIBS ${multinode_pc_order})

# Boost ships no .pc file, so its libraries are named here as the build links
# them: static Boost.JSON and what its CMake target links (Boost.Container),
# taken from the imported targets rather than guessed.
set(multinode_pc_pending Boost::json)
set(multinode_pc_seen "")
set(multinode_pc_libdirs "")
set(multinode_pc_libs "")
set(multinode_pc_includes "")
while(multinode_pc_pending)
  list(POP_FRONT multinode_pc_pending dep)
  if(dep IN_LIST multinode_pc_seen OR NOT TARGET ${dep})
    continue()
  endif()
  list(APPEND multinode_pc_seen ${dep})
  get_target_property(dep_type ${dep} TYPE)
  if(NOT dep_type STREQUAL "INTERFACE_LIBRARY")
    get_target_property(location ${dep} IMPORTED_LOCATION_RELEASE)
    if(NOT location)
      get_target_property(location ${dep} IMPORTED_LOCATION)
    endif()
    if(location)
      get_filename_component(location_dir ${location} DIRECTORY)
      get_filename_component(location_name ${location} NAME)
      list(APPEND multinode_pc_libdirs ${location_dir})
      list(APPEND multinode_pc_libs ${location_name})
    endif()
  endif()
  get_target_property(dep_includes ${dep} INTERFACE_INCLUDE_DIRECTORIES)
  if(dep_includes)
    list(APPEND multinode_pc_includes ${dep_includes})
  endif()
  get_target_property(dep_links ${dep} INTERFACE_LINK_LIBRARIES)
  if(dep_links)
    list(APPEND multinode_pc_pending ${dep_links})
  endif()
endwhile()
list(REMOVE_DUPLICATES multinode_pc_libdirs)
list(REMOVE_DUPLICATES multinode_pc_includes)
list(TRANSFORM multinode_pc_libdirs PREPEND " -L")
list(TRANSFORM multinode_pc_libs PREPEND " -l:")
list(TRANSFORM multinode_pc_includes PREPEND " -I")
string(JOIN "" MULTINODE_PC_DEPS ${multinode_pc_libdirs} ${multinode_pc_libs})
string(JOIN "" MULTINODE_PC_DEP_CFLAGS ${multinode_pc_includes})
string(APPEND MULTINODE_PC_DEPS " -lhiredis -lz -pthread")  # multinode_bridge: Debian's hiredis; websocket: zlib
if(MULTINODE_IO_URING)
  string(APPEND MULTINODE_PC_DEPS " -luring")
endif()
list(TRANSFORM MULTINODE_INTERFACE_DEFINITIONS PREPEND "-D" OUTPUT_VARIABLE MULTINODE_PC_DEFINES)
list(JOIN MULTINODE_PC_DEFINES " " MULTINODE_PC_DEFINES)

foreach(kind LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${kind}}")
    set(MULTINODE_PC_${kind} "${CMAKE_INSTALL_${kind}}")
  else()
    set(MULTINODE_PC_${kind} "\${prefix}/${CMAKE_INSTALL_${kind}}")
  endif()
endforeach()

# The prefix is known only when installing (`cmake --install --prefix DIR`), so
# the file is written in two steps: everything else now, the prefix at install time.
set(MULTINODE_PC_PREFIX "@MULTINODE_PC_PREFIX@")
configure_file(${CMAKE_CURRENT_LIST_DIR}/multinode.pc.in ${PROJECT_BINARY_DIR}/multinode.pc.in @ONLY)
install(CODE "
  set(MULTINODE_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  configure_file(\"${PROJECT_BINARY_DIR}/multinode.pc.in\" \"${PROJECT_BINARY_DIR}/multinode.pc\" @ONLY)
  file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig\"
    TYPE FILE FILES \"${PROJECT_BINARY_DIR}/multinode.pc\")
")

# The `multinode` command (docs/cli.md).
install(TARGETS multinode_command RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
