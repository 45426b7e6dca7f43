// The control channel's 24-byte records: wire form and what decoding refuses.
#include "control/channel.hpp"

#include <cstring>

#include <gtest/gtest.h>

namespace multinode::detail {
namespace {

TEST(ControlRecord, RoundTripsEveryFieldLittleEndian) {
  const Record record{RecordType::peer, 0x01020304u, 0x0a0b0c0du, 0x1122334455667788ull};
  unsigned char wire[record_size];
  encode_record(record, wire);
  const unsigned char expected[record_size] = {3, 0, 0, 0, 0x04, 0x03, 0x02, 0x01, 0x0d, 0x0c, 0x0b, 0x0a,
                                               0, 0, 0, 0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11};
  EXPECT_EQ(std::memcmp(wire, expected, record_size), 0);
  Record decoded;
  ASSERT_TRUE(decode_record(wire, record_size, decoded));
  EXPECT_EQ(decoded.type, RecordType::peer);
  EXPECT_EQ(decoded.peer_id, record.peer_id);
  EXPECT_EQ(decoded.peer_slot, record.peer_slot);
  EXPECT_EQ(decoded.value, record.value);
}

TEST(ControlRecord, RejectsWrongSizesAndUnknownTypes) {
  unsigned char wire[record_size + 1] = {};
  Record decoded;
  wire[0] = 1;
  EXPECT_TRUE(decode_record(wire, record_size, decoded));
  EXPECT_FALSE(decode_record(wire, record_size - 1, decoded));
  EXPECT_FALSE(decode_record(wire, record_size + 1, decoded));
  wire[0] = 0;
  EXPECT_FALSE(decode_record(wire, record_size, decoded));
  wire[0] = 5;  // recycle
  EXPECT_TRUE(decode_record(wire, record_size, decoded));
  EXPECT_EQ(decoded.type, RecordType::recycle);
  wire[0] = 10;  // watchdog, the last type (the mesh of `multinode run` workers: join 8, master 9)
  EXPECT_TRUE(decode_record(wire, record_size, decoded));
  EXPECT_EQ(decoded.type, RecordType::watchdog);
  wire[0] = 11;  // past the last type
  EXPECT_FALSE(decode_record(wire, record_size, decoded));
}

}  // namespace
}  // namespace multinode::detail
