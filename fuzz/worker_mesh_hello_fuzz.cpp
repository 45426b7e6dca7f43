// libFuzzer target for the hello of the `multinode run` mesh (decode_mesh_hello,
// src/worker/run_mesh.hpp): any bytes either decode to an id and a slot that
// encode back to the same 17 bytes, or are refused; never a crash.
//
//   cmake --preset fuzz && cmake --build --preset fuzz --target worker_mesh_hello_fuzz
//   build/fuzz/fuzz/worker_mesh_hello_fuzz fuzz/corpus/worker_mesh_hello_fuzz
#include "worker/run_mesh.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>

using namespace multinode::detail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto hello = decode_mesh_hello(data, size);
  // The first 17 bytes of a longer input are what a worker reads of a connection.
  if (size > mesh_hello_size) (void)decode_mesh_hello(data, mesh_hello_size);
  if (!hello) return 0;
  if (size != mesh_hello_size) __builtin_trap();
  const auto again = encode_mesh_hello(*hello);
  if (std::memcmp(again.data(), data, mesh_hello_size) != 0) __builtin_trap();
  return 0;
}
