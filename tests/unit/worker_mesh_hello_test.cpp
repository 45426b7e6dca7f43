// The hello of the `multinode run` mesh (docs/protocol.md): its 17 bytes on the
// wire, and what is refused.
#include "worker/run_mesh.hpp"

#include <gtest/gtest.h>

#include <array>

namespace multinode::detail {
namespace {

TEST(MeshHello, TheWireFormIsTheDocumentedOne) {
  const auto wire = encode_mesh_hello(MeshHello{0x01020304u, 0x0a0b0c0du});
  const std::array<unsigned char, 17> expected = {0x04, 0,    0,    0,    0x09, 0,    0,    0,   0x02,
                                                  0x04, 0x03, 0x02, 0x01, 0x0d, 0x0c, 0x0b, 0x0a};
  EXPECT_EQ(wire, expected);
  const auto decoded = decode_mesh_hello(wire.data(), wire.size());
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->id, 0x01020304u);
  EXPECT_EQ(decoded->slot, 0x0a0b0c0du);
}

TEST(MeshHello, RefusesAnythingElse) {
  const auto good = encode_mesh_hello(MeshHello{3, 1});
  EXPECT_FALSE(decode_mesh_hello(nullptr, 0));
  EXPECT_FALSE(decode_mesh_hello(good.data(), good.size() - 1));
  for (const std::size_t at : {0, 1, 3, 4, 5, 8}) {  // frame type, its reserved bytes, length, opcode
    auto bad = good;
    bad[at] ^= 0x10;
    EXPECT_FALSE(decode_mesh_hello(bad.data(), bad.size())) << at;
  }
  auto other = good;
  other[9] = 0xff;  // any id and slot are the peer's to say
  EXPECT_TRUE(decode_mesh_hello(other.data(), other.size()));
}

}  // namespace
}  // namespace multinode::detail
