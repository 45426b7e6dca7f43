// The bridge's I/O-free parts (src/bridge/codec.hpp): the Redis URL, the envelope
// around a framed message, hiredis's reader behind ReplyReader, and the
// classification of replies on a subscribed link.
#include "bridge/codec.hpp"

#include <hiredis/hiredis.h>

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>

#include <string>

using namespace multinode::detail;
using multinode::BridgeRejection;
using multinode::Message;

TEST(BridgeUrl, ParsesHostPortDatabaseAndPassword) {
  std::string error;
  auto url = parse_redis_url("redis://127.0.0.1:6380/2", error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, 6380);
  EXPECT_EQ(url->db, 2u);
  EXPECT_EQ(url->password, "");
  url = parse_redis_url("redis://:s3cret@redis.local", error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->host, "redis.local");
  EXPECT_EQ(url->port, 6379);
  EXPECT_EQ(url->password, "s3cret");
  url = parse_redis_url("redis://user:pw@[::1]:7000/0", error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, 7000);
  EXPECT_EQ(url->password, "pw");
}

TEST(BridgeUrl, RefusesWhatIsNotARedisUrlAndSaysWhy) {
  for (const char* bad : {"http://h:1", "redis://", "redis://h:0", "redis://h:65536", "redis://h:x",
                          "redis://h:", "redis://h/db", "redis://[::1", "redis://[::1]x"}) {
    std::string error;
    EXPECT_FALSE(parse_redis_url(bad, error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(BridgeEnvelope, CarriesEveryKindWithItsOrigin) {
  for (const Message& message : {Message::text("héllo"), Message::binary(std::string("\0\xff", 2)),
                                 Message(boost::json::object{{"a", 1}})}) {
    const std::string payload = encode_envelope(0x1122334455667788u, 7, message);
    EXPECT_EQ(payload.substr(0, 4), "MNB1");
    const Envelope envelope = decode_envelope(payload, 1 << 20, 64);
    ASSERT_EQ(envelope.rejection, BridgeRejection::none);
    EXPECT_EQ(envelope.host, 0x1122334455667788u);
    EXPECT_EQ(envelope.node, 7u);
    EXPECT_EQ(envelope.message->kind(), message.kind());
    EXPECT_EQ(envelope.message->bytes(), message.bytes());
    EXPECT_EQ(boost::json::serialize(envelope.message->json_value()),
              boost::json::serialize(message.json_value()));
  }
}

TEST(BridgeEnvelope, RejectsEachKindOfBadPayload) {
  const std::string good = encode_envelope(1, 0, Message::text("hello"));
  EXPECT_EQ(decode_envelope(good, good.size() - 1, 64).rejection, BridgeRejection::oversized);
  EXPECT_EQ(decode_envelope("garbage", 1024, 64).rejection, BridgeRejection::foreign);
  EXPECT_EQ(decode_envelope("", 1024, 64).rejection, BridgeRejection::foreign);
  EXPECT_EQ(decode_envelope(good.substr(0, good.size() - 1), 1024, 64).rejection, BridgeRejection::malformed);
  EXPECT_EQ(decode_envelope(good + "x", 1024, 64).rejection, BridgeRejection::malformed);
  std::string bad_utf8 = good;
  bad_utf8[bad_utf8.size() - 1] = '\xc0';
  EXPECT_EQ(decode_envelope(bad_utf8, 1024, 64).rejection, BridgeRejection::malformed);
  std::string control = good;
  control[16] = 4;
  EXPECT_EQ(decode_envelope(control, 1024, 64).rejection, BridgeRejection::malformed);
  const std::string deep = encode_envelope(
      1, 0, Message(boost::json::value(boost::json::array{boost::json::array{boost::json::array{}}})));
  EXPECT_EQ(decode_envelope(deep, 1024, 2).rejection, BridgeRejection::malformed);
  EXPECT_EQ(decode_envelope(deep, 1024, 64).rejection, BridgeRejection::none);
  EXPECT_THROW(encode_envelope(1, 0, Message::text(std::string("\xc0\xaf"))), std::system_error);
}

TEST(BridgeEnvelope, APayloadHoldsEnvelopesBackToBack) {
  const std::string first = encode_envelope(1, 2, Message::text("one"));
  const std::string second = encode_envelope(1, 2, Message::binary("two!"));
  const std::string batch = first + second;
  EXPECT_EQ(envelope_size(batch), first.size());
  EXPECT_EQ(envelope_size(std::string_view(batch).substr(first.size())), second.size());
  EXPECT_EQ(envelope_size("garbage"), 0u);
  EXPECT_EQ(envelope_size(first.substr(0, 20)), 0u);                          // not even a header
  EXPECT_GT(envelope_size(first.substr(0, 25)), first.substr(0, 25).size());  // cut short
}

TEST(BridgeReplies, ReadsSplitRepliesAndClassifiesPushMessages) {
  const std::string payload = encode_envelope(3, 1, Message::text("hi"));
  const std::string wire = format_command({"message", "multinode:t", payload});  // an array of bulk strings
  ReplyReader reader(1024);
  for (const char c : wire) {
    EXPECT_EQ(reader.next(), nullptr);
    ASSERT_TRUE(reader.feed(&c, 1));
  }
  auto reply = reader.next();
  ASSERT_NE(reply, nullptr);
  const PushMessage push = classify_push(*reply);
  EXPECT_EQ(push.kind, PushMessage::Kind::message);
  EXPECT_EQ(push.channel, "multinode:t");
  EXPECT_EQ(push.payload, payload);
  ASSERT_TRUE(reader.feed(":5\r\n", 4));
  reply = reader.next();
  ASSERT_NE(reply, nullptr);
  EXPECT_EQ(reply->type, REDIS_REPLY_INTEGER);
  EXPECT_EQ(classify_push(*reply).kind, PushMessage::Kind::invalid);
}

TEST(BridgeReplies, AReplyThatDoesNotParseOrIsTooLargeFailsTheReader) {
  ReplyReader bad(1024);
  ASSERT_TRUE(bad.feed("?x\r\n", 4) || bad.failed());
  EXPECT_EQ(bad.next(), nullptr);
  EXPECT_TRUE(bad.failed());
  EXPECT_FALSE(bad.error().empty());
  ReplyReader large(64);
  const std::string head = "$100000\r\n" + std::string(100, 'x');
  ASSERT_TRUE(large.feed(head.data(), head.size()));
  EXPECT_EQ(large.next(), nullptr);
  EXPECT_TRUE(large.failed());
}
