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

#include "command_line.hpp"

#include <unistd.h>
#include <chrono>
#include <iostream>
#include <string>
#include <system_error>

int main(int argc, char** argv) {
  multinode::Options options{.port = 8080, .nodes = 2};
  multinode::http::Options http_options;  // --idle-timeout: bench/idle_memory.sh holds idle connections
  CLI::App app{"The original multi-node example: an HTTP server on several processes", "hello"};
  examples::add_listen_options(app, options);
  app.add_flag("--no-master-listen{false}", options.master_listen, "The master only supervises");
  app.add_flag("--no-restart{false}", options.restart_children, "Do not replace a worker that died");
  app.add_option("--log-file", options.log_file, "Log lines to this file (default stderr)");
  examples::add_choice(app, "--log-format", options.log_format,
                       {{"text", multinode::LogFormat::text}, {"json", multinode::LogFormat::json}},
                       "One line of text, or one JSON record, per log line");
  app.add_option("--user", options.user, "Started as root: bind, then run as this user");
  app.add_option("--group", options.group, "With --user: this group");
  examples::add_milliseconds(app, "--heartbeat-timeout", options.heartbeat_timeout,
                             "A worker silent this long (ms) is hung and replaced (0: off)");
  app.add_option("--max-requests", options.max_requests, "Recycle a worker after this many requests");
  app.add_option("--max-requests-jitter", options.max_requests_jitter, "Up to this many more, per worker");
  app.add_option("--max-rss", options.max_rss, "Recycle a worker above this resident memory (MB)");
  app.add_option("--control", options.control_socket, "The control socket's path");
  app.add_option("--metrics-listen", options.metrics_listen, "HOST:PORT where GET /metrics is served");
  examples::add_milliseconds(app, "--control-timeout", options.control_timeout,
                             "A control client's bound (ms)");
  app.add_option("--control-max-clients", options.control_max_clients, "Control clients at once");
  examples::add_balancing_option(app, options);
  examples::add_milliseconds(app, "--idle-timeout", http_options.idle_timeout,
                             "An idle keep-alive connection is closed after this long (ms)");
  if (const auto status = examples::parse(app, argc, argv)) return *status;

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
