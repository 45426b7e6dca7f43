// IPC between two processes: one-way throughput of 64-byte binary frames and of
// small JSON objects, and round-trip latency, over multinode's framed peer
// streams; and the same for a raw socketpair (batched 64-byte writes, blocking
// round trips) as the ceiling. Node's cluster is measured by
// bench/ipc_node_cluster.js; bench/ipc.sh runs all of them in alternation.
//
//   ipc multinode [--transport mesh|fork] [--binary N] [--json N] [--round-trips N]
//                 [--busy-poll-us U] [--busy-round-trips N]
//   ipc raw [--binary N] [--round-trips N]
//   ipc shm-ring [--round-trips N] [--spin-us U]
//
// Prints one JSON line with what it measured. "mesh" (the default) runs two
// nodes with multinode::listen({.port = 0, .nodes = 2}) and measures on the
// stream nodes.on_node() gives; "fork" uses Stream::adopt over a socketpair and
// fork(), to tell the library's cost from the runtime's. "shm-ring" measures
// the alternative the design considered for latency: round trips over two
// shared-memory rings with a futex wake-up only when the reader sleeps (after
// polling for --spin-us), to compare with the socketpair's.
#include <multinode/multinode.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct Settings {
  std::string implementation;
  std::string transport = "mesh";
  long binary = 20'000'000;
  long json = 3'000'000;
  long round_trips = 20'000;
  long busy_round_trips = 20'000;
  long busy_poll_us = 100;
  long spin_us = 0;
};

double seconds_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  std::size_t middle = values.size() / 2;
  return values.size() % 2 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

double mean(const std::vector<double>& values) {
  return values.empty()
             ? 0
             : std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

// CPU time this process used so far (user and system), in nanoseconds.
double cpu_ns() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto ns = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_usec) * 1e3;
  };
  return ns(usage.ru_utime) + ns(usage.ru_stime);
}

[[noreturn]] void die(const std::string& message) {
  std::cerr << "ipc: " << message << "\n";
  std::exit(1);
}

// ------------------------------------------------------------------ multinode

// The measured process: sends on command, echoes binary frames.
class Sender {
 public:
  explicit Sender(multinode::FramedStream framed) : framed_(std::move(framed)) {
    framed_.on_message([this](const multinode::Message& message) { on_message(message); });
    framed_.on_drain([this] { pump(); });
  }

 private:
  void on_message(const multinode::Message& message) {
    if (message.is_binary()) {
      framed_.send_binary(message.bytes());  // a round-trip ping
      return;
    }
    const auto& command = message.json_value().as_object();
    std::string_view phase = command.at("phase").as_string();
    if (phase == "cpu") {  // CPU spent sending since the phase began
      framed_.send_json(boost::json::object{{"cpu_ns", cpu_ns() - phase_cpu_}});
      return;
    }
    if (phase == "binary" || phase == "json") {
      phase_cpu_ = cpu_ns();
      binary_left_ = phase == "binary" ? command.at("count").to_number<long>() : 0;
      json_left_ = phase == "json" ? command.at("count").to_number<long>() : 0;
      sequence_ = 0;
      pump();
    } else if (phase == "rtt") {
      framed_.stream().set_busy_poll(std::chrono::microseconds(command.at("busy_poll_us").to_number<long>()));
      framed_.send_json(boost::json::object{{"ready", true}});
    }
  }

  // Sends until the high-water mark, then continues on drain: never drops, never blocks.
  void pump() {
    while (binary_left_ > 0) {
      --binary_left_;
      if (!framed_.send_binary(payload_)) return;
    }
    auto& object = tick_.as_object();
    while (json_left_ > 0) {
      --json_left_;
      object["seq"] = sequence_++;
      if (!framed_.send_json(tick_)) return;
    }
  }

  multinode::FramedStream framed_;
  std::string payload_ = std::string(64, 'x');
  boost::json::value tick_ =
      boost::json::object{{"type", "tick"}, {"seq", 0}, {"ok", true}, {"tags", {"a", "b"}}};
  long binary_left_ = 0;
  long json_left_ = 0;
  long sequence_ = 0;
  double phase_cpu_ = 0;
};

// The measuring process: runs the phases one after the other and prints the result.
class Measurer {
 public:
  Measurer(multinode::FramedStream framed, const Settings& settings, std::function<void()> finished)
      : framed_(std::move(framed)), settings_(settings), finished_(std::move(finished)) {
    framed_.on_message([this](const multinode::Message& message) { on_message(message); });
    framed_.on_close([this](std::error_code error) {
      if (phase_ != Phase::done) die("the stream to the other process closed: " + error.message());
    });
    start(Phase::binary);
  }

 private:
  enum class Phase { binary, binary_cpu, json, json_cpu, rtt, busy_rtt, done };

  void start(Phase phase) {
    phase_ = phase;
    count_ = 0;
    samples_.clear();
    switch (phase) {
      case Phase::binary:
        framed_.send_json(boost::json::object{{"phase", "binary"}, {"count", settings_.binary}});
        break;
      case Phase::binary_cpu:
      case Phase::json_cpu:
        framed_.send_json(boost::json::object{{"phase", "cpu"}});
        break;
      case Phase::json:
        framed_.send_json(boost::json::object{{"phase", "json"}, {"count", settings_.json}});
        break;
      case Phase::rtt:
        framed_.stream().set_busy_poll(std::chrono::microseconds(0));
        framed_.send_json(boost::json::object{{"phase", "rtt"}, {"busy_poll_us", 0}});
        break;
      case Phase::busy_rtt:
        framed_.stream().set_busy_poll(std::chrono::microseconds(settings_.busy_poll_us));
        framed_.send_json(boost::json::object{{"phase", "rtt"}, {"busy_poll_us", settings_.busy_poll_us}});
        break;
      case Phase::done:
        report();
        finished_();
        break;
    }
  }

  void on_message(const multinode::Message& message) {
    switch (phase_) {
      case Phase::binary:
        if (!message.is_binary() || message.bytes().size() != 64)
          die("unexpected message in the binary phase");
        if (++count_ == 1) {
          first_ = clock_type::now();
          first_cpu_ = cpu_ns();
        }
        if (count_ == settings_.binary) {
          binary_rate_ = static_cast<double>(count_ - 1) / seconds_between(first_, clock_type::now());
          binary_receiver_cpu_ = (cpu_ns() - first_cpu_) / static_cast<double>(count_ - 1);
          start(Phase::binary_cpu);
        }
        break;
      case Phase::binary_cpu:
        binary_sender_cpu_ =
            message.json_value().at("cpu_ns").to_number<double>() / static_cast<double>(settings_.binary);
        start(Phase::json);
        break;
      case Phase::json_cpu:
        json_sender_cpu_ =
            message.json_value().at("cpu_ns").to_number<double>() / static_cast<double>(settings_.json);
        start(Phase::rtt);
        break;
      case Phase::json:
        // Checks order and content: the figure is for messages really decoded.
        if (!message.is_json() || message.json_value().as_object().at("seq").as_int64() != count_) {
          die("JSON message out of order or malformed");
        }
        if (++count_ == 1) {
          first_ = clock_type::now();
          first_cpu_ = cpu_ns();
        }
        if (count_ == settings_.json) {
          json_rate_ = static_cast<double>(count_ - 1) / seconds_between(first_, clock_type::now());
          json_receiver_cpu_ = (cpu_ns() - first_cpu_) / static_cast<double>(count_ - 1);
          start(Phase::json_cpu);
        }
        break;
      case Phase::rtt:
      case Phase::busy_rtt: {
        auto now = clock_type::now();
        if (message.is_binary()) {
          // The first round trips warm up caches and buffers; they are not counted.
          if (count_++ >= 100)
            samples_.push_back(std::chrono::duration<double, std::micro>(now - sent_at_).count());
        }
        long wanted = phase_ == Phase::rtt ? settings_.round_trips : settings_.busy_round_trips;
        if (count_ >= wanted + 100) {
          if (phase_ == Phase::rtt) {
            rtt_median_ = median(samples_);
            rtt_mean_ = mean(samples_);
            start(Phase::busy_rtt);
          } else {
            busy_rtt_median_ = median(samples_);
            busy_rtt_mean_ = mean(samples_);
            start(Phase::done);
          }
          return;
        }
        sent_at_ = clock_type::now();
        framed_.send_binary(std::string_view(ping_));
        break;
      }
      case Phase::done:
        break;
    }
  }

  void report() {
    boost::json::object result{
        {"kind", "ipc"},
        {"impl", "multinode"},
        {"transport", settings_.transport},
        {"binary_64_msgs_per_s", binary_rate_},
        {"binary_messages", settings_.binary},
        {"json_msgs_per_s", json_rate_},
        {"json_messages", settings_.json},
        // CPU time (user and system, syscalls included) per message on each side.
        {"binary_receiver_cpu_ns_per_msg", binary_receiver_cpu_},
        {"binary_sender_cpu_ns_per_msg", binary_sender_cpu_},
        {"json_receiver_cpu_ns_per_msg", json_receiver_cpu_},
        {"json_sender_cpu_ns_per_msg", json_sender_cpu_},
        {"json_message", boost::json::serialize(boost::json::object{
                             {"type", "tick"}, {"seq", 0}, {"ok", true}, {"tags", {"a", "b"}}})},
        {"rtt_us_median", rtt_median_},
        {"rtt_us_mean", rtt_mean_},
        {"round_trips", settings_.round_trips},
        {"busy_poll_us", settings_.busy_poll_us},
        {"busy_rtt_us_median", busy_rtt_median_},
        {"busy_rtt_us_mean", busy_rtt_mean_},
        {"busy_round_trips", settings_.busy_round_trips},
    };
    std::cout << boost::json::serialize(result) << std::endl;
  }

  multinode::FramedStream framed_;
  const Settings& settings_;
  std::function<void()> finished_;
  Phase phase_ = Phase::binary;
  long count_ = 0;
  clock_type::time_point first_, sent_at_;
  std::vector<double> samples_;
  std::string ping_ = std::string(64, 'p');
  double binary_rate_ = 0, json_rate_ = 0, rtt_median_ = 0, rtt_mean_ = 0, busy_rtt_median_ = 0,
         busy_rtt_mean_ = 0;
  double first_cpu_ = 0, binary_receiver_cpu_ = 0, binary_sender_cpu_ = 0, json_receiver_cpu_ = 0,
         json_sender_cpu_ = 0;
};

int run_mesh(const Settings& settings) {
  // nodes = 2: the master (which measures) and one worker (which sends and echoes).
  auto nodes = multinode::listen({.port = 0, .nodes = 2});
  std::optional<Sender> sender;
  std::optional<Measurer> measurer;
  multinode::FramedStream peer;
  boost::asio::steady_timer give_up(nodes.io_context());
  nodes.on_node([&](multinode::Stream stream) {
    auto framed = multinode::frame_stream(stream);
    peer = framed;
    if (nodes.is_master()) {
      measurer.emplace(framed, settings, [&] {
        give_up.cancel();
        nodes.stop();
      });
    } else {
      sender.emplace(framed);
    }
  });
  if (nodes.is_master()) {
    give_up.expires_after(std::chrono::minutes(5));
    give_up.async_wait([](boost::system::error_code error) {
      if (!error) die("no result after 5 minutes");
    });
  }
  // An open stream keeps the event loop busy: close it so that the stop is quick.
  nodes.on_stop([&] {
    give_up.cancel();
    peer.close();
  });
  return nodes.run();
}

int run_fork(const Settings& settings) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) die("socketpair failed");
  pid_t pid = ::fork();
  if (pid < 0) die("fork failed");
  if (pid == 0) {
    ::close(fds[0]);
    boost::asio::io_context io(1);
    Sender sender(multinode::frame_stream(multinode::Stream::adopt(io, fds[1], 0, 0)));
    io.run();  // until the measuring process closes the stream
    ::_exit(0);
  }
  ::close(fds[1]);
  boost::asio::io_context io(1);
  auto stream = multinode::Stream::adopt(io, fds[0], 1, 1);
  Measurer measurer(multinode::frame_stream(stream), settings, [&] { stream.close(); });
  io.run();
  int status = 0;
  ::waitpid(pid, &status, 0);
  return 0;
}

// ------------------------------------------------------------------ raw socketpair

void write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n <= 0) die("write failed");
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

void read_exactly(int fd, char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::read(fd, data, size);
    if (n <= 0) die("read failed");
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

int run_raw(const Settings& settings) {
  // One way: 64-byte messages written 1024 at a time, read in 64 KiB chunks.
  constexpr std::size_t message = 64, batch = 1024;
  double one_way_rate;
  {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) die("socketpair failed");
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(fds[0]);
      std::string block(message * batch, 'x');
      for (long sent = 0; sent < settings.binary; sent += static_cast<long>(batch)) {
        std::size_t n = std::min<std::size_t>(batch, static_cast<std::size_t>(settings.binary - sent));
        write_all(fds[1], block.data(), n * message);
      }
      ::_exit(0);
    }
    ::close(fds[1]);
    std::vector<char> buffer(std::size_t{64} * 1024);
    std::size_t total = static_cast<std::size_t>(settings.binary) * message, got = 0;
    clock_type::time_point first;
    while (got < total) {
      ssize_t n = ::read(fds[0], buffer.data(), buffer.size());
      if (n <= 0) die("raw read failed");
      if (got == 0) first = clock_type::now();
      got += static_cast<std::size_t>(n);
    }
    // Messages after the first read, over the time they took.
    one_way_rate =
        static_cast<double>(total - message * batch) / message / seconds_between(first, clock_type::now());
    ::close(fds[0]);
    ::waitpid(pid, nullptr, 0);
  }
  // Round trip: blocking write and read of 64 bytes.
  std::vector<double> samples;
  {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) die("socketpair failed");
    long total = settings.round_trips + 100;
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(fds[0]);
      char buffer[message];
      for (long i = 0; i < total; ++i) {
        read_exactly(fds[1], buffer, message);
        write_all(fds[1], buffer, message);
      }
      ::_exit(0);
    }
    ::close(fds[1]);
    char buffer[message] = {};
    for (long i = 0; i < total; ++i) {
      auto start = clock_type::now();
      write_all(fds[0], buffer, message);
      read_exactly(fds[0], buffer, message);
      if (i >= 100)
        samples.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - start).count());
    }
    ::close(fds[0]);
    ::waitpid(pid, nullptr, 0);
  }
  boost::json::object result{
      {"kind", "ipc"},
      {"impl", "raw"},
      {"binary_64_msgs_per_s", one_way_rate},
      {"binary_messages", settings.binary},
      {"batch", static_cast<long>(batch)},
      {"rtt_us_median", median(samples)},
      {"rtt_us_mean", mean(samples)},
      {"round_trips", settings.round_trips},
  };
  std::cout << boost::json::serialize(result) << std::endl;
  return 0;
}

// ------------------------------------------------------------------ shared-memory ring

// One direction: a single-producer single-consumer ring of 64-byte slots in
// memory both processes map. The reader polls for spin_us, then sleeps on a
// futex; the writer makes the system call only when the reader sleeps.
struct Ring {
  static constexpr std::size_t slots = 1024, slot_size = 64;
  alignas(64) std::atomic<std::uint64_t> head{0};  // written by the producer
  alignas(64) std::atomic<std::uint64_t> tail{0};  // written by the consumer
  alignas(64) std::atomic<std::uint32_t> sleeping{0};
  alignas(64) char data[slots][slot_size];

  void push(const char* message) {
    std::uint64_t at = head.load(std::memory_order_relaxed);
    while (at - tail.load(std::memory_order_acquire) >= slots) {
    }
    std::memcpy(data[at % slots], message, slot_size);
    head.store(at + 1, std::memory_order_seq_cst);
    if (sleeping.exchange(0, std::memory_order_seq_cst) != 0) {
      ::syscall(SYS_futex, &sleeping, FUTEX_WAKE, 1, nullptr, nullptr, 0);
    }
  }

  void pop(char* message, std::chrono::microseconds spin) {
    std::uint64_t at = tail.load(std::memory_order_relaxed);
    auto give_up = clock_type::now() + spin;
    while (head.load(std::memory_order_acquire) == at) {
      if (clock_type::now() < give_up) continue;
      sleeping.store(1, std::memory_order_seq_cst);
      // Checked again after announcing the sleep: a push in between either sees
      // the flag (and wakes us) or is seen here.
      if (head.load(std::memory_order_seq_cst) != at) {
        sleeping.store(0, std::memory_order_relaxed);
        break;
      }
      ::syscall(SYS_futex, &sleeping, FUTEX_WAIT, 1, nullptr, nullptr, 0);
    }
    std::memcpy(message, data[at % Ring::slots], Ring::slot_size);
    tail.store(at + 1, std::memory_order_release);
  }
};

int run_shm_ring(const Settings& settings) {
  void* memory = ::mmap(nullptr, 2 * sizeof(Ring), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) die("mmap failed");
  auto* to_child = new (memory) Ring;
  auto* to_parent = new (static_cast<char*>(memory) + sizeof(Ring)) Ring;
  const auto spin = std::chrono::microseconds(settings.spin_us);
  const long total = settings.round_trips + 100;
  pid_t pid = ::fork();
  if (pid < 0) die("fork failed");
  if (pid == 0) {
    char message[Ring::slot_size];
    for (long i = 0; i < total; ++i) {
      to_child->pop(message, spin);
      to_parent->push(message);
    }
    ::_exit(0);
  }
  std::vector<double> samples;
  char message[Ring::slot_size] = {};
  for (long i = 0; i < total; ++i) {
    auto start = clock_type::now();
    to_child->push(message);
    to_parent->pop(message, spin);
    if (i >= 100)
      samples.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - start).count());
  }
  ::waitpid(pid, nullptr, 0);
  boost::json::object result{
      {"kind", "ipc"},
      {"impl", "shm-ring"},
      {"spin_us", settings.spin_us},
      {"rtt_us_median", median(samples)},
      {"rtt_us_mean", mean(samples)},
      {"round_trips", settings.round_trips},
  };
  std::cout << boost::json::serialize(result) << std::endl;
  return 0;
}

Settings parse(int argc, char** argv) {
  const char* usage =
      "usage: ipc multinode [--transport mesh|fork] [--binary N] [--json N] [--round-trips N]\n"
      "                     [--busy-poll-us U] [--busy-round-trips N]\n"
      "       ipc raw [--binary N] [--round-trips N]\n"
      "       ipc shm-ring [--round-trips N] [--spin-us U]\n";
  Settings settings;
  if (argc < 2) die(usage);
  settings.implementation = argv[1];
  if (settings.implementation != "multinode" && settings.implementation != "raw" &&
      settings.implementation != "shm-ring") {
    die(usage);
  }
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (i + 1 >= argc) die(usage);
    std::string value = argv[++i];
    auto number = [&] {
      char* end = nullptr;
      long n = std::strtol(value.c_str(), &end, 10);
      if (*end != '\0' || n < 0) die(std::string(arg) + " wants a whole number");
      return n;
    };
    if (arg == "--transport" && (value == "mesh" || value == "fork"))
      settings.transport = value;
    else if (arg == "--binary")
      settings.binary = number();
    else if (arg == "--json")
      settings.json = number();
    else if (arg == "--round-trips")
      settings.round_trips = number();
    else if (arg == "--busy-round-trips")
      settings.busy_round_trips = number();
    else if (arg == "--busy-poll-us")
      settings.busy_poll_us = number();
    else if (arg == "--spin-us")
      settings.spin_us = number();
    else
      die(usage);
  }
  if (settings.binary < 2 || settings.json < 2 || settings.round_trips < 1 || settings.busy_round_trips < 1) {
    die("counts must be at least 2 messages and 1 round trip");
  }
  return settings;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings = parse(argc, argv);
  if (settings.implementation == "raw") return run_raw(settings);
  if (settings.implementation == "shm-ring") return run_shm_ring(settings);
  return settings.transport == "mesh" ? run_mesh(settings) : run_fork(settings);
}
