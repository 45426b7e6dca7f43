// The control channel's 24-byte records: wire form and what decoding refuses.
#include "control/channel.hpp"

#include <cstring>
#include <utility>

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
  // The mesh of `multinode run` workers: join, master, watchdog.
  for (const auto& [type, expected] : {std::pair{8, RecordType::join}, std::pair{9, RecordType::master},
                                       std::pair{10, RecordType::watchdog}}) {
    wire[0] = static_cast<unsigned char>(type);
    EXPECT_TRUE(decode_record(wire, record_size, decoded)) << type;
    EXPECT_EQ(decoded.type, expected);
  }
  wire[0] = 11;  // past the last type (watchdog, 10)
  EXPECT_FALSE(decode_record(wire, record_size, decoded));
  wire[0] = 0;
  wire[1] = 1;  // 256: the type's high byte counts
  EXPECT_FALSE(decode_record(wire, record_size, decoded));
}

TEST(ControlRecord, AJoinAsTheMeshPageShowsIt) {
  // docs/protocol.md, "The mesh for workers of `multinode run`": worker 7, slot 2, pid 4242.
  unsigned char wire[record_size];
  encode_record({RecordType::join, 7, 2, 4242}, wire);
  const unsigned char expected[record_size] = {8, 0, 0, 0, 7,    0,    0, 0, 2, 0, 0, 0,
                                               0, 0, 0, 0, 0x92, 0x10, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(std::memcmp(wire, expected, record_size), 0);
}

}  // namespace
}  // namespace multinode::detail
