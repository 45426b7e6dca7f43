// What node `from` sends node `to` over the mesh in examples/mesh.cpp (and in the
// tests' run_node, whose peers in other languages compute the same): a text, 300
// bytes of binary and a JSON object. The receiver computes the same and compares.
#pragma once

#include <multinode/node_id.hpp>

#include <boost/json.hpp>

#include <cstddef>
#include <string>

namespace examples {

inline std::string text_for(multinode::NodeId from, multinode::NodeId to) {
  return "hello from node " + std::to_string(from) + " to node " + std::to_string(to) + " \xe2\x9c\x93";
}

inline std::string binary_for(multinode::NodeId from, multinode::NodeId to) {
  std::string bytes(300, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<char>((i * 7 + std::size_t{from} * 31 + to) & 0xFF);
  return bytes;
}

inline boost::json::value json_for(multinode::NodeId from, multinode::NodeId to) {
  return {{"from", from}, {"to", to}, {"note", "ünïcödé"}};
}

}  // namespace examples
