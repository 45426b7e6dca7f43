// examples/chat/room.hpp without any I/O: the client messages and their limits,
// the rate limit, and the replicated state (history order, duplicates, the limit,
// snapshots, the online list per process) as the mesh protocol carries it.
#include "chat/room.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <string>
#include <vector>

namespace {

using chat::ClientMessage;
using chat::Entry;
using chat::Limits;
using chat::Room;

ClientMessage parse(std::string_view frame, Limits limits = {}) {
  return chat::parse_client_message(frame, limits);
}

// What a room sends, as the peer receives it (serialized and parsed again, as the mesh does).
boost::json::value over_the_wire(const boost::json::object& message) {
  return boost::json::parse(boost::json::serialize(message));
}

std::vector<std::string> texts(const Room& room) {
  std::vector<std::string> out;
  for (const auto& entry : room.history()) out.push_back(entry.text);
  return out;
}

TEST(ChatClientMessage, NickAndSay) {
  auto nick = parse(R"({"type":"nick","name":"alice"})");
  EXPECT_EQ(nick.kind, ClientMessage::Kind::nick);
  EXPECT_EQ(nick.value, "alice");
  auto say = parse(R"({"text":"héllo \"there\"","type":"say","extra":1})");
  EXPECT_EQ(say.kind, ClientMessage::Kind::say);
  EXPECT_EQ(say.value, "héllo \"there\"");
}

TEST(ChatClientMessage, EverythingElseIsInvalidWithAReason) {
  const char* bad[] = {
      "",
      "not json",
      "{\"type\":\"say\",\"text\":\"unterminated",
      "[1,2]",
      "\"say\"",
      "{}",
      R"({"type":7})",
      R"({"type":"shout","text":"x"})",
      R"({"type":"say"})",
      R"({"type":"say","text":""})",
      R"({"type":"say","text":5})",
      R"({"type":"nick"})",
      R"({"type":"nick","name":""})",
      R"({"type":"nick","name":"a\nb"})",
      R"({"type":"nick","name":"tab\there"})",
      R"({"type":"say","text":{"a":{"b":{"c":{"d":1}}}}})",  // deeper than the messages ever are
      "{\"type\":\"say\",\"text\":\"\xff\xfe\"}",            // not UTF-8
  };
  for (const char* frame : bad) {
    auto message = parse(frame);
    EXPECT_EQ(message.kind, ClientMessage::Kind::invalid) << frame;
    EXPECT_FALSE(message.value.empty()) << frame;
  }
}

TEST(ChatClientMessage, LimitsOnNickAndText) {
  Limits limits;
  limits.max_nick_bytes = 5;
  limits.max_text_bytes = 10;
  EXPECT_EQ(parse(R"({"type":"nick","name":"abcde"})", limits).kind, ClientMessage::Kind::nick);
  EXPECT_EQ(parse(R"({"type":"nick","name":"abcdef"})", limits).value, "nick too long");
  EXPECT_EQ(parse(R"({"type":"say","text":"0123456789"})", limits).kind, ClientMessage::Kind::say);
  EXPECT_EQ(parse(R"({"type":"say","text":"0123456789a"})", limits).value, "text too long");
}

TEST(ChatRateLimit, BurstThenSustainedRate) {
  using namespace std::chrono_literals;
  const auto start = chat::RateLimit::Clock::time_point{} + 1h;
  chat::RateLimit rate(2, 3, start);
  EXPECT_TRUE(rate.allow(start));
  EXPECT_TRUE(rate.allow(start));
  EXPECT_TRUE(rate.allow(start));
  EXPECT_FALSE(rate.allow(start));         // the burst is spent
  EXPECT_TRUE(rate.allow(start + 500ms));  // one token back after 1/2 s at 2 a second
  EXPECT_FALSE(rate.allow(start + 500ms));
  EXPECT_TRUE(rate.allow(start + 10s));  // refilled, but never past the burst
  EXPECT_TRUE(rate.allow(start + 10s));
  EXPECT_TRUE(rate.allow(start + 10s));
  EXPECT_FALSE(rate.allow(start + 10s));
}

TEST(ChatRoom, HistoryIsOrderedByTimeThenNodeWhateverTheArrivalOrder) {
  Room a(1, 100), b(2, 100), c(3, 100);
  const Entry late = a.say("alice", "second", 2000);
  const Entry early = b.say("bob", "first", 1000);
  const Entry tie = c.say("carol", "same time as second, later node", 2000);
  Room one(4, 100), other(5, 100);
  for (const Entry* e : {&late, &early, &tie}) EXPECT_TRUE(one.add(*e));
  for (const Entry* e : {&tie, &early, &late}) EXPECT_TRUE(other.add(*e));
  const std::vector<std::string> expected{"first", "second", "same time as second, later node"};
  EXPECT_EQ(texts(one), expected);
  EXPECT_EQ(texts(other), expected);
}

TEST(ChatRoom, ADuplicateIsDropped) {
  Room a(1, 100), b(2, 100);
  const Entry said = a.say("alice", "once", 1000);
  EXPECT_TRUE(b.add(said));
  EXPECT_FALSE(b.add(said));
  EXPECT_FALSE(a.add(said));  // its own line, coming back in a snapshot
  EXPECT_EQ(b.history().size(), 1u);
}

TEST(ChatRoom, KeepsTheLastLinesOnly) {
  Room a(1, 3), b(2, 3);
  for (int i = 0; i < 5; ++i) a.say("alice", "line " + std::to_string(i), 1000 + i);
  EXPECT_EQ(texts(a), (std::vector<std::string>{"line 2", "line 3", "line 4"}));
  // A line older than the whole (full) history is not taken...
  const Entry old_line = b.say("bob", "older than them all", 10);
  EXPECT_FALSE(a.add(old_line));
  // ...one in the middle is, and the oldest leaves.
  Room c(3, 3);
  const Entry middle = c.say("carol", "between 3 and 4", 1003);
  EXPECT_TRUE(a.add(middle));
  EXPECT_EQ(texts(a), (std::vector<std::string>{"line 3", "between 3 and 4", "line 4"}));
}

TEST(ChatRoom, ItsOwnLinesKeepTheirOrderWhenTheClockGoesBack) {
  Room a(1, 100);
  a.say("alice", "one", 5000);
  a.say("alice", "two", 4000);
  EXPECT_EQ(texts(a), (std::vector<std::string>{"one", "two"}));
}

TEST(ChatRoom, ANewProcessGetsTheHistoryAndUsersFromAState) {
  Room veteran(1, 100);
  veteran.join(10, "alice");
  veteran.say("alice", "hello", 1000);
  veteran.say("alice", "anyone?", 1001);

  Room newcomer(7, 100);
  newcomer.join(1, "zed");
  auto update = newcomer.apply(1, over_the_wire(veteran.state_message()));
  EXPECT_FALSE(update.invalid);
  EXPECT_TRUE(update.was_state);
  EXPECT_TRUE(update.online_changed);
  EXPECT_EQ(update.new_entries.size(), 2u);
  EXPECT_EQ(texts(newcomer), (std::vector<std::string>{"hello", "anyone?"}));
  EXPECT_EQ(newcomer.online(), (std::vector<std::string>{"alice", "zed"}));
  // The same state again changes nothing.
  update = newcomer.apply(1, over_the_wire(veteran.state_message()));
  EXPECT_TRUE(update.new_entries.empty());
  EXPECT_FALSE(update.online_changed);
}

TEST(ChatRoom, LinesAndUsersFromPeers) {
  Room a(1, 100), b(2, 100);
  a.join(1, "alice");
  auto update = b.apply(1, over_the_wire(a.users_message()));
  EXPECT_TRUE(update.online_changed);
  EXPECT_EQ(b.online(), std::vector<std::string>{"alice"});
  const Entry said = a.say("alice", "hi", 1000);
  update = b.apply(1, over_the_wire(Room::said_message(said)));
  ASSERT_EQ(update.new_entries.size(), 1u);
  EXPECT_EQ(update.new_entries[0].from, "alice");
  EXPECT_EQ(update.new_entries[0].node, 1u);
  update = b.apply(1, over_the_wire(Room::said_message(said)));  // again: a duplicate
  EXPECT_TRUE(update.new_entries.empty());
  a.rename(1, "alicia");
  b.apply(1, over_the_wire(a.users_message()));
  EXPECT_EQ(b.online(), std::vector<std::string>{"alicia"});
  // Its process is gone: so are its users.
  EXPECT_TRUE(b.drop_peer(1));
  EXPECT_TRUE(b.online().empty());
  EXPECT_FALSE(b.drop_peer(1));
}

TEST(ChatRoom, OnlineIsTheUnionOfEveryProcessesUsers) {
  Room a(1, 100), b(2, 100), c(3, 100);
  a.join(1, "bob");
  a.join(2, "alice");
  b.join(1, "alice");  // the same nick on two tabs is listed twice
  c.apply(1, over_the_wire(a.users_message()));
  c.apply(2, over_the_wire(b.users_message()));
  c.join(5, "carol");
  EXPECT_EQ(c.online(), (std::vector<std::string>{"alice", "alice", "bob", "carol"}));
  a.leave(1);
  c.apply(1, over_the_wire(a.users_message()));
  EXPECT_EQ(c.online(), (std::vector<std::string>{"alice", "alice", "carol"}));
}

TEST(ChatRoom, MalformedPeerMessagesAreIgnored) {
  Room a(1, 100);
  const char* bad[] = {R"(7)",
                       R"({"type":"said","from":"x"})",
                       R"({"type":"said","from":"x","text":"t","node":-1,"seq":1,"time":1})",
                       R"({"type":"said","from":"x","text":"t","node":1,"seq":"1","time":1})",
                       R"({"type":"users"})",
                       R"({"type":"state","users":{}})",
                       R"({"type":"gossip"})"};
  for (const char* message : bad) EXPECT_TRUE(a.apply(2, boost::json::parse(message)).invalid) << message;
  EXPECT_TRUE(a.history().empty());
  EXPECT_TRUE(a.online().empty());
}

TEST(ChatRoom, ALineSaidAfterOneWasHeardSortsAfterItInTheSameMillisecond) {
  Room high(9, 100), low(1, 100), other(5, 100);
  const Entry first = high.say("hana", "first", 1000);
  EXPECT_TRUE(low.add(first));
  const Entry reply = low.say("lou", "reply", 1000);  // the same millisecond, a lower node id
  EXPECT_GT(reply.time, first.time);
  EXPECT_TRUE(other.add(reply));
  EXPECT_TRUE(other.add(first));
  for (const Room* room : {&low, &other})
    EXPECT_EQ(texts(*room), (std::vector<std::string>{"first", "reply"}));
}

TEST(ChatRoom, ClientFramesFollowTheProtocol) {
  Room a(3, 100);
  a.join(1, "alice");
  const Entry said = a.say("alice", "hi", 1000);
  auto welcome = boost::json::parse(a.welcome_frame(4242)).as_object();
  EXPECT_EQ(welcome.at("type"), "welcome");
  EXPECT_EQ(welcome.at("node"), 3);
  EXPECT_EQ(welcome.at("pid"), 4242);
  ASSERT_EQ(welcome.at("history").as_array().size(), 1u);
  const auto& line = welcome.at("history").as_array()[0].as_object();
  EXPECT_EQ(line.at("from"), "alice");
  EXPECT_EQ(line.at("text"), "hi");
  EXPECT_EQ(line.at("node"), 3);
  EXPECT_EQ(welcome.at("online"), boost::json::array{"alice"});
  auto message = boost::json::parse(Room::message_frame(said)).as_object();
  EXPECT_EQ(message.at("type"), "message");
  EXPECT_EQ(message.at("from"), "alice");
  EXPECT_EQ(message.at("text"), "hi");
  EXPECT_EQ(message.at("node"), 3);
  auto online = boost::json::parse(a.online_frame()).as_object();
  EXPECT_EQ(online.at("type"), "online");
  EXPECT_EQ(online.at("users"), boost::json::array{"alice"});
}

}  // namespace
