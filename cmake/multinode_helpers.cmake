# The build rules shared by the library, the tests and the fuzz targets, defined once.

# multinode_component(<name> [PUBLIC <component>...] [PRIVATE <component>...])
# One static library multinode_<name> from src/<name>/*.cpp. It may use the
# components it links and nothing else: a call into any other folder has no
# library to resolve it and fails to link (multinode_layer_check below proves it
# for every object of the library). PUBLIC: its headers include theirs.
function(multinode_component name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "PUBLIC;PRIVATE")
  file(GLOB sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/${name}/*.cpp)
  add_library(multinode_${name} STATIC ${sources})
  target_include_directories(multinode_${name}
    PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(multinode_${name} PUBLIC Boost::headers Threads::Threads)
  foreach(component ${arg_PUBLIC})
    target_link_libraries(multinode_${name} PUBLIC multinode_${component})
  endforeach()
  foreach(component ${arg_PRIVATE})
    target_link_libraries(multinode_${name} PRIVATE multinode_${component})
  endforeach()
endfunction()

# multinode_layer_check(<name>): an executable that links every object of
# multinode_<name> (whole archive) with only what the component links, so that a
# call from that folder into one it may not use is an undefined reference here,
# even when no test happens to reach the calling code.
function(multinode_layer_check name)
  set(main ${PROJECT_BINARY_DIR}/layer_check/main.cpp)
  if(NOT EXISTS ${main})
    file(CONFIGURE OUTPUT ${main} CONTENT "// Links a component whole: see multinode_layer_check.\nint main() { return 0; }\n")
  endif()
  add_executable(multinode_${name}_layer_check ${main})
  target_link_libraries(multinode_${name}_layer_check PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,multinode_${name}>")
endfunction()

# llhttp, Node's HTTP parser, from Debian's node-llhttp: the reference for the
# differential tests and the HTTP fuzz target only.
function(multinode_llhttp_reference)
  if(TARGET llhttp_reference)
    return()
  endif()
  set(dir /usr/share/llhttp)
  add_library(llhttp_reference STATIC ${dir}/api.c ${dir}/http.c ${dir}/llhttp.c)
  target_include_directories(llhttp_reference SYSTEM PUBLIC /usr/share/include/llhttp)
  target_compile_options(llhttp_reference PRIVATE -w)
endfunction()

# multinode_link_by_name(<target> <name>): a test or fuzz target named
# <component>_... (common_, control_, net_, ipc_, http_, supervisor_, worker_,
# core_) links only multinode_<component>, so each area builds and is tested with
# what it may use; the http_ ones also get the llhttp reference. Anything else
# links multinode::multinode.
function(multinode_link_by_name target name)
  # (cli_: the `multinode` command's component, outside multinode::multinode.)
  foreach(component ${MULTINODE_COMPONENTS} cli)
    if(name MATCHES "^${component}_")
      target_link_libraries(${target} PRIVATE multinode_${component})
      if(component STREQUAL "http")
        multinode_llhttp_reference()
        target_link_libraries(${target} PRIVATE llhttp_reference)
      endif()
      return()
    endif()
  endforeach()
  target_link_libraries(${target} PRIVATE multinode::multinode)
endfunction()
