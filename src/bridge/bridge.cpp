#include "bridge/bridge.hpp"

#include "common/log.hpp"

#include <hiredis/hiredis.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <fcntl.h>
#include <algorithm>
#include <deque>

namespace multinode::detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// One connection to Redis, reconnecting by itself. The publishing link writes the
// bridge's queue; the subscribed link (SUBSCRIBE) hands messages to the bridge.
class Bridge::Link {
 public:
  enum class Role { publisher, subscriber };
  Link(Bridge& bridge, Role role)
      : bridge_(bridge),
        role_(role),
        resolver_(bridge.io_),
        socket_(bridge.io_),
        timer_(bridge.io_),
        reader_(std::make_unique<ReplyReader>(bridge.config_.max_message + 65536)),
        delay_(bridge.config_.reconnect_delay) {}

  bool ready() const noexcept { return ready_; }
  const char* name() const noexcept { return role_ == Role::publisher ? "publishing" : "subscribed"; }

  void connect() {
    if (bridge_.stopped_) return;
    const auto& url = bridge_.config_.url;
    resolver_.async_resolve(url.host, std::to_string(url.port),
                            [this, generation = generation_](boost::system::error_code error,
                                                             tcp::resolver::results_type results) {
                              if (bridge_.stopped_ || generation != generation_) return;
                              if (error) return fail("cannot resolve the host: " + error.message());
                              asio::async_connect(
                                  socket_, results,
                                  [this, generation](boost::system::error_code error, const tcp::endpoint&) {
                                    if (bridge_.stopped_ || generation != generation_) return;
                                    if (error) return fail(error.message());
                                    connected();
                                  });
                            });
  }

  void close() {
    ++generation_;
    boost::system::error_code ignored;
    resolver_.cancel();
    timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    ready_ = false;
  }

  // Queues bytes for the socket (the subscribed link's SUBSCRIBE commands).
  void send(std::string bytes) {
    pending_ += bytes;
    flush();
  }

  // The publishing link: takes the bridge's queue when it can write.
  void flush() {
    if (writing_ || !ready_) return;
    if (role_ == Role::publisher && bridge_.queued_bytes_ != 0) {
      // What was published since the last write: one PUBLISH per batch of a channel.
      for (auto& [channel, batches] : bridge_.batches_) {
        for (auto& batch : batches) {
          pending_ += format_command({"PUBLISH", channel, batch.envelopes});
          in_flight_.push_back(batch.messages);
        }
      }
      bridge_.batches_.clear();
      bridge_.queued_bytes_ = 0;
    }
    if (!pending_.empty()) write();
  }

 private:
  void connected() {
    const int fd = socket_.native_handle();
    ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC);  // workers started later do not inherit it
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    reader_ = std::make_unique<ReplyReader>(bridge_.config_.max_message + 65536);
    const auto& url = bridge_.config_.url;
    std::string handshake;
    handshake_left_ = 0;
    if (!url.password.empty()) {
      handshake += format_command({"AUTH", url.password});
      ++handshake_left_;
    }
    if (url.db != 0) {
      const std::string db = std::to_string(url.db);
      handshake += format_command({"SELECT", db});
      ++handshake_left_;
    }
    subscribes_left_ = 0;
    if (role_ == Role::subscriber && !bridge_.subscriptions_.empty()) {
      std::vector<std::string_view> command{"SUBSCRIBE"};
      for (const auto& [channel, subscriptions] : bridge_.subscriptions_) command.push_back(channel);
      handshake += format_command(command);
      subscribes_left_ = bridge_.subscriptions_.size();
    }
    pending_ = std::move(handshake);
    writing_ = false;
    read();
    if (!pending_.empty()) write();
    maybe_ready();
  }

  void write() {
    writing_ = true;
    out_.swap(pending_);
    pending_.clear();
    asio::async_write(socket_, asio::buffer(out_),
                      [this, generation = generation_](boost::system::error_code error, std::size_t) {
                        if (bridge_.stopped_ || generation != generation_) return;
                        writing_ = false;
                        out_.clear();
                        if (error) return fail("write: " + error.message());
                        flush();
                      });
  }

  void maybe_ready() {
    if (ready_ || handshake_left_ != 0 || subscribes_left_ != 0) return;
    ready_ = true;
    delay_ = bridge_.config_.reconnect_delay;
    if (failed_before_) ++bridge_.counters_.reconnects;
    failed_before_ = false;
    bridge_.link_changed();
    flush();
  }

  void read() {
    socket_.async_read_some(asio::buffer(buffer_), [this, generation = generation_](
                                                       boost::system::error_code error, std::size_t size) {
      if (bridge_.stopped_ || generation != generation_) return;
      if (error) {
        return fail(error == asio::error::eof ? std::string("Redis closed the connection") : error.message());
      }
      if (!reader_->feed(buffer_.data(), size)) return bad_reply(reader_->error());
      while (auto reply = reader_->next()) {
        if (!on_reply(*reply)) return;
      }
      if (reader_->failed()) return bad_reply(reader_->error());
      read();
    });
  }

  // False when the link was dropped.
  bool on_reply(const redisReply& reply) {
    if (handshake_left_ != 0) {
      if (reply.type == REDIS_REPLY_ERROR) {
        fail(std::string("Redis refused the handshake: ") + std::string(reply.str, reply.len) +
             " (check the password in the URL or MULTINODE_BRIDGE_PASSWORD, and the database number)");
        return false;
      }
      --handshake_left_;
      maybe_ready();
      return true;
    }
    if (role_ == Role::publisher) {
      if (in_flight_.empty()) {
        bad_reply("a reply to no command");
        return false;
      }
      const std::uint64_t messages = in_flight_.front();
      in_flight_.pop_front();
      if (reply.type == REDIS_REPLY_INTEGER) {
        bridge_.counters_.published += messages;
      } else {
        bridge_.counters_.dropped += messages;
        if (reply.type == REDIS_REPLY_ERROR && !publish_error_logged_) {
          publish_error_logged_ = true;
          log(LogLevel::warning, "bridge: Redis refused a PUBLISH: ", std::string_view(reply.str, reply.len),
              " (the message is dropped; logged once)");
        }
      }
      return true;
    }
    const PushMessage push = classify_push(reply);
    switch (push.kind) {
      case PushMessage::Kind::message:
        bridge_.deliver(push.channel, push.payload);
        return !bridge_.stopped_;
      case PushMessage::Kind::subscribed:
        if (subscribes_left_ != 0) {
          --subscribes_left_;
          maybe_ready();
        }
        return true;
      case PushMessage::Kind::other:
        return true;
      case PushMessage::Kind::invalid:
        if (reply.type == REDIS_REPLY_ERROR) {
          fail(std::string("Redis refused SUBSCRIBE: ") + std::string(reply.str, reply.len));
          return false;
        }
        bridge_.reject(BridgeRejection::reply, "a reply on the subscribed link that is not a message");
        return true;
    }
    return true;
  }

  void bad_reply(const std::string& what) {
    bridge_.reject(BridgeRejection::reply, what);
    fail("a reply that does not parse (" + what + ")");
  }

  void fail(const std::string& reason) {
    const bool was_ready = ready_;
    close();
    writing_ = false;
    out_.clear();
    pending_.clear();
    handshake_left_ = 0;
    subscribes_left_ = 0;
    // Written but not acknowledged: Redis may or may not have had them (at-most-once).
    for (const auto messages : in_flight_) bridge_.counters_.dropped += messages;
    in_flight_.clear();
    if (was_ready || !failed_before_) {
      log(LogLevel::warning, "bridge: the ", name(), " link to Redis at ", bridge_.where(),
          " is down: ", reason, "; serving locally, reconnecting (backoff up to ",
          bridge_.config_.reconnect_delay_max.count(), " ms)");
    }
    failed_before_ = true;
    if (was_ready) bridge_.link_changed();
    if (bridge_.stopped_) return;
    timer_.expires_after(delay_);
    delay_ = std::min(delay_ * 2, bridge_.config_.reconnect_delay_max);
    timer_.async_wait([this](boost::system::error_code error) {
      if (!error) connect();
    });
  }

  Bridge& bridge_;
  Role role_;
  tcp::resolver resolver_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  std::unique_ptr<ReplyReader> reader_;
  std::chrono::milliseconds delay_;
  std::array<char, 65536> buffer_{};
  std::string out_;
  std::string pending_;
  bool writing_ = false;
  bool ready_ = false;
  std::uint64_t generation_ = 0;  // of the connection: handlers of an older one do nothing
  bool failed_before_ = false;
  bool publish_error_logged_ = false;
  std::size_t handshake_left_ = 0;
  std::size_t subscribes_left_ = 0;
  std::deque<std::uint64_t> in_flight_;  // messages in each PUBLISH written and not yet answered
};

Bridge::Bridge(asio::io_context& io, Config config)
    : io_(io),
      config_(std::move(config)),
      publisher_(std::make_unique<Link>(*this, Link::Role::publisher)),
      subscriber_(std::make_unique<Link>(*this, Link::Role::subscriber)) {}

Bridge::~Bridge() {
  stopped_ = true;
  publisher_->close();
  subscriber_->close();
}

std::string Bridge::where() const {
  return config_.url.host + ":" + std::to_string(config_.url.port);
}

void Bridge::start() {
  asio::post(io_, [this] {
    publisher_->connect();
    subscriber_->connect();
  });
}

void Bridge::stop() {
  if (stopped_) return;
  stopped_ = true;
  publisher_->close();
  subscriber_->close();
}

BridgeLinkState Bridge::state() const noexcept {
  return publisher_->ready() && subscriber_->ready() ? BridgeLinkState::up : BridgeLinkState::connecting;
}

BridgeCounters Bridge::counters() const {
  BridgeCounters counters = counters_;
  counters.queued_bytes = queued_bytes_;
  counters.state = state();
  counters.rejected = counters.oversized + counters.foreign + counters.malformed + counters.bad_replies;
  return counters;
}

void Bridge::link_changed() {
  const BridgeLinkState now = state();
  if (now == last_state_) return;
  last_state_ = now;
  if (now == BridgeLinkState::up) {
    log(LogLevel::info, "bridge: ", was_up_ ? "back on" : "connected to", " Redis at ", where(),
        " (channels prefixed '", config_.prefix, "', host id ", config_.host, ")");
    was_up_ = true;
  }
  for (auto& handler : std::vector(state_handlers_)) handler(now);
}

bool Bridge::publish(std::string_view channel, const Message& message) {
  if (stopped_) return false;
  const std::string envelope = encode_envelope(config_.host, config_.node, message);
  if (envelope.size() > config_.max_message) {
    ++counters_.dropped;
    if (!rejection_logged_[0]) {
      rejection_logged_[0] = true;
      log(LogLevel::warning, "bridge: a message of ", envelope.size(),
          " bytes was not published: larger than bridge_max_message (", config_.max_message,
          "); raise the option or send less (logged once)");
    }
    return false;
  }
  if (queued_bytes_ + envelope.size() > config_.max_queued) {
    ++counters_.dropped;
    return false;
  }
  // Messages published while a write is in flight (or the link is down) share one
  // PUBLISH per channel, up to bridge_max_message: one Redis command and one
  // delivery per subscriber for many messages. Nothing waits for a batch to fill.
  auto it = batches_.find(std::string_view(config_.prefix + std::string(channel)));
  if (it == batches_.end())
    it = batches_.emplace(config_.prefix + std::string(channel), std::vector<Batch>{}).first;
  auto& batches = it->second;
  if (batches.empty() || batches.back().envelopes.size() + envelope.size() > config_.max_message)
    batches.emplace_back();
  batches.back().envelopes += envelope;
  ++batches.back().messages;
  queued_bytes_ += envelope.size();
  publisher_->flush();
  return true;
}

void Bridge::subscribe(std::string_view channel, Handler handler, BridgeScope scope) {
  std::string name = config_.prefix + std::string(channel);
  auto& list = subscriptions_[name];
  const bool first = list.empty();
  list.push_back({std::move(handler), scope});
  if (first && subscriber_->ready() && !stopped_) subscriber_->send(format_command({"SUBSCRIBE", name}));
}

void Bridge::reject(BridgeRejection kind, std::string_view detail) {
  switch (kind) {
    case BridgeRejection::oversized:
      ++counters_.oversized;
      break;
    case BridgeRejection::foreign:
      ++counters_.foreign;
      break;
    case BridgeRejection::malformed:
      ++counters_.malformed;
      break;
    case BridgeRejection::reply:
      ++counters_.bad_replies;
      break;
    case BridgeRejection::none:
      return;
  }
  auto& logged = rejection_logged_[static_cast<std::size_t>(kind)];
  if (logged) return;
  logged = true;
  log(LogLevel::warning, "bridge: dropped ", kind == BridgeRejection::oversized ? "an " : "a ",
      to_string(kind), " payload from Redis (", detail,
      "); further ones are only counted (multinode_bridge_rejected_total)");
}

void Bridge::deliver(std::string_view redis_channel, std::string_view payload) {
  auto it = subscriptions_.find(redis_channel);
  if (it == subscriptions_.end()) return;  // unsubscribed meanwhile: not for this process
  if (payload.size() > config_.max_message)
    return reject(BridgeRejection::oversized, "larger than bridge_max_message");
  // One or more envelopes back to back (one publisher's batch).
  for (bool first = true; !payload.empty(); first = false) {
    const std::size_t size = envelope_size(payload);
    if (size == 0 || size > payload.size()) {
      if (first && payload.substr(0, envelope_magic.size()) != envelope_magic) {
        return reject(BridgeRejection::foreign,
                      "not a multinode envelope: another program publishes on the channel");
      }
      return reject(BridgeRejection::malformed,
                    "an envelope cut short or followed by bytes that are not one");
    }
    const std::string_view one = payload.substr(0, size);
    payload.remove_prefix(size);
    BridgeOrigin origin;
    peek_envelope_origin(one, origin.host, origin.node);
    const bool own_host = origin.host == config_.host;
    if (own_host) {
      if (origin.node == config_.node) continue;  // this process's own message
      const bool wanted = std::any_of(it->second.begin(), it->second.end(), [](const Subscription& s) {
        return s.scope == BridgeScope::every_host;
      });
      if (!wanted) continue;
    }
    Envelope envelope = decode_envelope(one, config_.max_message, config_.max_json_depth);
    if (envelope.rejection != BridgeRejection::none) {
      reject(envelope.rejection, "its frame does not parse");
      continue;
    }
    ++counters_.received;
    // A handler may subscribe more: the list is copied.
    const auto subscriptions = it->second;
    for (const auto& subscription : subscriptions) {
      if (own_host && subscription.scope == BridgeScope::other_hosts) continue;
      subscription.handler(*envelope.message, origin);
      if (stopped_) return;
    }
    it = subscriptions_.find(redis_channel);
    if (it == subscriptions_.end()) return;
  }
}

}  // namespace multinode::detail
