// The frame decoder on its own: every split point of a byte sequence of many
// frames, every kind of bad frame, the UTF-8 validator against a reference, and
// the JSON arena when a handler keeps a copy.
#include "ipc/frame_codec.hpp"
#include "ipc/utf8.hpp"

#include <multinode/error.hpp>
#include <multinode/frame.hpp>

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace multinode::detail {
namespace {

using namespace std::string_literals;

std::string frame(FrameType type, std::string_view payload) {
  std::string bytes(frame_header_size, '\0');
  write_frame_header(bytes.data(), type, static_cast<std::uint32_t>(payload.size()));
  bytes.append(payload);
  return bytes;
}

std::string raw_frame(std::uint8_t type, std::uint8_t reserved, std::uint32_t length,
                      std::string_view payload) {
  std::string bytes;
  bytes.push_back(static_cast<char>(type));
  bytes.push_back(static_cast<char>(reserved));
  bytes.push_back(0);
  bytes.push_back(0);
  for (int shift = 0; shift < 32; shift += 8) bytes.push_back(static_cast<char>((length >> shift) & 0xFF));
  bytes.append(payload);
  return bytes;
}

std::string close_frame(std::uint16_t code, std::string_view reason) {
  std::string payload;
  payload.push_back(static_cast<char>(control_close));
  payload.push_back(static_cast<char>(code & 0xFF));
  payload.push_back(static_cast<char>(code >> 8));
  payload.append(reason);
  return frame(FrameType::control, payload);
}

// What a sink saw, as owned copies.
struct Recorder {
  std::vector<Message> messages;
  std::vector<std::pair<std::uint16_t, std::string>> closes;
  bool stop_after_each = false;

  bool on_message(const Message& message) {
    EXPECT_FALSE(message.owns_data()) << "received messages view the read buffer";
    messages.push_back(message);
    EXPECT_TRUE(messages.back().owns_data()) << "copies own their data";
    return !stop_after_each;
  }
  bool on_close_frame(std::uint16_t code, std::string_view reason) {
    closes.emplace_back(code, std::string(reason));
    return true;
  }
};

// Feeds `bytes` to a decoder in the pieces `cuts` makes, as a stream's reads would.
std::error_code feed(FrameDecoder& decoder, ByteQueue& in, Recorder& sink, std::string_view bytes,
                     const std::vector<std::size_t>& cuts) {
  std::size_t at = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(bytes.size());
  for (std::size_t end : ends) {
    in.append(bytes.data() + at, end - at);
    at = end;
    if (std::error_code error = decoder.decode(in, sink)) return error;
    if (in.size() > 0) {
      EXPECT_GT(decoder.bytes_needed(), in.size()) << "an incomplete frame says how large it is";
    }
  }
  return {};
}

struct Expected {
  Message::Kind kind;
  std::string bytes;  // text or binary payload, or serialized JSON
};

void expect_messages(const Recorder& sink, const std::vector<Expected>& expected) {
  ASSERT_EQ(sink.messages.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const Message& got = sink.messages[i];
    ASSERT_EQ(got.kind(), expected[i].kind) << "message " << i;
    if (got.is_json()) {
      EXPECT_EQ(boost::json::serialize(got.json_value()), expected[i].bytes) << "message " << i;
    } else {
      EXPECT_EQ(got.bytes(), expected[i].bytes) << "message " << i;
    }
  }
}

class SplitPoints : public ::testing::Test {
 protected:
  void SetUp() override {
    add(FrameType::text, "hello", Message::Kind::text);
    add(FrameType::binary, "\x00\x01\x02\xff\xfe"s, Message::Kind::binary);
    add(FrameType::json, R"({"a":1,"b":[true,false,null],"c":"\u00e9t\u00e9"})", Message::Kind::json);
    add(FrameType::text, "", Message::Kind::text);
    add(FrameType::binary, "", Message::Kind::binary);
    add(FrameType::text, "na\xc3\xafve \xe2\x82\xac \xf0\x9f\x98\x80", Message::Kind::text);
    // A control frame with an opcode this version does not know is skipped.
    bytes_ += frame(FrameType::control,
                    "\x7f"
                    "future");
    add(FrameType::json, "[1,2.5,\"x\",{\"k\":{}}]", Message::Kind::json);
    add(FrameType::json, "42", Message::Kind::json);
    add(FrameType::binary, std::string(300, 'z'), Message::Kind::binary);
    bytes_ += close_frame(0, "bye");
  }

  void add(FrameType type, std::string payload, Message::Kind kind) {
    bytes_ += frame(type, payload);
    if (kind == Message::Kind::json) payload = boost::json::serialize(boost::json::parse(payload));
    expected_.push_back({kind, payload});
  }

  void check(const std::vector<std::size_t>& cuts) {
    FrameDecoder decoder(FrameOptions{});
    ByteQueue in(64);
    Recorder sink;
    ASSERT_FALSE(feed(decoder, in, sink, bytes_, cuts));
    expect_messages(sink, expected_);
    ASSERT_EQ(sink.closes.size(), 1u);
    EXPECT_EQ(sink.closes[0].first, 0);
    EXPECT_EQ(sink.closes[0].second, "bye");
    EXPECT_TRUE(in.empty());
    EXPECT_EQ(decoder.bytes_needed(), 0u);
  }

  std::string bytes_;
  std::vector<Expected> expected_;
};

TEST_F(SplitPoints, EverySingleSplit) {
  for (std::size_t cut = 0; cut <= bytes_.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    check({cut});
  }
}

TEST_F(SplitPoints, EveryPairOfSplits) {
  for (std::size_t first = 0; first <= bytes_.size(); first += 3) {
    for (std::size_t second = first; second <= bytes_.size(); ++second) {
      SCOPED_TRACE("cuts at " + std::to_string(first) + " and " + std::to_string(second));
      check({first, second});
      if (HasFatalFailure()) return;
    }
  }
}

TEST_F(SplitPoints, OneByteAtATime) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < bytes_.size(); ++i) cuts.push_back(i);
  check(cuts);
}

TEST(FrameDecoder, StopsWhenTheSinkSaysSoAndResumes) {
  FrameDecoder decoder(FrameOptions{});
  ByteQueue in(64);
  std::string bytes =
      frame(FrameType::text, "one") + frame(FrameType::text, "two") + frame(FrameType::text, "three");
  in.append(bytes.data(), bytes.size());
  Recorder sink;
  sink.stop_after_each = true;
  for (int i = 0; i < 3; ++i) ASSERT_FALSE(decoder.decode(in, sink));
  expect_messages(
      sink, {{Message::Kind::text, "one"}, {Message::Kind::text, "two"}, {Message::Kind::text, "three"}});
  EXPECT_TRUE(in.empty());
}

struct BadFrame {
  const char* name;
  std::string bytes;
  errc error;
};

class BadFrames : public ::testing::TestWithParam<BadFrame> {};

TEST_P(BadFrames, NamesTheCauseAfterDeliveringWhatCameBefore) {
  const BadFrame& bad = GetParam();
  FrameOptions options;
  options.max_frame_size = 1024;
  options.max_json_depth = 8;
  std::string good = frame(FrameType::text, "before");
  std::string bytes = good + bad.bytes + frame(FrameType::text, "after");
  // Whole, and cut inside the bad frame (as it would arrive in pieces).
  for (std::size_t cut : {std::size_t(0), good.size() + 3, good.size() + 9, bytes.size()}) {
    SCOPED_TRACE(std::string(bad.name) + ", cut at " + std::to_string(cut));
    FrameDecoder decoder(options);
    ByteQueue in(64);
    Recorder sink;
    std::error_code error = feed(decoder, in, sink, bytes, {std::min(cut, bytes.size())});
    EXPECT_EQ(error, make_error_code(bad.error)) << error.message();
    expect_messages(sink, {{Message::Kind::text, "before"}});
  }
}

std::string nested(int depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

INSTANTIATE_TEST_SUITE_P(
    EveryKind, BadFrames,
    ::testing::Values(
        BadFrame{"reserved byte 1", raw_frame(1, 0x01, 2, "hi"), errc::bad_frame_header},
        BadFrame{"reserved byte 3", "\x01\x00\x00\x80\x02\x00\x00\x00hi"s, errc::bad_frame_header},
        BadFrame{"type 0", raw_frame(0, 0, 2, "hi"), errc::bad_frame_type},
        BadFrame{"type 5", raw_frame(5, 0, 2, "hi"), errc::bad_frame_type},
        BadFrame{"type 255", raw_frame(255, 0, 2, "hi"), errc::bad_frame_type},
        // Refused on its header alone: no payload follows.
        BadFrame{"length above the maximum", raw_frame(2, 0, 1025, ""), errc::frame_too_large},
        BadFrame{"length 4 GiB - 1", raw_frame(3, 0, 0xFFFFFFFFu, ""), errc::frame_too_large},
        BadFrame{"lone continuation byte", frame(FrameType::text, "a\x80z"), errc::invalid_utf8},
        BadFrame{"overlong slash", frame(FrameType::text, "\xc0\xaf"), errc::invalid_utf8},
        BadFrame{"overlong three-byte", frame(FrameType::text, "\xe0\x80\xaf"), errc::invalid_utf8},
        BadFrame{"surrogate", frame(FrameType::text, "\xed\xa0\x80"), errc::invalid_utf8},
        BadFrame{"above U+10FFFF", frame(FrameType::text, "\xf4\x90\x80\x80"), errc::invalid_utf8},
        BadFrame{"truncated sequence", frame(FrameType::text, "ok\xe2\x82"), errc::invalid_utf8},
        BadFrame{"byte 0xff", frame(FrameType::text, "\xff"), errc::invalid_utf8},
        BadFrame{"JSON syntax", frame(FrameType::json, "{\"a\":}"), errc::invalid_json},
        BadFrame{"JSON empty", frame(FrameType::json, ""), errc::invalid_json},
        BadFrame{"JSON trailing bytes", frame(FrameType::json, "{} {}"), errc::invalid_json},
        BadFrame{"JSON truncated", frame(FrameType::json, "[1,2"), errc::invalid_json},
        BadFrame{"JSON comment", frame(FrameType::json, "[1 /* c */]"), errc::invalid_json},
        BadFrame{"JSON not UTF-8", frame(FrameType::json, "\"\xc0\xaf\""), errc::invalid_json},
        BadFrame{"JSON too deep", frame(FrameType::json, nested(9)), errc::invalid_json},
        BadFrame{"control empty", frame(FrameType::control, ""), errc::bad_control_frame},
        BadFrame{"close without code", frame(FrameType::control, "\x01\x00"), errc::bad_control_frame},
        BadFrame{"close reason not UTF-8", frame(FrameType::control, "\x01\x00\x00\xff"),
                 errc::bad_control_frame},
        BadFrame{"control too long", raw_frame(4, 0, 129, std::string(129, '\x01')),
                 errc::bad_control_frame}),
    [](const ::testing::TestParamInfo<BadFrame>& info) {
      std::string name;
      for (char c : std::string(info.param.name))
        name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return name;
    });

// The byte sequences docs/protocol.md shows, exactly as written there.
TEST(FrameDecoder, TheExamplesOfTheProtocolDocument) {
  std::string binary_payload;
  for (int i = 0; i < 64; ++i) binary_payload.push_back(static_cast<char>(i));
  std::string bytes = "\x01\x00\x00\x00\x02\x00\x00\x00hi"s +
                      "\x03\x00\x00\x00\x07\x00\x00\x00\x7b\x22\x61\x22\x3a\x31\x7d"s +
                      "\x02\x00\x00\x00\x40\x00\x00\x00"s + binary_payload +
                      "\x04\x00\x00\x00\x03\x00\x00\x00\x01\x00\x00"s +
                      "\x04\x00\x00\x00\x0c\x00\x00\x00\x01\x04\x00\x62\x61\x64\x20\x55\x54\x46\x2d\x38"s;
  FrameDecoder decoder(FrameOptions{});
  ByteQueue in(64);
  Recorder sink;
  ASSERT_FALSE(feed(decoder, in, sink, bytes, {}));
  expect_messages(sink, {{Message::Kind::text, "hi"},
                         {Message::Kind::json, R"({"a":1})"},
                         {Message::Kind::binary, binary_payload}});
  ASSERT_EQ(sink.closes.size(), 2u);
  EXPECT_EQ(sink.closes[0], std::make_pair(std::uint16_t{0}, std::string()));
  EXPECT_EQ(sink.closes[1], std::make_pair(std::uint16_t{4}, std::string("bad UTF-8")));
  ByteQueue encoded(64);
  append_close_frame(encoded, close_code_for(make_error_code(errc::invalid_utf8)), "bad UTF-8");
  EXPECT_EQ(std::string(encoded.data(), encoded.size()), bytes.substr(bytes.size() - 20));
}

TEST(FrameDecoder, JsonAtTheDepthLimitIsAccepted) {
  FrameOptions options;
  options.max_json_depth = 8;
  FrameDecoder decoder(options);
  ByteQueue in(64);
  Recorder sink;
  std::string bytes = frame(FrameType::json, nested(8));
  EXPECT_FALSE(feed(decoder, in, sink, bytes, {}));
  EXPECT_EQ(sink.messages.size(), 1u);
}

TEST(FrameDecoder, FrameAtTheMaximumSizeIsAccepted) {
  FrameOptions options;
  options.max_frame_size = 1000;
  FrameDecoder decoder(options);
  ByteQueue in(64);
  Recorder sink;
  std::string bytes = frame(FrameType::binary, std::string(1000, 'x'));
  EXPECT_FALSE(feed(decoder, in, sink, bytes, {500}));
  ASSERT_EQ(sink.messages.size(), 1u);
  EXPECT_EQ(sink.messages[0].bytes().size(), 1000u);
}

// A handler that keeps a copy of a received JSON value: the copy shares the
// arena, which the decoder must then leave alone. ASan catches the mistake.
struct KeepingSink {
  std::vector<boost::json::value> kept;
  bool on_message(const Message& message) {
    if (message.json_value().is_object()) kept.push_back(message.json_value());
    return true;
  }
  bool on_close_frame(std::uint16_t, std::string_view) { return true; }
};

TEST(FrameDecoder, JsonValuesCopiedByAHandlerOutliveTheMessage) {
  FrameDecoder decoder(FrameOptions{});
  ByteQueue in(64);
  KeepingSink sink;
  std::vector<std::string> sent;
  for (int i = 0; i < 50; ++i) {
    boost::json::object object{{"index", i}, {"text", std::string(40 + i, static_cast<char>('a' + i % 26))}};
    if (i % 3 == 0)
      object["list"] = boost::json::array(static_cast<std::size_t>(i + 1), boost::json::value(i));
    std::string text = boost::json::serialize(object);
    std::string bytes =
        frame(FrameType::json, text) + frame(FrameType::json, "[\"overwrite the arena\",1,2,3]");
    in.append(bytes.data(), bytes.size());
    ASSERT_FALSE(decoder.decode(in, sink));
    sent.push_back(text);
  }
  ASSERT_EQ(sink.kept.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(boost::json::serialize(sink.kept[i]), sent[i]);
}

TEST(MessageCopy, OwnsItsBytesAndJson) {
  std::string buffer = "transient";
  Message view = Message::binary_view(buffer);
  EXPECT_FALSE(view.owns_data());
  Message copy = view;
  buffer.assign("XXXXXXXXX");
  EXPECT_TRUE(copy.owns_data());
  EXPECT_EQ(copy.bytes(), "transient");
  EXPECT_EQ(view.bytes(), "XXXXXXXXX");

  Message json = boost::json::object{{"k", "v"}};
  Message json_copy = json;
  EXPECT_TRUE(json_copy.is_json());
  EXPECT_EQ(boost::json::serialize(json_copy.json_value()), R"({"k":"v"})");
  Message text = "literal";
  EXPECT_TRUE(text.is_text());
  EXPECT_EQ(text.bytes(), "literal");
}

// Strict reference: decode code points one by one (RFC 3629, table 3-7 of Unicode).
bool reference_utf8(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    std::uint32_t cp;
    int extra;
    if (c < 0x80) {
      cp = c;
      extra = 0;
    } else if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F;
      extra = 1;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F;
      extra = 2;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07;
      extra = 3;
    } else
      return false;
    if (i + extra >= s.size() && extra > 0) return false;  // truncated
    for (int k = 1; k <= extra; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    static const std::uint32_t min_for[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_for[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

TEST(Utf8, AgreesWithTheReferenceOnEveryOneTwoAndThreeByteString) {
  std::string s;
  for (int a = 0; a < 256; ++a) {
    s.assign(1, static_cast<char>(a));
    ASSERT_EQ(is_valid_utf8(s), reference_utf8(s)) << a;
    for (int b = 0; b < 256; ++b) {
      s.assign({static_cast<char>(a), static_cast<char>(b)});
      ASSERT_EQ(is_valid_utf8(s), reference_utf8(s)) << a << " " << b;
    }
  }
  for (int a = 0xC0; a < 256; ++a) {
    for (int b = 0x70; b < 0xD0; ++b) {
      for (int c = 0x70; c < 0xD0; ++c) {
        s.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)});
        ASSERT_EQ(is_valid_utf8(s), reference_utf8(s)) << a << " " << b << " " << c;
      }
    }
  }
}

TEST(Utf8, AgreesWithTheReferenceOnRandomFourByteSequencesInsideAsciiRuns) {
  std::mt19937 random(7);
  std::uniform_int_distribution<int> byte(0x70, 0xFF);
  for (int i = 0; i < 200000; ++i) {
    std::string s(static_cast<std::size_t>(i % 37), 'a');  // lengths that cross the 16-byte fast path
    for (int k = 0; k < 4; ++k) s.push_back(static_cast<char>(byte(random)));
    s.append(static_cast<std::size_t>(i % 5), 'b');
    ASSERT_EQ(is_valid_utf8(s), reference_utf8(s)) << i;
  }
}

TEST(Utf8, EveryCodePointEncodedIsValid) {
  for (std::uint32_t cp = 0; cp <= 0x10FFFF; cp += (cp < 0x20000 ? 1 : 97)) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    std::string s;
    if (cp < 0x80)
      s = {static_cast<char>(cp)};
    else if (cp < 0x800)
      s = {static_cast<char>(0xC0 | cp >> 6), static_cast<char>(0x80 | (cp & 0x3F))};
    else if (cp < 0x10000)
      s = {static_cast<char>(0xE0 | cp >> 12), static_cast<char>(0x80 | (cp >> 6 & 0x3F)),
           static_cast<char>(0x80 | (cp & 0x3F))};
    else
      s = {static_cast<char>(0xF0 | cp >> 18), static_cast<char>(0x80 | (cp >> 12 & 0x3F)),
           static_cast<char>(0x80 | (cp >> 6 & 0x3F)), static_cast<char>(0x80 | (cp & 0x3F))};
    ASSERT_TRUE(is_valid_utf8(s)) << cp;
  }
}

}  // namespace
}  // namespace multinode::detail
