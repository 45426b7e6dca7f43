// The master's operator interface on the real hello: `status` and `metrics` over
// the control socket (parsed as JSON and by Prometheus's own Python parser) agree
// with the requests the test made and with GET /metrics; reload, scale N and stop
// do what HUP, TTIN/TTOU and TERM do; unknown commands, silent and oversized
// clients get their one line; a flood of idle control clients leaves HTTP served.
#include "process.hpp"

#include <multinode/control.hpp>

#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace multinode::test {
namespace {

namespace json = boost::json;

int connect_unix(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

json::object status_of(const std::string& path) {
  const std::string reply = control_command(path, "status", 10s);
  EXPECT_EQ(reply.back(), '\n');
  return json::parse(reply).as_object();
}

std::uint64_t number(const json::value& value) {
  return value.is_null() ? ~std::uint64_t{0} : json::value_to<std::uint64_t>(value);
}

// Prometheus text parsed by prometheus_client (Debian's python3-prometheus-client):
// sample "name{label=value,...}" -> value, and family name -> type.
struct Exposition {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  bool parsed = false;
};

Exposition parse_prometheus(const std::string& text) {
  Exposition result;
  char pattern[] = "/tmp/multinode-metrics-XXXXXX";
  ::close(::mkstemp(pattern));
  std::ofstream(pattern, std::ios::binary) << text;
  const std::string script =
      "import sys\n"
      "from prometheus_client.parser import text_string_to_metric_families\n"
      "for f in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
      "    print('family', f.name, f.type)\n"
      "    for s in f.samples:\n"
      "        labels = ','.join(k + '=' + v for k, v in sorted(s.labels.items()))\n"
      "        print('sample', s.name + '{' + labels + '}', repr(float(s.value)))\n"
      "print('end')\n";
  const std::string command = "/usr/bin/python3 -c \"$MULTINODE_SCRIPT\" " + std::string(pattern);
  ::setenv("MULTINODE_SCRIPT", script.c_str(), 1);
  FILE* pipe = ::popen(command.c_str(), "r");
  std::string out;
  char buffer[4096];
  while (pipe != nullptr && std::fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
  const int status = pipe != nullptr ? ::pclose(pipe) : -1;
  ::unlink(pattern);
  std::istringstream lines(out);
  for (std::string kind, name, value; lines >> kind;) {
    if (kind == "end") {
      result.parsed = status == 0;
      break;
    }
    lines >> name >> value;
    if (kind == "family") result.types[name] = value;
    if (kind == "sample") result.samples[name] = std::stod(value);
  }
  EXPECT_TRUE(result.parsed && !result.types.empty()) << "prometheus_client did not parse:\n"
                                                      << text << "\n"
                                                      << out;
  return result;
}

double sample(const Exposition& e, const std::string& name) {
  const auto it = e.samples.find(name);
  if (it != e.samples.end()) return it->second;
  ADD_FAILURE() << "no sample " << name;
  return -1;
}

std::string type(const Exposition& e, const std::string& family) {
  const auto it = e.types.find(family);
  if (it != e.types.end()) return it->second;
  ADD_FAILURE() << "no family " << family;
  return "";
}

std::string key(const std::string& name, std::uint64_t id, std::uint64_t slot) {
  return name + "{id=" + std::to_string(id) + ",slot=" + std::to_string(slot) + "}";
}

// GET /metrics from the metrics endpoint: the body, after checking the response's framing.
std::string scrape(std::uint16_t port,
                   const std::string& request = "GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n") {
  const int fd = connect_tcp(port, 5s);
  if (fd < 0) return "(no connection)";
  write_all(fd, request);
  const std::string response = read_until_closed(fd, 5s);
  ::close(fd);
  return response;
}

std::string body_of(const std::string& response) {
  const auto end = response.find("\r\n\r\n");
  EXPECT_EQ(response.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << response;
  EXPECT_NE(response.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << response;
  if (end == std::string::npos) return {};
  const std::string body = response.substr(end + 4);
  EXPECT_NE(response.find("Content-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos);
  return body;
}

// Waits (bounded) until status shows `ready` ready workers and nothing else.
json::object wait_for_workers(const std::string& path, std::size_t ready) {
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  json::object status;
  while (std::chrono::steady_clock::now() < deadline) {
    status = status_of(path);
    const auto& workers = status["workers"].as_array();
    std::size_t count = 0;
    for (const auto& w : workers) count += w.as_object().at("state") == "ready" ? 1 : 0;
    if (count == ready && workers.size() == ready) return status;
    std::this_thread::sleep_for(50ms);
  }
  ADD_FAILURE() << "never " << ready << " ready workers alone: " << json::serialize(status);
  return status;
}

ChildProcess start_hello(const std::string& socket, std::uint16_t port, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {
      example_path("hello"), "--port", std::to_string(port), "--host", "127.0.0.1", "--control", socket};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return ChildProcess::start(argv);
}

TEST(ControlSocket, StatusAndMetricsAgreeWithTheRequestsMadeAndWithGetMetrics) {
  TempDir dir{"multinode-control"};
  const std::string socket = dir.file("control.sock");
  const std::uint16_t port = free_port();
  const std::uint16_t metrics_port = free_port();
  auto server = start_hello(
      socket, port, {"--nodes", "3", "--metrics-listen", "127.0.0.1:" + std::to_string(metrics_port)});
  ASSERT_TRUE(server.wait_for_log_count("is ready", 2, 10s)) << server.error_output();

  struct stat st {};
  ASSERT_EQ(::stat(socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, ::geteuid());

  std::map<pid_t, std::uint64_t> served;
  for (int i = 0; i < 60; ++i) {
    const pid_t pid = greet(port);
    ASSERT_GT(pid, 0) << server.error_output();
    ++served[pid];
  }

  // A server may close a connection only once the client's end is seen (a lingering
  // close): wait (bounded) until every process has let go of the test's connections.
  json::object status;
  for (const auto deadline = std::chrono::steady_clock::now() + 10s;
       std::chrono::steady_clock::now() < deadline;) {
    status = status_of(socket);
    std::uint64_t open = number(status["master"].as_object().at("connections"));
    for (const auto& w : status["workers"].as_array()) open += number(w.as_object().at("connections"));
    if (open == 0) break;
    std::this_thread::sleep_for(20ms);
  }
  const json::object& master = status["master"].as_object();
  EXPECT_EQ(number(master.at("pid")), static_cast<std::uint64_t>(server.pid()));
  EXPECT_EQ(number(master.at("generation")), 0u);
  EXPECT_GT(master.at("uptime_s").to_number<double>(), 0.0);
  EXPECT_EQ(number(master.at("connections")), 0u);
  EXPECT_EQ(number(master.at("requests")), served[server.pid()]);
  const json::array& workers = status["workers"].as_array();
  ASSERT_EQ(workers.size(), 2u) << json::serialize(status);
  const auto children = child_pids(server.pid());
  std::set<pid_t> pids;
  std::uint64_t total = number(master.at("requests"));
  for (const auto& value : workers) {
    const json::object& w = value.as_object();
    for (const char* k : {"id", "slot", "pid", "state", "uptime_s", "restarts", "rss_bytes",
                          "heartbeat_age_ms", "connections", "requests"}) {
      EXPECT_TRUE(w.contains(k)) << k;
    }
    const auto pid = static_cast<pid_t>(number(w.at("pid")));
    pids.insert(pid);
    EXPECT_EQ(w.at("state"), "ready");
    EXPECT_EQ(number(w.at("restarts")), 0u);
    EXPECT_GT(number(w.at("rss_bytes")), 100000u);
    EXPECT_LT(number(w.at("heartbeat_age_ms")), 30000u);
    EXPECT_EQ(number(w.at("connections")), 0u);
    EXPECT_EQ(number(w.at("requests")), served[pid]) << "pid " << pid;
    total += number(w.at("requests"));
  }
  EXPECT_EQ(pids, std::set<pid_t>(children.begin(), children.end()));
  EXPECT_EQ(total, 60u);

  // The same figures as Prometheus text, over the socket and over HTTP.
  const Exposition over_socket = parse_prometheus(control_command(socket, "metrics"));
  const Exposition over_http = parse_prometheus(body_of(scrape(metrics_port)));
  for (const Exposition* e : {&over_socket, &over_http}) {
    EXPECT_EQ(type(*e, "multinode_workers_ready"), "gauge");
    EXPECT_EQ(type(*e, "multinode_worker_restarts"), "counter");  // the parser drops _total
    EXPECT_EQ(type(*e, "multinode_requests"), "counter");
    EXPECT_EQ(type(*e, "multinode_worker_rss_bytes"), "gauge");
    EXPECT_EQ(type(*e, "multinode_connections_open"), "gauge");
    EXPECT_EQ(type(*e, "multinode_worker_heartbeat_age_seconds"), "gauge");
    EXPECT_EQ(sample(*e, "multinode_workers_ready{}"), 2.0);
    EXPECT_EQ(sample(*e, key("multinode_requests_total", 0, 0)), static_cast<double>(served[server.pid()]));
    EXPECT_EQ(sample(*e, key("multinode_connections_open", 0, 0)), 0.0);
    for (const auto& value : workers) {
      const json::object& w = value.as_object();
      const auto id = number(w.at("id"));
      const auto slot = number(w.at("slot"));
      EXPECT_EQ(sample(*e, key("multinode_requests_total", id, slot)),
                static_cast<double>(number(w.at("requests"))));
      EXPECT_EQ(sample(*e, key("multinode_connections_open", id, slot)), 0.0);
      EXPECT_EQ(sample(*e, key("multinode_worker_restarts_total", id, slot)), 0.0);
      EXPECT_GT(sample(*e, key("multinode_worker_rss_bytes", id, slot)), 100000.0);
      EXPECT_LT(sample(*e, key("multinode_worker_heartbeat_age_seconds", id, slot)), 30.0);
    }
  }

  // A worker killed and replaced: its slot counts one restart, under the new id.
  const pid_t victim = static_cast<pid_t>(number(workers[0].as_object().at("pid")));
  const auto victim_slot = number(workers[0].as_object().at("slot"));
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  ASSERT_TRUE(server.wait_for_log_count("is ready", 3, 10s)) << server.error_output();
  status = wait_for_workers(socket, 2);
  for (const auto& value : status["workers"].as_array()) {
    const json::object& w = value.as_object();
    EXPECT_NE(number(w.at("pid")), static_cast<std::uint64_t>(victim));
    EXPECT_EQ(number(w.at("restarts")), number(w.at("slot")) == victim_slot ? 1u : 0u);
    if (number(w.at("slot")) == victim_slot) {
      EXPECT_EQ(number(w.at("requests")), 0u);
    }
  }
  const Exposition after = parse_prometheus(body_of(scrape(metrics_port)));
  for (const auto& value : status["workers"].as_array()) {
    const json::object& w = value.as_object();
    EXPECT_EQ(sample(after, key("multinode_worker_restarts_total", number(w.at("id")), number(w.at("slot")))),
              static_cast<double>(number(w.at("restarts"))));
  }
}

TEST(ControlSocket, AHungWorkerDoesNotHoldStatusUpAndItsHeartbeatAgeShowsIt) {
  TempDir dir{"multinode-control"};
  const std::string socket = dir.file("control.sock");
  const std::uint16_t port = free_port();
  auto server = start_hello(socket, port, {"--nodes", "3", "--no-master-listen"});
  ASSERT_TRUE(server.wait_for_log_count("is ready", 3, 10s)) << server.error_output();
  const json::object before = wait_for_workers(socket, 3);
  const auto& first = before.at("workers").as_array()[0].as_object();
  const auto hung = static_cast<pid_t>(number(first.at("pid")));
  ASSERT_EQ(::kill(hung, SIGSTOP), 0);
  std::this_thread::sleep_for(1500ms);  // past the 1 s beat interval of the default heartbeat_timeout
  // Answered (the gathering gives up on it after at most 1 s), with the others' figures.
  const json::object status = status_of(socket);
  ::kill(hung, SIGCONT);
  const auto& workers = status.at("workers").as_array();
  ASSERT_EQ(workers.size(), 3u) << json::serialize(status);
  for (const auto& value : workers) {
    const json::object& w = value.as_object();
    EXPECT_EQ(w.at("state"), "ready");
    if (static_cast<pid_t>(number(w.at("pid"))) == hung) {
      EXPECT_GE(number(w.at("heartbeat_age_ms")), 1500u) << json::serialize(w);
      EXPECT_EQ(number(w.at("requests")), 0u) << "its last figures";
    } else {
      EXPECT_EQ(number(w.at("requests")), 0u) << "answered: not null";
    }
  }
}

TEST(ControlSocket, TheMetricsEndpointAnswersOnlyGetMetrics) {
  TempDir dir{"multinode-control"};
  const std::uint16_t metrics_port = free_port();
  auto server =
      start_hello(dir.file("c.sock"), free_port(),
                  {"--nodes", "2", "--metrics-listen", "127.0.0.1:" + std::to_string(metrics_port)});
  ASSERT_TRUE(server.wait_for_log_count("is ready", 1, 10s)) << server.error_output();
  const std::string head = scrape(metrics_port, "HEAD /metrics HTTP/1.1\r\nHost: m\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head;
  EXPECT_EQ(head.substr(head.find("\r\n\r\n") + 4), "");
  EXPECT_EQ(scrape(metrics_port, "GET / HTTP/1.1\r\nHost: m\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  const std::string post = scrape(metrics_port, "POST /metrics HTTP/1.1\r\nHost: m\r\n\r\n");
  EXPECT_EQ(post.rfind("HTTP/1.1 405", 0), 0u) << post;
  EXPECT_NE(post.find("Allow: GET, HEAD\r\n"), std::string::npos);
  EXPECT_EQ(scrape(metrics_port, "GET /metrics HTTP/1.1\n\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(scrape(metrics_port, "\x16\x03\x01 binary\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(
      scrape(metrics_port, "GET /metrics HTTP/1.1\r\n" + std::string(9000, 'x')).rfind("HTTP/1.1 431", 0),
      0u);
}

TEST(ControlSocket, ReloadScaleAndStopDoWhatTheSignalsDo) {
  TempDir dir{"multinode-control"};
  const std::string socket = dir.file("control.sock");
  const std::uint16_t port = free_port();
  auto server = start_hello(socket, port, {"--nodes", "3"});
  ASSERT_TRUE(server.wait_for_log_count("is ready", 2, 10s)) << server.error_output();
  const json::object before = wait_for_workers(socket, 2);

  // reload: every worker replaced, the generation counts it.
  EXPECT_EQ(control_command(socket, "reload"),
            "ok: rolling restart of 2 workers begun: each old worker stops once its replacement is ready\n");
  ASSERT_TRUE(server.wait_for_log_count("is ready", 4, 15s)) << server.error_output();
  json::object after = wait_for_workers(socket, 2);
  EXPECT_EQ(number(after["master"].as_object().at("generation")), 1u);
  std::set<std::uint64_t> old_ids, new_ids;
  for (const auto& w : before.at("workers").as_array()) old_ids.insert(number(w.as_object().at("id")));
  for (const auto& w : after.at("workers").as_array()) new_ids.insert(number(w.as_object().at("id")));
  for (const auto id : new_ids) EXPECT_FALSE(old_ids.count(id)) << "worker " << id << " was not replaced";
  EXPECT_GT(greet(port), 0);

  // scale N sets the number of workers (the master serving besides them).
  EXPECT_EQ(control_command(socket, "scale 4"),
            "ok: 4 workers (was 2) and the master: 5 serving processes\n");
  after = wait_for_workers(socket, 4);
  std::set<std::uint64_t> slots;
  for (const auto& w : after.at("workers").as_array()) slots.insert(number(w.as_object().at("slot")));
  EXPECT_EQ(slots, (std::set<std::uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(control_command(socket, "scale 1"), "ok: 1 worker (was 4) and the master: 2 serving processes\n");
  after = wait_for_workers(socket, 1);
  EXPECT_EQ(number(after.at("workers").as_array()[0].as_object().at("slot")), 1u);
  EXPECT_EQ(control_command(socket, "scale 0"),
            "ok: 0 workers (was 1) and the master: 1 serving processes\n");
  wait_for_workers(socket, 0);
  EXPECT_EQ(greet(port), server.pid()) << "the master alone serves";

  // stop: a graceful stop, the socket file removed.
  EXPECT_EQ(control_command(socket, "stop"), "ok: stopping gracefully\n");
  const auto status = server.wait(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << server.error_output();
  EXPECT_NE(server.error_output().find("stopping gracefully: stop on the control socket"), std::string::npos);
  EXPECT_NE(::access(socket.c_str(), F_OK), 0) << "the socket file is removed at the stop";
}

TEST(ControlSocket, ScaleZeroIsRefusedWhenTheMasterDoesNotServe) {
  TempDir dir{"multinode-control"};
  const std::string socket = dir.file("control.sock");
  auto server = start_hello(socket, free_port(), {"--nodes", "1", "--no-master-listen"});
  ASSERT_TRUE(server.wait_for_log_count("is ready", 1, 10s)) << server.error_output();
  const std::string reply = control_command(socket, "scale 0");
  EXPECT_EQ(reply.rfind("error: scale 0 would leave nothing serving", 0), 0u) << reply;
  EXPECT_EQ(control_command(socket, "scale 2"), "ok: 2 workers (was 1)\n");
  wait_for_workers(socket, 2);
  const json::object status = status_of(socket);
  EXPECT_FALSE(status.at("master").as_object().contains("requests")) << "the master does not serve";
}

TEST(ControlSocket, BadClientsGetOneLineAndAreCutOff) {
  TempDir dir{"multinode-control"};
  const std::string socket = dir.file("control.sock");
  auto server = start_hello(socket, free_port(), {"--nodes", "2", "--control-timeout", "500"});
  ASSERT_TRUE(server.wait_for_log_count("is ready", 1, 10s)) << server.error_output();

  const std::string unknown = control_command(socket, "frobnicate");
  EXPECT_EQ(unknown.rfind("error: unknown command \"frobnicate\"", 0), 0u) << unknown;
  EXPECT_EQ(unknown.find('\n'), unknown.size() - 1) << "one line";

  // A client that sends nothing is cut off after control_timeout, with a line saying so.
  {
    const int fd = connect_unix(socket);
    ASSERT_GE(fd, 0);
    bool closed = false;
    const std::string reply = read_until_closed(fd, 5s, &closed);
    ::close(fd);
    EXPECT_TRUE(closed);
    EXPECT_EQ(reply, "error: no complete command line within 500 ms (control_timeout): closing\n");
  }
  // A line longer than the bound: answered at once, and closed.
  {
    const int fd = connect_unix(socket);
    ASSERT_GE(fd, 0);
    write_all(fd, std::string(300, 's'));
    bool closed = false;
    const std::string reply = read_until_closed(fd, 5s, &closed);
    ::close(fd);
    EXPECT_TRUE(closed);
    EXPECT_EQ(reply, "error: command line longer than 256 bytes\n");
  }
  // Much more than that, newline-free: still cut off, the master unharmed.
  {
    const int fd = connect_unix(socket);
    ASSERT_GE(fd, 0);
    write_all(fd, std::string(100000, 'x'));
    bool closed = false;
    read_until_closed(fd, 5s, &closed);
    ::close(fd);
    EXPECT_TRUE(closed);
  }
  EXPECT_EQ(status_of(socket)["workers"].as_array().size(), 1u);
}

TEST(ControlSocket, AFloodOfIdleControlClientsDoesNotStopServing) {
  TempDir dir{"multinode-control"};
  const std::string socket = dir.file("control.sock");
  const std::uint16_t port = free_port();
  auto server = start_hello(socket, port, {"--nodes", "2", "--no-restart"});
  ASSERT_TRUE(server.wait_for_log_count("is ready", 1, 10s)) << server.error_output();
  std::vector<int> idle;
  for (int i = 0; i < 150; ++i) {
    const int fd = connect_unix(socket);
    ASSERT_GE(fd, 0) << i;
    idle.push_back(fd);
  }
  // Every process keeps serving, the master included.
  std::set<pid_t> answered;
  for (int i = 0; i < 200 && answered.size() < 2; ++i) {
    const pid_t pid = greet(port);
    ASSERT_GT(pid, 0) << server.error_output();
    answered.insert(pid);
  }
  EXPECT_EQ(answered.size(), 2u);
  // Past control_max_clients (64) the rest were told so and closed at once (waited
  // for, bounded, as the master may still be accepting the last of them).
  std::set<int> refused;
  for (const auto deadline = std::chrono::steady_clock::now() + 4s;
       refused.size() < 150u - 64u && std::chrono::steady_clock::now() < deadline;) {
    for (const int fd : idle) {
      if (refused.count(fd)) continue;
      const auto line = read_line(fd, 1ms);
      if (line && line->rfind("error: too many control clients at once", 0) == 0) refused.insert(fd);
    }
  }
  EXPECT_EQ(refused.size(), 150u - 64u);
  for (const int fd : idle) ::close(fd);
  // Once they are gone the socket answers again.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  std::error_code error;
  std::string reply;
  while (std::chrono::steady_clock::now() < deadline) {
    reply = control_command(socket, "status", 5s, error);
    if (!error && reply.rfind("{", 0) == 0) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(reply.rfind("{\"master\":", 0), 0u) << reply << error.message() << server.error_output();
  EXPECT_GT(greet(port), 0);
}

TEST(ControlSocket, AStaleSocketIsReplacedAndALiveOneRefused) {
  TempDir dir{"multinode-control"};
  const std::string socket = dir.file("control.sock");
  {
    // A socket file nobody listens on any more: what a killed master leaves.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket.c_str(), sizeof address.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ::close(fd);
  }
  auto first = start_hello(socket, free_port(), {"--nodes", "1"});
  ASSERT_TRUE(first.wait_for_output("control socket at " + socket, 10s, true)) << first.error_output();
  EXPECT_EQ(status_of(socket)["master"].as_object().at("pid"), first.pid());

  auto second = start_hello(socket, free_port(), {"--nodes", "1"});
  const auto status = second.wait(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  EXPECT_NE(second.error_output().find("is in use: another master answers on it"), std::string::npos)
      << second.error_output();
  // The first keeps its socket.
  EXPECT_EQ(status_of(socket)["master"].as_object().at("pid"), first.pid());

  const std::string not_a_socket = dir.file("plain");
  std::ofstream(not_a_socket) << "x";
  auto third = start_hello(not_a_socket, free_port(), {"--nodes", "1"});
  ASSERT_TRUE(third.wait(10s).has_value());
  EXPECT_NE(third.error_output().find("exists and is not a socket"), std::string::npos)
      << third.error_output();
}

TEST(ControlSocket, TheClientSaysWhatToDoWhenNoMasterListens) {
  TempDir dir{"multinode-control"};
  std::error_code error;
  const std::string reply = control_command(dir.file("none.sock"), "status", 2s, error);
  EXPECT_TRUE(reply.empty());
  EXPECT_EQ(error, std::errc::no_such_file_or_directory);
  try {
    control_command(dir.file("none.sock"), "status", 2s);
    ADD_FAILURE() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("is the master running with control_socket = "), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace multinode::test
