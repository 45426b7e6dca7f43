// The original multi-node example in C++: an HTTP server on several processes,
// each answering every request (any method, any path, once the whole request has
// been read) with the node that served it.
//
//   hello [--port N] [--nodes N] [--host ADDRESS] [--no-master-listen] [--no-restart]
//         [--log-file PATH] [--log-format text|json] [--user NAME] [--group NAME]
//         [--heartbeat-timeout MS] [--max-requests N] [--max-requests-jitter N] [--max-rss MB]
//         [--control PATH] [--metrics-listen HOST:PORT] [--control-timeout MS] [--control-max-clients N]
//         [--balancing shared|reuseport] [--idle-timeout MS]
#include <multinode/http.hpp>
#include <multinode/nodes.hpp>

#include <unistd.h>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <system_error>

int main(int argc, char** argv) {
  multinode::Options options{.port = 8080, .nodes = 2};
  multinode::http::Options http_options;  // --idle-timeout: bench/idle_memory.sh holds idle connections
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--port" && has_value)
      options.port = static_cast<std::uint16_t>(std::atoi(argv[++i]));
    else if (arg == "--nodes" && has_value)
      options.nodes = static_cast<unsigned>(std::atoi(argv[++i]));
    else if (arg == "--host" && has_value)
      options.host = argv[++i];
    else if (arg == "--no-master-listen")
      options.master_listen = false;
    else if (arg == "--no-restart")
      options.restart_children = false;
    else if (arg == "--log-file" && has_value)
      options.log_file = argv[++i];
    else if (arg == "--user" && has_value)
      options.user = argv[++i];
    else if (arg == "--group" && has_value)
      options.group = argv[++i];
    else if (arg == "--heartbeat-timeout" && has_value)
      options.heartbeat_timeout = std::chrono::milliseconds{std::atoll(argv[++i])};
    else if (arg == "--max-requests" && has_value)
      options.max_requests = std::strtoull(argv[++i], nullptr, 10);
    else if (arg == "--max-requests-jitter" && has_value)
      options.max_requests_jitter = std::strtoull(argv[++i], nullptr, 10);
    else if (arg == "--max-rss" && has_value)
      options.max_rss = std::strtoull(argv[++i], nullptr, 10);
    else if (arg == "--control" && has_value)
      options.control_socket = argv[++i];
    else if (arg == "--metrics-listen" && has_value)
      options.metrics_listen = argv[++i];
    else if (arg == "--control-timeout" && has_value)
      options.control_timeout = std::chrono::milliseconds{std::atoll(argv[++i])};
    else if (arg == "--control-max-clients" && has_value)
      options.control_max_clients = static_cast<unsigned>(std::atoi(argv[++i]));
    else if (arg == "--balancing" && has_value) {
      const std::string_view mode = argv[++i];
      if (mode == "shared") {
        options.balancing = multinode::Balancing::shared;
      } else if (mode == "reuseport") {
        options.balancing = multinode::Balancing::reuseport;
      } else {
        std::cerr << "hello: --balancing must be shared or reuseport, not '" << mode << "'\n";
        return 2;
      }
    } else if (arg == "--idle-timeout" && has_value) {
      http_options.idle_timeout = std::chrono::milliseconds{std::atoll(argv[++i])};
    } else if (arg == "--log-format" && has_value) {
      const std::string_view format = argv[++i];
      if (format == "text") {
        options.log_format = multinode::LogFormat::text;
      } else if (format == "json") {
        options.log_format = multinode::LogFormat::json;
      } else {
        std::cerr << "hello: --log-format must be text or json, not '" << format << "'\n";
        return 2;
      }
    } else {
      std::cerr << "usage: hello [--port N] [--nodes N] [--host ADDRESS] [--no-master-listen] [--no-restart]"
                   " [--log-file PATH] [--log-format text|json] [--user NAME] [--group NAME]"
                   " [--heartbeat-timeout MS] [--max-requests N] [--max-requests-jitter N] [--max-rss MB]\n"
                   "       [--control PATH] [--metrics-listen HOST:PORT] [--control-timeout MS] "
                   "[--control-max-clients N] [--balancing shared|reuseport] [--idle-timeout MS]\n";
      return 2;
    }
  }

  std::string greeting;  // set once listen() has told this process its id
  multinode::http::Server server(
      [&greeting](multinode::http::Request&, multinode::http::Response& res) {
        res.set("Content-Type", "text/plain");
        res.end(greeting);
      },
      http_options);
  multinode::Nodes nodes;
  try {
    nodes = multinode::listen(options, server);
  } catch (const std::system_error& error) {  // what failed and what to do, e.g. a port in use
    std::cerr << "hello: " << error.what() << "\n";
    return 1;
  }
  greeting = "Hello from node " + std::to_string(nodes.id()) + " (pid " + std::to_string(::getpid()) + ")\n";
  return nodes.run();
}
