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
  wire[0] = 10;  // watchdog (the mesh of `multinode run` workers: join 8, master 9, watchdog 10)
  EXPECT_TRUE(decode_record(wire, record_size, decoded));
  EXPECT_EQ(decoded.type, RecordType::watchdog);
}

TEST(ControlRecord, BridgeStatsCarryEveryFigureOfAWorker) {
  BridgeCounters sent;
  sent.state = BridgeLinkState::up;
  sent.published = 1;
  sent.received = 2;
  sent.dropped = 3;
  sent.oversized = 4;
  sent.foreign = 5;
  sent.malformed = 6;
  sent.bad_replies = 7;
  sent.reconnects = 8;
  sent.queued_bytes = 0xffffffffffffffffull;
  const auto records = bridge_stats_records(sent, 42);
  ASSERT_EQ(records.size(), bridge_stats_fields);
  BridgeCounters got;
  for (const Record& record : records) {
    unsigned char wire[record_size];
    encode_record(record, wire);
    EXPECT_EQ(wire[0], 11);  // bridge_stats
    Record decoded;
    ASSERT_TRUE(decode_record(wire, record_size, decoded));
    EXPECT_EQ(decoded.type, RecordType::bridge_stats);
    EXPECT_EQ(decoded.peer_id, 42u);
    apply_bridge_stats(decoded, got);
  }
  EXPECT_EQ(got.state, BridgeLinkState::up);
  EXPECT_EQ(got.published, 1u);
  EXPECT_EQ(got.received, 2u);
  EXPECT_EQ(got.dropped, 3u);
  EXPECT_EQ(got.oversized, 4u);
  EXPECT_EQ(got.foreign, 5u);
  EXPECT_EQ(got.malformed, 6u);
  EXPECT_EQ(got.bad_replies, 7u);
  EXPECT_EQ(got.rejected, 4u + 5u + 6u + 7u);
  EXPECT_EQ(got.reconnects, 8u);
  EXPECT_EQ(got.queued_bytes, sent.queued_bytes);
}

TEST(ControlRecord, RejectsBridgeStatsOfAnUnknownFieldOrLinkState) {
  unsigned char wire[record_size];
  Record decoded;
  encode_record({RecordType::bridge_stats, 1, bridge_stats_fields - 1, 5}, wire);
  EXPECT_TRUE(decode_record(wire, record_size, decoded));
  encode_record({RecordType::bridge_stats, 1, bridge_stats_fields, 5}, wire);
  EXPECT_FALSE(decode_record(wire, record_size, decoded));
  encode_record({RecordType::bridge_stats, 1, 0, 2}, wire);  // state up
  EXPECT_TRUE(decode_record(wire, record_size, decoded));
  encode_record({RecordType::bridge_stats, 1, 0, 3}, wire);  // no such state
  EXPECT_FALSE(decode_record(wire, record_size, decoded));
  encode_record({RecordType::stats, 1, 0, 0}, wire);
  wire[0] = 14;  // past the last type (promote, 13)
  EXPECT_FALSE(decode_record(wire, record_size, decoded));
  // The standbys' records of `multinode run --standby` (docs/protocol.md).
  encode_record({RecordType::standby, 7, 0, 4242}, wire);
  ASSERT_TRUE(decode_record(wire, record_size, decoded));
  EXPECT_EQ(decoded.type, RecordType::standby);
  encode_record({RecordType::promote, 7, 2, 1}, wire);
  ASSERT_TRUE(decode_record(wire, record_size, decoded));
  EXPECT_EQ(decoded.type, RecordType::promote);
  EXPECT_EQ(decoded.peer_slot, 2u);
}

}  // namespace
}  // namespace multinode::detail
