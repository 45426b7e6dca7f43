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
  wire[0] = 8;  // one past the last type (stats)
  EXPECT_FALSE(decode_record(wire, record_size, decoded));
  wire[0] = 0;
  wire[1] = 1;  // type 256
  EXPECT_FALSE(decode_record(wire, record_size, decoded));
}

TEST(ControlRecord, StatsRecordsCarryTheSerialAndBothCounters) {
  // docs/protocol.md: stats_request's value is a serial; stats answers with it in
  // peer id, the open connections in peer slot and the requests in value.
  const Record request{RecordType::stats_request, 0, 0, 7};
  const Record answer{RecordType::stats, 7, 12, 0x100000000ull};
  for (const Record& record : {request, answer}) {
    unsigned char wire[record_size];
    encode_record(record, wire);
    Record decoded;
    ASSERT_TRUE(decode_record(wire, record_size, decoded));
    EXPECT_EQ(decoded.type, record.type);
    EXPECT_EQ(decoded.peer_id, record.peer_id);
    EXPECT_EQ(decoded.peer_slot, record.peer_slot);
    EXPECT_EQ(decoded.value, record.value);
  }
}

}  // namespace
}  // namespace multinode::detail
