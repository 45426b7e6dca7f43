// The chat room's state and its replication over the mesh, with no I/O: what
// examples/chat.cpp wires to WebSocket clients and peer streams, and what its unit
// test (tests/chat/chat_room_test.cpp) and fuzz target (fuzz/chat_message_fuzz.cpp)
// drive directly. docs/chat.md describes the protocols.
//
// Every process keeps the whole state: the last `history_limit` messages and who is
// online on every process. A message said here is stamped (time, node, seq); node
// ids are never reused, so (node, seq) names it everywhere and a copy that arrives
// twice (live, then in a snapshot) is dropped. The history is ordered by (time,
// node, seq), so every process orders it the same whatever the arrival order, and
// time is later than every line the process had seen (see say()). The
// online list is the union of each process's own users, kept per node, so that the
// users of a process that is gone leave with its stream.
//
// Across hosts (chat --bridge, Options::bridge) node ids repeat from host to host,
// so a line and a process are named with their host's id too: (host, node, seq).
// A host id is 0 on a chat without a bridge, and then never appears on the wire.
#pragma once

#include <multinode/node_id.hpp>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

namespace chat {

using multinode::NodeId;

// What a client may send. Every limit has a safe default and a flag in chat.cpp.
struct Limits {
  std::size_t max_nick_bytes = 32;    // a longer nick closes the client (1008)
  std::size_t max_text_bytes = 1000;  // a longer line closes the client (1008)
  double messages_per_second = 5;     // sustained rate per client...
  double burst = 20;                  // ...and how many may come at once; more closes it (1008)
};

// One line of the room's history.
struct Entry {
  std::string from;
  std::string text;
  NodeId node = 0;         // the process it was said on
  std::uint64_t seq = 0;   // that process's count of lines said, from 1
  std::int64_t time = 0;   // milliseconds since the epoch, on that process's clock
  std::uint64_t host = 0;  // that process's host (Nodes::host_id()), 0 without a bridge

  auto key() const { return std::tie(time, host, node, seq); }
};

// A host id on the wire: 16 hex digits in a string (JavaScript numbers hold 53 bits).
inline std::string host_text(std::uint64_t host) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, host >>= 4) out[static_cast<std::size_t>(i)] = digits[host & 15];
  return out;
}
inline std::optional<std::uint64_t> parse_host_text(std::string_view text) {
  if (text.size() != 16) return std::nullopt;
  std::uint64_t host = 0;
  for (const char c : text) {
    int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) return std::nullopt;
    host = host << 4 | static_cast<std::uint64_t>(digit);
  }
  return host;
}

// A client's frame, parsed: a nick, a line to say, or why it is refused.
struct ClientMessage {
  enum class Kind { nick, say, invalid };
  Kind kind = Kind::invalid;
  std::string value;  // the name, the text, or (invalid) the reason, for the close frame
};

namespace detail {
// Nicks are shown in a list: no control characters (which also keeps them on one line).
inline bool has_control_character(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}
inline const boost::json::string* string_field(const boost::json::object& object, std::string_view name) {
  const auto* field = object.if_contains(name);
  return field ? field->if_string() : nullptr;
}
inline ClientMessage invalid(std::string reason) {
  return {ClientMessage::Kind::invalid, std::move(reason)};
}
}  // namespace detail

// {"type":"nick","name":"…"} or {"type":"say","text":"…"}; anything else is invalid.
// The frame's size is bounded before it gets here (the WebSocket's max_message_bytes).
inline ClientMessage parse_client_message(std::string_view frame, const Limits& limits) {
  boost::json::parse_options options;
  options.max_depth = 4;  // the messages are flat: anything nested deeper is not one of them
  std::error_code error;
  const boost::json::value value = boost::json::parse(frame, error, {}, options);
  if (error) return detail::invalid("not JSON");
  const auto* object = value.if_object();
  if (!object) return detail::invalid("not a JSON object");
  const auto* type = detail::string_field(*object, "type");
  if (!type) return detail::invalid("no type");
  if (*type == "nick") {
    const auto* name = detail::string_field(*object, "name");
    if (!name || name->empty()) return detail::invalid("nick without a name");
    if (name->size() > limits.max_nick_bytes) return detail::invalid("nick too long");
    if (detail::has_control_character(*name)) return detail::invalid("control character in nick");
    return {ClientMessage::Kind::nick, std::string(*name)};
  }
  if (*type == "say") {
    const auto* text = detail::string_field(*object, "text");
    if (!text || text->empty()) return detail::invalid("say without a text");
    if (text->size() > limits.max_text_bytes) return detail::invalid("text too long");
    return {ClientMessage::Kind::say, std::string(*text)};
  }
  return detail::invalid("unknown type");
}

// A token bucket per client: `burst` messages at once, `per_second` sustained.
class RateLimit {
 public:
  using Clock = std::chrono::steady_clock;
  RateLimit(double per_second, double burst, Clock::time_point now)
      : per_second_(per_second), burst_(burst), tokens_(burst), last_(now) {}

  // Takes one token; false when none is left (the client floods).
  bool allow(Clock::time_point now) {
    const std::chrono::duration<double> elapsed = now - last_;
    last_ = now;
    tokens_ = std::min(burst_, tokens_ + elapsed.count() * per_second_);
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

 private:
  double per_second_;
  double burst_;
  double tokens_;
  Clock::time_point last_;
};

// What a message from a peer changed here.
struct PeerUpdate {
  std::vector<Entry> new_entries;  // lines not known before, to show to this process's clients
  bool online_changed = false;
  bool was_state = false;  // a snapshot: the peer's whole state
  bool invalid = false;    // not a message of the mesh protocol (ignored)
};

class Room {
 public:
  Room(NodeId self, std::size_t history_limit, std::uint64_t host = 0)
      : self_(self), history_limit_(history_limit), host_(host) {}

  NodeId self() const noexcept { return self_; }
  std::uint64_t host() const noexcept { return host_; }
  const std::vector<Entry>& history() const noexcept { return history_; }

  // --- this process's own users, by connection ---
  void join(std::uint64_t connection, std::string nick) { local_[connection] = std::move(nick); }
  void rename(std::uint64_t connection, std::string nick) { local_[connection] = std::move(nick); }
  void leave(std::uint64_t connection) { local_.erase(connection); }
  std::string nick(std::uint64_t connection) const {
    auto it = local_.find(connection);
    return it == local_.end() ? std::string() : it->second;
  }
  std::vector<std::string> local_users() const {
    std::vector<std::string> users;
    for (const auto& [connection, nick] : local_) users.push_back(nick);
    std::sort(users.begin(), users.end());
    return users;
  }
  // Everyone online on every process, sorted (a nick used twice is listed twice).
  std::vector<std::string> online() const {
    std::vector<std::string> users = local_users();
    for (const auto& [node, theirs] : remote_) users.insert(users.end(), theirs.begin(), theirs.end());
    std::sort(users.begin(), users.end());
    return users;
  }

  // A line said by one of this process's users: stamped, kept, returned to send on.
  // The stamp is the clock's milliseconds, but always later than every line this
  // process has seen (a hybrid logical clock): a line said after another was heard
  // sorts after it everywhere, even within the same millisecond or when the clock
  // goes back.
  Entry say(std::string from, std::string text, std::int64_t now_ms) {
    last_time_ = std::max(last_time_ + 1, now_ms);
    Entry entry{std::move(from), std::move(text), self_, ++seq_, last_time_, host_};
    add(entry);
    return entry;
  }

  // A line from elsewhere: false when it is known already or older than the whole
  // (full) history; else it takes its place in the history.
  bool add(const Entry& entry) {
    last_time_ = std::max(last_time_, entry.time);
    auto at = std::lower_bound(history_.begin(), history_.end(), entry,
                               [](const Entry& a, const Entry& b) { return a.key() < b.key(); });
    if (at != history_.end() && at->key() == entry.key()) return false;
    if (history_.size() >= history_limit_) {
      if (at == history_.begin()) return false;
      history_.erase(history_.begin());
      --at;  // every element after the erased first one moved down by one
    }
    history_.insert(at, entry);
    return true;
  }

  // --- the mesh protocol (JSON frames between processes) ---

  // Sent on every new peer stream: this process's history and own users.
  boost::json::object state_message() const {
    boost::json::array history;
    for (const auto& entry : history_) history.push_back(entry_json(entry, true));
    return {{"type", "state"}, {"history", std::move(history)}, {"users", users_json(local_users())}};
  }
  // Sent to every peer when one of this process's users said something.
  static boost::json::object said_message(const Entry& entry) {
    boost::json::object message = entry_json(entry, true);
    message["type"] = "said";
    return message;
  }
  // Sent to every peer when this process's users changed (joined, renamed, left).
  boost::json::object users_message() const {
    return {{"type", "users"}, {"users", users_json(local_users())}};
  }

  // A message from peer `peer`. Peers run this same program, but what they send is
  // checked all the same: a malformed message is ignored, never a crash.
  PeerUpdate apply(NodeId peer, const boost::json::value& value) { return apply_from(host_, peer, value); }
  // The same from process `peer` of host `host` (through the bridge).
  PeerUpdate apply_from(std::uint64_t host, NodeId peer, const boost::json::value& value) {
    PeerUpdate update;
    const auto* object = value.if_object();
    const auto* type = object ? detail::string_field(*object, "type") : nullptr;
    if (!type) {
      update.invalid = true;
    } else if (*type == "said") {
      auto entry = entry_from_json(*object);
      if (!entry) {
        update.invalid = true;
      } else if (add(*entry)) {
        update.new_entries.push_back(std::move(*entry));
      }
    } else if (*type == "users" || *type == "state") {
      const auto* users = object->if_contains("users");
      const auto* list = users ? users->if_array() : nullptr;
      if (!list) {
        update.invalid = true;
        return update;
      }
      std::vector<std::string> theirs;
      for (const auto& user : *list) {
        if (const auto* nick = user.if_string()) theirs.emplace_back(*nick);
      }
      std::sort(theirs.begin(), theirs.end());
      auto& known = remote_[{host, peer}];
      update.online_changed = known != theirs;
      known = std::move(theirs);
      if (*type == "state") {
        update.was_state = true;
        const auto* history = object->if_contains("history");
        if (const auto* entries = history ? history->if_array() : nullptr) {
          for (const auto& item : *entries) {
            const auto* fields = item.if_object();
            auto entry = fields ? entry_from_json(*fields) : std::nullopt;
            if (entry && add(*entry)) update.new_entries.push_back(std::move(*entry));
          }
        }
      }
    } else {
      update.invalid = true;
    }
    return update;
  }

  // The peer's stream closed: its users are gone. True when the online list changed.
  bool drop_peer(NodeId peer) { return drop_remote(host_, peer); }
  // Process `peer` of host `host` is gone (or unheard of for too long).
  bool drop_remote(std::uint64_t host, NodeId peer) {
    auto it = remote_.find({host, peer});
    if (it == remote_.end()) return false;
    const bool had_users = !it->second.empty();
    remote_.erase(it);
    return had_users;
  }

  // --- the client protocol (WebSocket text frames) ---

  std::string welcome_frame(std::int64_t pid) const {
    boost::json::array history;
    for (const auto& entry : history_) history.push_back(entry_json(entry, false));
    return boost::json::serialize(boost::json::object{{"type", "welcome"},
                                                      {"node", self_},
                                                      {"pid", pid},
                                                      {"history", std::move(history)},
                                                      {"online", users_json(online())}});
  }
  static std::string message_frame(const Entry& entry) {
    boost::json::object message = entry_json(entry, false);
    message["type"] = "message";
    return boost::json::serialize(message);
  }
  std::string online_frame() const {
    return boost::json::serialize(boost::json::object{{"type", "online"}, {"users", users_json(online())}});
  }

 private:
  // A line as clients see it (from, text, node, time) or as peers replicate it (and seq).
  static boost::json::object entry_json(const Entry& entry, bool with_seq) {
    boost::json::object object{
        {"from", entry.from}, {"text", entry.text}, {"node", entry.node}, {"time", entry.time}};
    if (with_seq) object["seq"] = entry.seq;
    if (entry.host != 0) object["host"] = host_text(entry.host);
    return object;
  }
  static std::optional<Entry> entry_from_json(const boost::json::object& object) {
    const auto* from = detail::string_field(object, "from");
    const auto* text = detail::string_field(object, "text");
    const auto* node = object.if_contains("node");
    const auto* seq = object.if_contains("seq");
    const auto* time = object.if_contains("time");
    if (!from || !text || !node || !seq || !time) return std::nullopt;
    std::error_code error;
    Entry entry{std::string(*from), std::string(*text), node->to_number<NodeId>(error), 0, 0};
    if (error) return std::nullopt;
    entry.seq = seq->to_number<std::uint64_t>(error);
    if (error) return std::nullopt;
    entry.time = time->to_number<std::int64_t>(error);
    if (error) return std::nullopt;
    if (const auto* host = detail::string_field(object, "host")) {
      const auto parsed = parse_host_text(*host);
      if (!parsed) return std::nullopt;
      entry.host = *parsed;
    }
    return entry;
  }
  static boost::json::array users_json(const std::vector<std::string>& users) {
    boost::json::array list;
    for (const auto& user : users) list.emplace_back(user);
    return list;
  }

  NodeId self_;
  std::size_t history_limit_;
  std::vector<Entry> history_;  // sorted by key(), at most history_limit_
  std::uint64_t seq_ = 0;
  std::int64_t last_time_ = 0;                  // the latest stamp seen, here or from a peer
  std::map<std::uint64_t, std::string> local_;  // this process's users, by connection
  std::uint64_t host_;
  std::map<std::pair<std::uint64_t, NodeId>, std::vector<std::string>> remote_;  // every peer's users, sorted
};

}  // namespace chat
