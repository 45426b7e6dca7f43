// The WebSocket load generator of bench/websocket.sh: one process, one epoll loop,
// up to tens of thousands of client connections speaking RFC 6455 as a client must
// (the opening handshake checked down to Sec-WebSocket-Accept, every frame masked
// with a fresh key, pings answered, fragments reassembled, server frames checked).
// A measuring tool, so it depends on no WebSocket library: the servers it loads
// are what is measured.
//
//   websocket_load probe  --port P [--timeout S]
//       one handshake, retried until the server answers it (or --timeout, default 20)
//   websocket_load echo   --port P [--connections 64] [--size 64] [--pipeline 1]
//                         [--duration 5] [--warmup 1] [--binary]
//       each connection keeps --pipeline messages in flight (the answers to one read
//       go out in one write): echoes per second, round trips
//   websocket_load fanout --port P [--connections 1000] [--size 64] [--interval-ms 10]
//                         [--duration 5] [--warmup 1] [--drain 5]
//       connection 0 sends a timestamped message every --interval-ms; every other
//       connection records its delivery latency: p50/p99, deliveries per second
//   websocket_load idle   --port P [--connections 10000] [--hold 120]
//       opens the connections and holds them (answering pings) until SIGTERM or --hold
//   every mode: [--host 127.0.0.1] [--path /] [--concurrency 128] [--connect-timeout 60]
//               [--connect-attempts 5] [--attempt-timeout 5] [--deflate]
//
// --deflate offers permessage-deflate (RFC 7692) with server_no_context_takeover
// and client_no_context_takeover, requires the server to agree, compresses every
// message it sends (RSV1) and inflates every compressed message it receives, with
// one zlib stream each way for the whole process (reset after each message: no
// context is taken over, so no connection needs its own).
//
// A connection that fails before every connection is open (refused, reset, closed,
// or not open within --attempt-timeout: a SYN dropped by a full accept queue waits
// seconds for its retransmission) is opened again, up to --connect-attempts times
// each, within --connect-timeout for them all; "connect_retries" counts the retries.
//
// Once every connection is open it prints {"event":"connected",...} on stdout, then
// one JSON line with the figures when the run ends; progress and errors go to stderr.
// The exit status is 0 when the run completed (its "errors" field counts protocol
// errors and connections the server closed), 1 when it could not run, 2 for usage.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <zlib.h>
#include <boost/uuid/detail/sha1.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

// --- small helpers ------------------------------------------------------------

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "websocket_load: %s\n", message.c_str());
  std::exit(1);
}

std::string errno_text(int error) {
  return std::string(std::strerror(error));
}

// CPU time this process has used, user and system: a load generator near a
// whole core is the bottleneck, not the server.
// Time this process spent runnable but waiting for a CPU (/proc/self/schedstat;
// 0 where the kernel does not keep it): a generator that waits is late to read.
double run_queue_wait_seconds() {
  std::FILE* file = std::fopen("/proc/self/schedstat", "r");
  if (file == nullptr) return 0;
  unsigned long long running = 0, waiting = 0;
  const int got = std::fscanf(file, "%llu %llu", &running, &waiting);
  std::fclose(file);
  return got == 2 ? static_cast<double>(waiting) / 1e9 : 0;
}

double cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

std::int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// xorshift64*: masking keys and handshake keys. RFC 6455 asks for unpredictable
// masks so that a client cannot aim bytes at intermediaries; seeded from
// random_device, this is plenty for a load generator on loopback.
class Random {
 public:
  Random() {
    std::random_device device;
    state_ = (std::uint64_t{device()} << 32) ^ device() ^ 0x9E3779B97F4A7C15ull;
  }
  std::uint64_t next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1Dull;
  }

 private:
  std::uint64_t state_;
};

std::string base64(const unsigned char* data, std::size_t size) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < size; i += 3) {
    const std::uint32_t a = data[i];
    const std::uint32_t b = i + 1 < size ? data[i + 1] : 0;
    const std::uint32_t c = i + 2 < size ? data[i + 2] : 0;
    const std::uint32_t triple = (a << 16) | (b << 8) | c;
    out += alphabet[(triple >> 18) & 63];
    out += alphabet[(triple >> 12) & 63];
    out += i + 1 < size ? alphabet[(triple >> 6) & 63] : '=';
    out += i + 2 < size ? alphabet[triple & 63] : '=';
  }
  return out;
}

// Sec-WebSocket-Accept for a key (RFC 6455 §4.2.2): base64(SHA-1(key + GUID)).
std::string accept_value(std::string_view key) {
  const std::string input = std::string(key) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  boost::uuids::detail::sha1 sha;
  sha.process_bytes(input.data(), input.size());
  boost::uuids::detail::sha1::digest_type digest;
  sha.get_digest(digest);
  unsigned char bytes[20];
  for (int i = 0; i < 5; ++i) {
    for (int j = 0; j < 4; ++j) bytes[i * 4 + j] = static_cast<unsigned char>(digest[i] >> (24 - 8 * j));
  }
  return base64(bytes, sizeof bytes);
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Latencies in microseconds, log-linear buckets: exact below 2048 us, then 1024
// buckets per power of two (0.1 % resolution), so that millions of samples cost
// a fixed 260 KB and percentiles need no sort.
class Histogram {
 public:
  Histogram() : counts_(2048 + 40 * 1024, 0) {}
  void add(std::int64_t us) {
    const auto value = static_cast<std::uint64_t>(std::max<std::int64_t>(us, 0));
    ++counts_[index(value)];
    ++total_;
    max_ = std::max(max_, value);
  }
  void clear() {
    std::fill(counts_.begin(), counts_.end(), 0);
    total_ = 0;
    max_ = 0;
  }
  std::uint64_t total() const { return total_; }
  std::uint64_t max() const { return max_; }
  // The smallest value with at least `fraction` of the samples at or below it.
  std::uint64_t percentile(double fraction) const {
    if (total_ == 0) return 0;
    const auto wanted = static_cast<std::uint64_t>(fraction * static_cast<double>(total_) + 0.999999);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= std::max<std::uint64_t>(wanted, 1)) return std::min(value_of(i), max_);
    }
    return max_;
  }

 private:
  static std::size_t index(std::uint64_t v) {
    if (v < 2048) return static_cast<std::size_t>(v);
    const int shift = static_cast<int>(std::bit_width(v)) - 11;  // v >> shift is in [1024, 2048)
    return std::min<std::size_t>(2048 + static_cast<std::size_t>(shift - 1) * 1024 + ((v >> shift) - 1024),
                                 2048 + 40 * 1024 - 1);
  }
  static std::uint64_t value_of(std::size_t i) {
    if (i < 2048) return i;
    const std::size_t shift = (i - 2048) / 1024 + 1;
    return ((i - 2048) % 1024 + 1024) << shift;
  }
  std::vector<std::uint64_t> counts_;
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
};

std::string latency_json(const Histogram& h) {
  char text[256];
  std::snprintf(
      text, sizeof text,
      "\"samples\":%llu,\"p50_us\":%llu,\"p90_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu,\"max_us\":%llu",
      static_cast<unsigned long long>(h.total()), static_cast<unsigned long long>(h.percentile(0.5)),
      static_cast<unsigned long long>(h.percentile(0.9)), static_cast<unsigned long long>(h.percentile(0.99)),
      static_cast<unsigned long long>(h.percentile(0.999)), static_cast<unsigned long long>(h.max()));
  return text;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// --- options ------------------------------------------------------------------

struct Config {
  std::string mode;
  std::string host = "127.0.0.1";
  std::string path = "/";
  int port = 0;
  std::size_t connections = 0;  // 0: the mode's default
  std::size_t size = 64;
  std::size_t pipeline = 1;
  double duration_s = 5;
  double warmup_s = 1;
  double drain_s = 5;
  double hold_s = 120;
  double timeout_s = 20;
  double connect_timeout_s = 60;
  double attempt_timeout_s = 5;
  std::size_t connect_attempts = 5;
  std::size_t concurrency = 128;
  int interval_ms = 10;
  bool binary = false;
  bool deflate = false;
  std::size_t max_message = std::size_t{16} * 1024 * 1024;
};

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(stderr,
               "websocket_load: %s\n"
               "usage: websocket_load probe|echo|fanout|idle --port P [--host 127.0.0.1] [--path /]\n"
               "         [--connections N] [--size BYTES] [--pipeline K] [--duration S] [--warmup S]\n"
               "         [--interval-ms MS] [--drain S] [--hold S] [--timeout S] [--concurrency N]\n"
               "         [--connect-timeout S] [--connect-attempts N] [--attempt-timeout S] [--binary]\n"
               "         [--deflate]\n",
               problem.c_str());
  std::exit(2);
}

Config parse(int argc, char** argv) {
  if (argc < 2) usage("no mode given");
  Config c;
  c.mode = argv[1];
  if (c.mode != "probe" && c.mode != "echo" && c.mode != "fanout" && c.mode != "idle")
    usage("unknown mode '" + c.mode + "'");
  auto number = [&](int& i, double minimum) {
    if (i + 1 >= argc) usage(std::string(argv[i]) + " wants a value");
    char* end = nullptr;
    const double value = std::strtod(argv[++i], &end);
    if (end == argv[i] || *end != '\0' || value < minimum)
      usage(std::string(argv[i - 1]) + " wants a number >= " + std::to_string(minimum) + ", got '" + argv[i] +
            "'");
    return value;
  };
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--port")
      c.port = static_cast<int>(number(i, 1));
    else if (arg == "--host" && i + 1 < argc)
      c.host = argv[++i];
    else if (arg == "--path" && i + 1 < argc)
      c.path = argv[++i];
    else if (arg == "--connections")
      c.connections = static_cast<std::size_t>(number(i, 1));
    else if (arg == "--size")
      c.size = static_cast<std::size_t>(number(i, 0));
    else if (arg == "--pipeline")
      c.pipeline = static_cast<std::size_t>(number(i, 1));
    else if (arg == "--duration")
      c.duration_s = number(i, 0.1);
    else if (arg == "--warmup")
      c.warmup_s = number(i, 0);
    else if (arg == "--drain")
      c.drain_s = number(i, 0);
    else if (arg == "--hold")
      c.hold_s = number(i, 0);
    else if (arg == "--timeout")
      c.timeout_s = number(i, 0.1);
    else if (arg == "--connect-timeout")
      c.connect_timeout_s = number(i, 0.1);
    else if (arg == "--attempt-timeout")
      c.attempt_timeout_s = number(i, 0.1);
    else if (arg == "--connect-attempts")
      c.connect_attempts = static_cast<std::size_t>(number(i, 1));
    else if (arg == "--concurrency")
      c.concurrency = static_cast<std::size_t>(number(i, 1));
    else if (arg == "--interval-ms")
      c.interval_ms = static_cast<int>(number(i, 1));
    else if (arg == "--binary")
      c.binary = true;
    else if (arg == "--deflate")
      c.deflate = true;
    else
      usage("unknown argument '" + std::string(arg) + "'");
  }
  if (c.port == 0 || c.port > 65535) usage("--port is required (1..65535)");
  if (c.connections == 0)
    c.connections = c.mode == "echo" ? 64 : c.mode == "fanout" ? 1000 : c.mode == "idle" ? 10000 : 1;
  if (c.mode == "probe") c.connections = 1;
  if (c.mode == "fanout" && c.connections < 2)
    usage("fanout needs --connections >= 2 (one sender, receivers)");
  if (c.mode == "fanout" && c.size < 34)
    usage("fanout needs --size >= 34 (the sequence number and timestamp)");
  if (c.pipeline > 1024) usage("--pipeline is at most 1024");
  return c;
}

// --- the client connections -----------------------------------------------------

// permessage-deflate without context takeover either way (--deflate): one raw
// deflate stream each way, reset after every message.
class Compression {
 public:
  Compression() {
    if (deflateInit2(&deflate_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK ||
        inflateInit2(&inflate_, -15) != Z_OK)
      die("zlib could not be initialized");
  }
  ~Compression() {
    deflateEnd(&deflate_);
    inflateEnd(&inflate_);
  }
  Compression(const Compression&) = delete;
  Compression& operator=(const Compression&) = delete;

  // A message's payload compressed, without the 00 00 ff ff tail (RFC 7692 §7.2.1).
  std::string_view compress(std::string_view data) {
    out_.resize(data.size() + data.size() / 100 + 64);
    deflate_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    deflate_.avail_in = static_cast<uInt>(data.size());
    deflate_.next_out = reinterpret_cast<Bytef*>(out_.data());
    deflate_.avail_out = static_cast<uInt>(out_.size());
    if (deflate(&deflate_, Z_SYNC_FLUSH) != Z_OK || deflate_.avail_in != 0 || deflate_.avail_out == 0)
      die("zlib could not compress a message");
    const std::size_t size = out_.size() - deflate_.avail_out;
    deflateReset(&deflate_);
    return {out_.data(), size >= 4 ? size - 4 : size};
  }
  // A compressed message inflated; false when it does not inflate within max bytes.
  bool inflate(std::string_view payload, std::string& message, std::size_t max) {
    static const char tail[4] = {0, 0, '\xff', '\xff'};
    input_.assign(payload).append(tail, 4);
    message.clear();
    inflate_.next_in = reinterpret_cast<Bytef*>(input_.data());
    inflate_.avail_in = static_cast<uInt>(input_.size());
    bool ok = true;
    do {
      const std::size_t used = message.size();
      message.resize(used + std::max<std::size_t>(4096, input_.size() * 4));
      inflate_.next_out = reinterpret_cast<Bytef*>(message.data() + used);
      inflate_.avail_out = static_cast<uInt>(message.size() - used);
      const int status = ::inflate(&inflate_, Z_SYNC_FLUSH);
      message.resize(message.size() - inflate_.avail_out);
      if ((status != Z_OK && status != Z_BUF_ERROR) || message.size() > max) ok = false;
    } while (ok && (inflate_.avail_in > 0 || inflate_.avail_out == 0));
    inflateReset(&inflate_);
    return ok;
  }

 private:
  z_stream deflate_{};
  z_stream inflate_{};
  std::string out_, input_;
};

enum class State : std::uint8_t { idle, connecting, handshake, open, closed };

struct Connection {
  int fd = -1;
  State state = State::idle;
  bool fragmented = false;  // inside a fragmented message
  bool compressed = false;  // the fragmented message had RSV1
  bool writing = false;     // EPOLLOUT armed for `out`
  bool corked = false;      // frames wait in `out` until the pass over a read (or a burst) ends
  std::uint8_t fragment_opcode = 0;
  std::uint32_t index = 0;
  std::string key;                    // Sec-WebSocket-Key of the handshake
  std::string in;                     // bytes not parsed yet (handshake, or a frame cut by a read)
  std::string out;                    // bytes the kernel did not take yet
  std::string fragments;              // payload of a fragmented message so far
  std::vector<std::int64_t> sent_at;  // echo: send times of the messages in flight (a ring)
  std::size_t sent_head = 0, in_flight = 0;
  std::int64_t attempt_started = 0;  // when the current connection attempt began
  std::size_t attempts = 0;          // connection attempts so far
};

volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) {
  stop_requested = 1;
}

class Load {
 public:
  explicit Load(Config config) : c_(std::move(config)), read_buffer_(std::size_t{256} * 1024) {
    raise_fd_limit(c_.connections + 64);
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) die("epoll_create1: " + errno_text(errno));
    address_.sin_family = AF_INET;
    address_.sin_port = htons(static_cast<std::uint16_t>(c_.port));
    if (::inet_pton(AF_INET, c_.host.c_str(), &address_.sin_addr) != 1)
      die("--host must be a numeric IPv4 address, not '" + c_.host + "'");
    connections_.resize(c_.connections);
    for (std::size_t i = 0; i < connections_.size(); ++i)
      connections_[i].index = static_cast<std::uint32_t>(i);
  }

  int run() {
    if (c_.mode == "probe") return probe();
    const std::int64_t started = now_ns();
    connect_all();
    const double connect_s = static_cast<double>(now_ns() - started) / 1e9;
    std::printf(
        "{\"event\":\"connected\",\"mode\":\"%s\",\"connections\":%zu,\"connect_s\":%.3f,"
        "\"connect_retries\":%zu}\n",
        c_.mode.c_str(), connections_.size(), connect_s, connect_retries_);
    std::fflush(stdout);
    std::fprintf(stderr, "websocket_load: %zu connections open in %.2f s (%zu retries%s%s)\n",
                 connections_.size(), connect_s, connect_retries_, connect_retries_ > 0 ? ", last: " : "",
                 connect_retries_ > 0 ? last_connect_error_.c_str() : "");
    if (c_.mode == "echo") return echo(connect_s);
    if (c_.mode == "fanout") return fanout(connect_s);
    return idle(connect_s);
  }

 private:
  // --- setting connections up ---

  static void raise_fd_limit(std::size_t wanted) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) die("getrlimit(RLIMIT_NOFILE): " + errno_text(errno));
    if (limit.rlim_cur >= wanted) return;
    if (limit.rlim_max < wanted)
      die("needs " + std::to_string(wanted) + " file descriptors but the hard limit (ulimit -Hn) is " +
          std::to_string(limit.rlim_max) +
          ": raise it (e.g. in /etc/security/limits.conf) or use fewer --connections");
    limit.rlim_cur = wanted;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) die("setrlimit(RLIMIT_NOFILE): " + errno_text(errno));
  }

  // Starts the TCP connection of `conn`; false (errno set) when it failed at once.
  bool start_connect(Connection& conn) {
    conn.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (conn.fd < 0) return false;
    const int one = 1;
    ::setsockopt(conn.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(conn.fd, reinterpret_cast<const sockaddr*>(&address_), sizeof address_) != 0 &&
        errno != EINPROGRESS) {
      const int error = errno;
      ::close(conn.fd);
      conn.fd = -1;
      errno = error;
      return false;
    }
    conn.state = State::connecting;
    conn.attempt_started = now_ns();
    ++conn.attempts;
    epoll_event event{};
    event.events = EPOLLOUT;
    event.data.u32 = conn.index;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, conn.fd, &event) != 0) die("epoll_ctl(ADD): " + errno_text(errno));
    return true;
  }

  void send_handshake(Connection& conn) {
    unsigned char nonce[16];
    for (std::size_t i = 0; i < sizeof nonce; i += 8) {
      const std::uint64_t r = random_.next();
      std::memcpy(nonce + i, &r, 8);
    }
    conn.key = base64(nonce, sizeof nonce);
    conn.state = State::handshake;
    queue(conn, "GET " + c_.path + " HTTP/1.1\r\nHost: " + c_.host + ":" + std::to_string(c_.port) +
                    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + conn.key +
                    "\r\nSec-WebSocket-Version: 13\r\n" +
                    (c_.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                                  "client_no_context_takeover\r\n"
                                : "") +
                    "\r\n");
    set_events(conn, EPOLLIN | (conn.out.empty() ? 0u : EPOLLOUT));
  }

  // Checks the 101 answer (RFC 6455 §4.1, the client's requirements); returns the
  // number of bytes it took, 0 when incomplete; a refused handshake is fatal.
  std::size_t parse_handshake(Connection& conn) {
    const std::size_t end = conn.in.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (conn.in.size() > std::size_t{16} * 1024)
        die("the server's handshake answer has no end within 16 KB");
      return 0;
    }
    const std::string_view head(conn.in.data(), end);
    const std::size_t line_end = head.find("\r\n");
    const std::string_view status = head.substr(0, line_end);
    if (status.substr(0, 13) != "HTTP/1.1 101 " && status != "HTTP/1.1 101")
      die("the server answered the upgrade with '" + std::string(status) +
          "', not 101: is it a WebSocket server at " + c_.path + "?");
    bool upgrade = false, connection = false, accepted = false, deflate = false;
    std::size_t at = line_end == std::string_view::npos ? head.size() : line_end + 2;
    while (at < head.size()) {
      std::size_t next = head.find("\r\n", at);
      if (next == std::string_view::npos) next = head.size();
      const std::string_view line = head.substr(at, next - at);
      at = next + 2;
      const std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      const std::string_view name = trim(line.substr(0, colon));
      const std::string_view value = trim(line.substr(colon + 1));
      if (iequals(name, "upgrade")) upgrade = iequals(value, "websocket");
      if (iequals(name, "connection")) {
        std::string lower(value);
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](unsigned char ch) { return std::tolower(ch); });
        connection = lower.find("upgrade") != std::string::npos;
      }
      if (iequals(name, "sec-websocket-accept")) accepted = value == accept_value(conn.key);
      if (iequals(name, "sec-websocket-extensions")) {
        if (!c_.deflate || value.substr(0, 18) != "permessage-deflate")
          die("the server selected extensions (" + std::string(value) + ") this client did not offer");
        deflate = true;
      }
    }
    if (!upgrade || !connection || !accepted)
      die("the server's 101 answer is not a valid WebSocket handshake (Upgrade: websocket " +
          std::string(upgrade ? "ok" : "missing") + ", Connection: upgrade " +
          (connection ? "ok" : "missing") + ", Sec-WebSocket-Accept " +
          (accepted ? "ok" : "missing or wrong") + ")");
    if (c_.deflate && !deflate)
      die("the server did not agree to permessage-deflate (--deflate): is it started with compression on?");
    conn.state = State::open;
    ++open_;
    return end + 4;
  }

  // Opens every connection, --concurrency handshakes at a time. A connection that
  // fails meanwhile (refused, reset, closed, or not open within --attempt-timeout)
  // is opened again, up to --connect-attempts attempts: a run with fewer clients
  // than asked would measure something else, so running out of attempts or of
  // --connect-timeout is fatal.
  void connect_all() {
    const std::int64_t deadline = now_ns() + static_cast<std::int64_t>(c_.connect_timeout_s * 1e9);
    const auto attempt_timeout = static_cast<std::int64_t>(c_.attempt_timeout_s * 1e9);
    connecting_ = true;
    std::size_t next = 0;
    std::int64_t last_scan = 0;
    while (open_ < connections_.size()) {
      while (next < connections_.size() && next - open_ < c_.concurrency) {
        if (!start_connect(connections_[next]))
          die("connection " + std::to_string(next + 1) + " of " + std::to_string(connections_.size()) +
              ": connect: " + errno_text(errno) + " (out of local ports or file descriptors?)");
        ++next;
      }
      if (now_ns() > deadline)
        die("only " + std::to_string(open_) + " of " + std::to_string(connections_.size()) +
            " connections were open after --connect-timeout " + std::to_string(c_.connect_timeout_s) +
            " s (" + std::to_string(connect_retries_) + " retries" +
            (last_connect_error_.empty() ? "" : ", last: " + last_connect_error_) + ")");
      poll(100);
      if (stop_requested) die("interrupted while connecting");
      // Failed attempts are retried at once, stuck ones (no SYN-ACK, no 101) after
      // --attempt-timeout; the scan over every connection runs every 100 ms at most.
      const std::int64_t now = now_ns();
      if (retry_wanted_ == 0 && now - last_scan < 100'000'000) continue;
      last_scan = now;
      retry_wanted_ = 0;
      for (std::size_t i = 0; i < next; ++i) {
        Connection& conn = connections_[i];
        const bool failed = conn.state == State::closed;
        const bool stuck = (conn.state == State::connecting || conn.state == State::handshake) &&
                           now - conn.attempt_started > attempt_timeout;
        if (!failed && !stuck) continue;
        if (stuck) last_connect_error_ = "no handshake within --attempt-timeout";
        if (conn.attempts >= c_.connect_attempts)
          die("connection " + std::to_string(i + 1) + " of " + std::to_string(connections_.size()) +
              " failed " + std::to_string(conn.attempts) +
              " times (--connect-attempts); last: " + last_connect_error_);
        if (conn.fd >= 0) close_connection(conn);
        const std::size_t attempts = conn.attempts;
        conn = Connection{};
        conn.index = static_cast<std::uint32_t>(i);
        conn.attempts = attempts;
        ++connect_retries_;
        if (!start_connect(conn))
          die("connection " + std::to_string(i + 1) + " of " + std::to_string(connections_.size()) +
              ": connect: " + errno_text(errno) + " (out of local ports or file descriptors?)");
      }
    }
    connecting_ = false;
  }

  int probe() {
    const std::int64_t started = now_ns();
    const std::int64_t deadline = started + static_cast<std::int64_t>(c_.timeout_s * 1e9);
    Connection& conn = connections_[0];
    std::string last = "no attempt";
    while (now_ns() < deadline && !stop_requested) {
      conn = Connection{};
      closed_ = 0;
      if (!start_connect(conn)) {
        last = "connect: " + errno_text(errno);
      } else {
        while (conn.state != State::open && conn.state != State::closed && now_ns() < deadline) poll(50);
        if (conn.state == State::open) {
          std::printf("{\"mode\":\"probe\",\"ok\":true,\"ms\":%.1f}\n",
                      static_cast<double>(now_ns() - started) / 1e6);
          close_connection(conn);
          return 0;
        }
        last = first_error_;
        if (conn.fd >= 0) close_connection(conn);
        first_error_.clear();
      }
      ::usleep(50'000);
    }
    die("no WebSocket handshake with " + c_.host + ":" + std::to_string(c_.port) + c_.path + " within " +
        std::to_string(c_.timeout_s) + " s (last: " + last + ")");
  }

  // --- the event loop ---

  void set_events(Connection& conn, std::uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.u32 = conn.index;
    if (::epoll_ctl(epoll_, EPOLL_CTL_MOD, conn.fd, &event) != 0) die("epoll_ctl(MOD): " + errno_text(errno));
    conn.writing = (events & EPOLLOUT) != 0;
  }

  // One epoll_wait (up to timeout_ms) and the work it brought.
  void poll(int timeout_ms) {
    std::array<epoll_event, 512> events;
    const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) return;
      die("epoll_wait: " + errno_text(errno));
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u32 == timer_token) {
        on_timer();
        continue;
      }
      Connection& conn = connections_[events[i].data.u32];
      if (conn.state == State::closed || conn.fd < 0) continue;
      if (conn.state == State::connecting) {
        int error = 0;
        socklen_t length = sizeof error;
        ::getsockopt(conn.fd, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0) {
          fail(conn, "connect: " + errno_text(error));
          continue;
        }
        send_handshake(conn);
        continue;
      }
      if ((events[i].events & EPOLLOUT) != 0) flush(conn);
      if ((events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0 && conn.state != State::closed) {
        const std::uint64_t before = delivered_;
        cork(conn);
        on_readable(conn);
        uncork(conn);
        // Fan-out: several deliveries in one read waited in this process's socket
        // buffer (the generator was behind), not in the server.
        if (delivered_ > before) {
          ++delivery_reads_;
          max_per_read_ = std::max(max_per_read_, delivered_ - before);
        }
      }
    }
  }

  void on_readable(Connection& conn) {
    const ssize_t n = ::read(conn.fd, read_buffer_.data(), read_buffer_.size());
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      return fail(conn, "read: " + errno_text(errno));
    }
    if (n == 0) return fail(conn, "the server closed the connection without a close frame");
    read_at_ = now_ns();
    std::string_view data(read_buffer_.data(), static_cast<std::size_t>(n));
    if (conn.state == State::handshake) {
      conn.in.append(data);
      const std::size_t taken = parse_handshake(conn);
      if (taken == 0) return;
      conn.in.erase(0, taken);
      if (conn.in.empty()) return;
      const std::string rest = std::move(conn.in);
      conn.in.clear();
      return parse_frames(conn, rest);
    }
    if (conn.in.empty()) return parse_frames(conn, data);
    conn.in.append(data);
    const std::string joined = std::move(conn.in);
    conn.in.clear();
    parse_frames(conn, joined);
  }

  // Server-to-client frames (RFC 6455 §5.2): unmasked, RSV1 only with --deflate, on
  // a message's first frame.
  void parse_frames(Connection& conn, std::string_view data) {
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    std::size_t at = 0;
    while (conn.state == State::open) {
      const std::size_t left = data.size() - at;
      if (left < 2) break;
      const unsigned fin = p[at] & 0x80, rsv = p[at] & 0x70, opcode = p[at] & 0x0f;
      const unsigned masked = p[at + 1] & 0x80;
      std::uint64_t length = p[at + 1] & 0x7f;
      std::size_t header = 2;
      if (length == 126) {
        if (left < 4) break;
        length = (std::uint64_t{p[at + 2]} << 8) | p[at + 3];
        header = 4;
      } else if (length == 127) {
        if (left < 10) break;
        length = 0;
        for (int i = 0; i < 8; ++i) length = (length << 8) | p[at + 2 + i];
        header = 10;
      }
      const bool rsv1 = rsv == 0x40 && c_.deflate && (opcode == 0x1 || opcode == 0x2);
      if (rsv != 0 && !rsv1)
        return fail(conn, "protocol error: a frame with RSV bits set that no extension allows here");
      if (masked != 0) return fail(conn, "protocol error: a masked frame from the server");
      if (length > c_.max_message)
        return fail(conn, "a frame larger than " + std::to_string(c_.max_message) + " bytes");
      if (opcode >= 8 && (fin == 0 || length > 125))
        return fail(conn, "protocol error: a fragmented or oversized control frame");
      if (left - header < length) break;
      const std::string_view payload(data.data() + at + header, static_cast<std::size_t>(length));
      at += header + static_cast<std::size_t>(length);
      switch (opcode) {
        case 0x1:
        case 0x2:
          if (conn.fragmented) return fail(conn, "protocol error: a new message inside a fragmented one");
          if (fin != 0) {
            if (!rsv1) {
              on_message(conn, opcode, payload);
            } else if (compression_.inflate(payload, inflated_, c_.max_message)) {
              on_message(conn, opcode, inflated_);
            } else {
              return fail(conn, "a compressed message that does not inflate");
            }
          } else {
            conn.fragmented = true;
            conn.compressed = rsv1;
            conn.fragment_opcode = static_cast<std::uint8_t>(opcode);
            conn.fragments.assign(payload);
          }
          break;
        case 0x0:
          if (!conn.fragmented) return fail(conn, "protocol error: a continuation frame outside a message");
          if (conn.fragments.size() + payload.size() > c_.max_message)
            return fail(conn, "a message larger than " + std::to_string(c_.max_message) + " bytes");
          conn.fragments.append(payload);
          if (fin != 0) {
            conn.fragmented = false;
            const std::string message = std::move(conn.fragments);
            conn.fragments.clear();
            if (!conn.compressed) {
              on_message(conn, conn.fragment_opcode, message);
            } else if (compression_.inflate(message, inflated_, c_.max_message)) {
              on_message(conn, conn.fragment_opcode, inflated_);
            } else {
              return fail(conn, "a compressed message that does not inflate");
            }
          }
          break;
        case 0x8: {
          std::string reason = "the server closed the connection";
          if (payload.size() >= 2)
            reason += " with code " + std::to_string((static_cast<unsigned char>(payload[0]) << 8) |
                                                     static_cast<unsigned char>(payload[1]));
          send_frame(conn, 0x8, payload.substr(0, std::min<std::size_t>(payload.size(), 2)));
          return fail(conn, reason);
        }
        case 0x9:
          send_frame(conn, 0xA, payload);
          ++pings_;
          break;
        case 0xA:
          break;
        default:
          return fail(conn, "protocol error: unknown opcode " + std::to_string(opcode));
      }
    }
    if (conn.state == State::open && at < data.size()) conn.in.assign(data.substr(at));
  }

  // Client-to-server frame: FIN, the opcode, the length, a fresh masking key, the
  // masked payload (RFC 6455 §5.3).
  void send_frame(Connection& conn, unsigned opcode, std::string_view payload) {
    const bool compressed = c_.deflate && (opcode == 0x1 || opcode == 0x2);
    if (compressed) payload = compression_.compress(payload);
    char frame[14 + 125];
    std::string large;
    char* out = frame;
    if (payload.size() > 125) {
      large.resize(14 + payload.size());
      out = large.data();
    }
    std::size_t n = 0;
    out[n++] = static_cast<char>(0x80 | (compressed ? 0x40 : 0) | opcode);
    if (payload.size() < 126) {
      out[n++] = static_cast<char>(0x80 | payload.size());
    } else if (payload.size() <= 0xffff) {
      out[n++] = static_cast<char>(0x80 | 126);
      out[n++] = static_cast<char>(payload.size() >> 8);
      out[n++] = static_cast<char>(payload.size());
    } else {
      out[n++] = static_cast<char>(0x80 | 127);
      for (int i = 7; i >= 0; --i) out[n++] = static_cast<char>(std::uint64_t{payload.size()} >> (8 * i));
    }
    const std::uint64_t key_bits = random_.next();
    char key[4];
    std::memcpy(key, &key_bits, 4);
    std::memcpy(out + n, key, 4);
    n += 4;
    for (std::size_t i = 0; i < payload.size(); ++i) out[n + i] = static_cast<char>(payload[i] ^ key[i & 3]);
    n += payload.size();
    queue(conn, std::string_view(out, n));
  }

  // What the frames one read answers (or one burst) produce goes out in one send,
  // as a client that writes what it has does (wrk's pipeline script for HTTP): with
  // --pipeline K, the K echoes a read brings back are answered by one write, and
  // the servers get them in one read.
  static void cork(Connection& conn) { conn.corked = true; }

  void uncork(Connection& conn) {
    conn.corked = false;
    if (conn.state != State::closed && !conn.writing && !conn.out.empty()) {
      std::string bytes = std::move(conn.out);
      conn.out.clear();
      queue(conn, bytes);
    }
  }

  // Writes at once (unless corked); what the kernel does not take waits in `out`
  // for EPOLLOUT.
  void queue(Connection& conn, std::string_view bytes) {
    if (conn.corked || !conn.out.empty()) {
      conn.out.append(bytes);
      return;
    }
    const ssize_t n = ::send(conn.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) return fail(conn, "send: " + errno_text(errno));
    const std::size_t written = n < 0 ? 0 : static_cast<std::size_t>(n);
    if (written == bytes.size()) return;
    conn.out.assign(bytes.substr(written));
    if (conn.state != State::connecting) set_events(conn, EPOLLIN | EPOLLOUT);
  }

  void flush(Connection& conn) {
    if (conn.out.empty()) {
      if (conn.writing) set_events(conn, EPOLLIN);
      return;
    }
    const ssize_t n = ::send(conn.fd, conn.out.data(), conn.out.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno != EAGAIN) fail(conn, "send: " + errno_text(errno));
      return;
    }
    conn.out.erase(0, static_cast<std::size_t>(n));
    if (conn.out.empty()) set_events(conn, EPOLLIN);
  }

  void fail(Connection& conn, const std::string& why) {
    if (conn.state == State::closed) return;
    if (connecting_) {  // connect_all() opens it again
      last_connect_error_ = "connection " + std::to_string(conn.index) + ": " + why;
      if (conn.state == State::open) --open_;
      close_connection(conn);
      ++retry_wanted_;
      return;
    }
    if (first_error_.empty()) first_error_ = "connection " + std::to_string(conn.index) + ": " + why;
    ++errors_;  // while connecting, a failure ends the run anyway
    if (conn.state == State::open) --open_;
    close_connection(conn);
    ++closed_;
  }

  void close_connection(Connection& conn) {
    if (conn.fd >= 0) ::close(conn.fd);  // closing removes it from the epoll set
    conn.fd = -1;
    conn.state = State::closed;
  }

  void close_all() {
    for (auto& conn : connections_) {
      if (conn.fd >= 0) close_connection(conn);
    }
  }

  // --- the modes ---

  void on_message(Connection& conn, unsigned opcode, std::string_view payload) {
    if (c_.mode == "echo") return on_echo(conn, opcode, payload);
    if (c_.mode == "fanout") return on_delivery(conn, payload);
    ++unexpected_;  // idle: the servers send nothing unsolicited
  }

  std::string echo_payload(std::size_t index) const {
    std::string payload(c_.size, 'x');
    const std::string tag = std::to_string(index) + ":";
    payload.replace(0, std::min(tag.size(), payload.size()), tag.substr(0, payload.size()));
    return payload;
  }

  void send_echo(Connection& conn) {
    const std::size_t slot = (conn.sent_head + conn.in_flight) % c_.pipeline;
    conn.sent_at[slot] = now_ns();
    ++conn.in_flight;
    send_frame(conn, c_.binary ? 0x2 : 0x1, payloads_[conn.index]);
  }

  void on_echo(Connection& conn, unsigned opcode, std::string_view payload) {
    if (conn.in_flight == 0) {
      ++unexpected_;
      return;
    }
    if (opcode != (c_.binary ? 0x2u : 0x1u) || payload != payloads_[conn.index]) ++mismatched_;
    const std::int64_t sent = conn.sent_at[conn.sent_head];
    conn.sent_head = (conn.sent_head + 1) % c_.pipeline;
    --conn.in_flight;
    ++all_messages_;
    if (measuring_) {
      ++messages_;
      latency_.add((read_at_ - sent) / 1000);
    }
    if (!stopping_) send_echo(conn);
  }

  void run_for(double seconds) {
    const std::int64_t deadline = now_ns() + static_cast<std::int64_t>(seconds * 1e9);
    for (std::int64_t now = now_ns(); now < deadline && !stop_requested; now = now_ns())
      poll(static_cast<int>(std::max<std::int64_t>((deadline - now) / 1'000'000, 1)));
  }

  int echo(double connect_s) {
    payloads_.reserve(connections_.size());
    for (auto& conn : connections_) {
      payloads_.push_back(echo_payload(conn.index));
      conn.sent_at.assign(c_.pipeline, 0);
    }
    for (auto& conn : connections_) {
      cork(conn);
      for (std::size_t i = 0; i < c_.pipeline && conn.state == State::open; ++i) send_echo(conn);
      uncork(conn);
    }
    run_for(c_.warmup_s);
    measuring_ = true;
    const std::int64_t started = now_ns();
    const double cpu_before = cpu_seconds();
    const double wait_before = run_queue_wait_seconds();
    run_for(c_.duration_s);
    const double elapsed = static_cast<double>(now_ns() - started) / 1e9;
    const double cpu = cpu_seconds() - cpu_before;
    const double wait = run_queue_wait_seconds() - wait_before;
    measuring_ = false;
    stopping_ = true;
    const std::size_t still_open = open_;
    close_all();
    std::printf(
        "{\"mode\":\"echo\",\"connections\":%zu,\"size\":%zu,\"pipeline\":%zu,\"kind\":\"%s\","
        "\"connect_s\":%.3f,\"connect_retries\":%zu,\"duration_s\":%.3f,\"load_cpu_s\":%.3f,"
        "\"load_wait_s\":%.3f,\"messages\":%llu,\"messages_total\":%llu,"
        "\"messages_per_s\":%.1f,\"mismatched\":%llu,\"unexpected\":%llu,\"pings\":%llu,\"errors\":%llu,"
        "\"still_open\":%zu,\"first_error\":%s,\"rtt\":{%s}}\n",
        connections_.size(), c_.size, c_.pipeline, c_.binary ? "binary" : "text", connect_s, connect_retries_,
        elapsed, cpu, wait, static_cast<unsigned long long>(messages_),
        static_cast<unsigned long long>(all_messages_), static_cast<double>(messages_) / elapsed,
        static_cast<unsigned long long>(mismatched_), static_cast<unsigned long long>(unexpected_),
        static_cast<unsigned long long>(pings_), static_cast<unsigned long long>(errors_), still_open,
        json_string(first_error_).c_str(), latency_json(latency_).c_str());
    return 0;
  }

  // Fan-out: the message is "<seq hex16> <send time ns hex16> " padded to --size.
  void on_timer() {
    std::uint64_t expirations = 0;
    if (::read(timer_, &expirations, sizeof expirations) != static_cast<ssize_t>(sizeof expirations)) return;
    if (expirations > 1) missed_ticks_ += expirations - 1;
    if (sent_ >= total_messages_) return;
    Connection& sender = connections_[0];
    if (sender.state != State::open) return;
    char head[40];
    std::snprintf(head, sizeof head, "%016llx %016llx ", static_cast<unsigned long long>(sent_),
                  static_cast<unsigned long long>(now_ns()));
    std::string payload(c_.size, '.');
    std::memcpy(payload.data(), head, 34);
    if (sent_ == warmup_messages_) first_measured_send_ = now_ns();
    if (sent_ >= warmup_messages_) send_times_.push_back(now_ns());
    ++sent_;
    send_frame(sender, 0x1, payload);
  }

  void on_delivery(Connection& conn, std::string_view payload) {
    if (payload.size() < 34 || payload[16] != ' ' || payload[33] != ' ') {
      ++mismatched_;
      return;
    }
    std::uint64_t seq = 0, sent_bits = 0;
    if (!parse_hex(payload.substr(0, 16), seq) || !parse_hex(payload.substr(17, 16), sent_bits) ||
        seq >= sent_) {
      ++mismatched_;
      return;
    }
    if (conn.index == 0) {
      ++to_sender_;
      return;
    }
    ++all_deliveries_;
    // The server's delivery rate counts every delivery from the first measured
    // send on, warm-up messages included: a server still delivering the backlog
    // of the warm-up is delivering all the same.
    if (first_measured_send_ != 0) {
      ++delivered_in_window_;
      last_delivery_ = read_at_;
    }
    if (seq < warmup_messages_) return;
    ++delivered_;
    ++deliveries_[seq - warmup_messages_];
    latency_.add((read_at_ - static_cast<std::int64_t>(sent_bits)) / 1000);
  }

  static bool parse_hex(std::string_view digits, std::uint64_t& value) {
    value = 0;
    for (const char ch : digits) {
      unsigned digit = 0;
      if (ch >= '0' && ch <= '9')
        digit = static_cast<unsigned>(ch - '0');
      else if (ch >= 'a' && ch <= 'f')
        digit = static_cast<unsigned>(ch - 'a' + 10);
      else
        return false;
      value = (value << 4) | digit;
    }
    return true;
  }

  int fanout(double connect_s) {
    warmup_messages_ = static_cast<std::uint64_t>(c_.warmup_s * 1000 / c_.interval_ms);
    const auto measured = static_cast<std::uint64_t>(c_.duration_s * 1000 / c_.interval_ms);
    total_messages_ = warmup_messages_ + std::max<std::uint64_t>(measured, 1);
    deliveries_.assign(total_messages_ - warmup_messages_, 0);
    const std::uint64_t receivers = connections_.size() - 1;
    const std::uint64_t expected = receivers * (total_messages_ - warmup_messages_);

    timer_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (timer_ < 0) die("timerfd_create: " + errno_text(errno));
    itimerspec spec{};
    spec.it_interval.tv_sec = c_.interval_ms / 1000;
    spec.it_interval.tv_nsec = static_cast<long>(c_.interval_ms % 1000) * 1'000'000;
    spec.it_value = spec.it_interval;
    if (::timerfd_settime(timer_, 0, &spec, nullptr) != 0) die("timerfd_settime: " + errno_text(errno));
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u32 = timer_token;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, timer_, &event) != 0)
      die("epoll_ctl(ADD timer): " + errno_text(errno));

    measuring_ = true;
    const double cpu_before = cpu_seconds();
    const double wait_before = run_queue_wait_seconds();
    const std::int64_t run_started = now_ns();
    while (sent_ < total_messages_ && !stop_requested && connections_[0].state == State::open) poll(100);
    const std::int64_t last_send = now_ns();
    // Deliveries still on their way: wait for them, within --drain.
    const std::int64_t drain_deadline = last_send + static_cast<std::int64_t>(c_.drain_s * 1e9);
    while (delivered_ < expected && now_ns() < drain_deadline && !stop_requested) poll(10);
    measuring_ = false;
    const std::int64_t drain_end = now_ns();
    const double cpu = cpu_seconds() - cpu_before;
    const double wait = run_queue_wait_seconds() - wait_before;
    ::close(timer_);
    // A delivery that never came counts with the latency it had reached at the end
    // of the drain: a server that drops or falls behind must not get a better p99
    // for it. Such a percentile is a lower bound ("latency_censored").
    std::uint64_t censored = 0;
    for (std::size_t i = 0; i < send_times_.size(); ++i) {
      for (std::uint64_t k = deliveries_[i]; k < receivers; ++k)
        latency_.add((drain_end - send_times_[i]) / 1000);
      censored += deliveries_[i] < receivers ? receivers - deliveries_[i] : 0;
    }
    for (std::size_t i = send_times_.size(); i < deliveries_.size(); ++i)
      censored += receivers;  // never sent
    const std::size_t still_open = open_;
    close_all();

    std::uint64_t complete = 0, duplicated = 0;
    for (const std::uint32_t count : deliveries_) {
      if (count >= receivers) ++complete;
      if (count > receivers) ++duplicated;
    }
    const double window =
        static_cast<double>(std::max(last_delivery_, last_send) - first_measured_send_) / 1e9;
    std::printf(
        "{\"mode\":\"fanout\",\"connections\":%zu,\"receivers\":%llu,\"size\":%zu,\"interval_ms\":%d,"
        "\"connect_s\":%.3f,\"connect_retries\":%zu,\"load_cpu_s\":%.3f,\"load_wait_s\":%.3f,\"run_s\":%.3f,"
        "\"messages\":%llu,"
        "\"warmup_messages\":%llu,"
        "\"missed_ticks\":%llu,"
        "\"expected\":%llu,\"delivered\":%llu,\"delivered_total\":%llu,\"lost\":%llu,\"messages_complete\":%"
        "llu,\"duplicated\":%llu,"
        "\"to_sender\":%llu,\"delivery_reads\":%llu,\"max_deliveries_per_read\":%llu,\"window_s\":%.3f,"
        "\"delivered_per_s\":%.1f,\"mismatched\":%llu,\"pings\":%llu,"
        "\"errors\":%llu,\"still_open\":%zu,\"first_error\":%s,\"latency_censored\":%llu,\"latency\":{%s}}\n",
        connections_.size(), static_cast<unsigned long long>(receivers), c_.size, c_.interval_ms, connect_s,
        connect_retries_, cpu, wait, static_cast<double>(drain_end - run_started) / 1e9,
        static_cast<unsigned long long>(total_messages_ - warmup_messages_),
        static_cast<unsigned long long>(warmup_messages_), static_cast<unsigned long long>(missed_ticks_),
        static_cast<unsigned long long>(expected), static_cast<unsigned long long>(delivered_),
        static_cast<unsigned long long>(all_deliveries_),
        static_cast<unsigned long long>(expected > delivered_ ? expected - delivered_ : 0),
        static_cast<unsigned long long>(complete), static_cast<unsigned long long>(duplicated),
        static_cast<unsigned long long>(to_sender_), static_cast<unsigned long long>(delivery_reads_),
        static_cast<unsigned long long>(max_per_read_), window,
        window > 0 ? static_cast<double>(delivered_in_window_) / window : 0.0,
        static_cast<unsigned long long>(mismatched_), static_cast<unsigned long long>(pings_),
        static_cast<unsigned long long>(errors_), still_open, json_string(first_error_).c_str(),
        static_cast<unsigned long long>(censored), latency_json(latency_).c_str());
    return 0;
  }

  int idle(double connect_s) {
    measuring_ = true;
    run_for(c_.hold_s);
    measuring_ = false;
    const std::size_t still_open = open_;
    close_all();
    std::printf(
        "{\"mode\":\"idle\",\"connections\":%zu,\"connect_s\":%.3f,\"connect_retries\":%zu,\"still_open\":%"
        "zu,\"unexpected\":%llu,"
        "\"pings\":%llu,\"errors\":%llu,\"first_error\":%s}\n",
        connections_.size(), connect_s, connect_retries_, still_open,
        static_cast<unsigned long long>(unexpected_), static_cast<unsigned long long>(pings_),
        static_cast<unsigned long long>(errors_), json_string(first_error_).c_str());
    return 0;
  }

  static constexpr std::uint32_t timer_token = 0xffffffffu;

  Config c_;
  std::vector<char> read_buffer_;
  int epoll_ = -1;
  int timer_ = -1;
  sockaddr_in address_{};
  Random random_;
  std::vector<Connection> connections_;
  std::vector<std::string> payloads_;
  Compression compression_;  // --deflate
  std::string inflated_;     // the last compressed message received, inflated
  std::size_t open_ = 0, closed_ = 0;
  std::string first_error_;
  bool connecting_ = false;          // in connect_all(): failures are retried
  std::size_t retry_wanted_ = 0;     // failures since connect_all() last looked
  std::size_t connect_retries_ = 0;  // connection attempts after a failed one
  std::string last_connect_error_;
  bool measuring_ = false, stopping_ = false;
  std::int64_t read_at_ = 0;  // when the read being parsed returned
  std::uint64_t all_messages_ = 0,
                all_deliveries_ = 0;  // warm-up included: what the servers' CPU time covers
  std::uint64_t messages_ = 0, mismatched_ = 0, unexpected_ = 0, pings_ = 0, errors_ = 0;
  Histogram latency_;
  // fan-out
  std::uint64_t sent_ = 0, total_messages_ = 0, warmup_messages_ = 0, missed_ticks_ = 0;
  std::uint64_t delivered_ = 0, delivered_in_window_ = 0, to_sender_ = 0;
  std::uint64_t delivery_reads_ = 0, max_per_read_ = 0;  // reads that brought measured deliveries
  std::vector<std::uint32_t> deliveries_;                // per measured message
  std::vector<std::int64_t> send_times_;                 // per measured message sent
  std::int64_t first_measured_send_ = 0, last_delivery_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Config config = parse(argc, argv);
  struct sigaction action {};
  action.sa_handler = on_signal;  // no SA_RESTART: epoll_wait returns EINTR and the loop sees the flag
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  Load load(std::move(config));
  return load.run();
}
