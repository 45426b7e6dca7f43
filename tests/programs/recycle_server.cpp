// An HTTP server for the recycling tests: GET /grow?mb=N makes the answering
// process take N MiB more resident memory (kept until it exits); any other
// request gets "pid <pid>\n".
//
//   recycle_server --port N [--nodes N] [--no-master-listen] [--max-rss MB]
//                  [--max-requests N] [--restart-delay MS] [--limit N]
//                  [--worker-exit-above ID]
// --worker-exit-above makes every worker whose id is above ID exit with status 3
// before it reports ready: the first workers serve, every replacement fails.
#include <multinode/http.hpp>
#include <multinode/nodes.hpp>

#include <unistd.h>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::vector<std::unique_ptr<char[]>> held;  // what /grow took: touched, so resident

void grow(std::size_t mebibytes) {
  for (std::size_t i = 0; i < mebibytes; ++i) {
    auto block = std::make_unique<char[]>(std::size_t{1} << 20);
    std::memset(block.get(), 1, std::size_t{1} << 20);
    held.push_back(std::move(block));
  }
}

}  // namespace

int main(int argc, char** argv) {
  multinode::Options options{.port = 0, .nodes = 2, .host = "127.0.0.1"};
  std::optional<unsigned> worker_exit_above;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--no-master-listen") {
      options.master_listen = false;
      continue;
    }
    if (i + 1 >= argc) {
      std::cerr << "recycle_server: " << arg << " wants a value\n";
      return 2;
    }
    const char* value = argv[++i];
    const auto number = std::strtoull(value, nullptr, 10);
    if (arg == "--port")
      options.port = static_cast<std::uint16_t>(number);
    else if (arg == "--nodes")
      options.nodes = static_cast<unsigned>(number);
    else if (arg == "--max-rss")
      options.max_rss = number;
    else if (arg == "--max-requests")
      options.max_requests = number;
    else if (arg == "--restart-delay")
      options.restart_delay = std::chrono::milliseconds(number);
    else if (arg == "--limit")
      options.crash_loop_limit = static_cast<unsigned>(number);
    else if (arg == "--worker-exit-above")
      worker_exit_above = static_cast<unsigned>(number);
    else {
      std::cerr << "recycle_server: unknown argument " << arg << "\n";
      return 2;
    }
  }

  const std::string answer = "pid " + std::to_string(::getpid()) + "\n";
  multinode::http::Server server(
      [&answer](multinode::http::Request& request, multinode::http::Response& response) {
        if (request.path() == "/grow") {
          const std::string_view query = request.query();  // mb=N
          std::size_t mebibytes = 0;
          if (query.starts_with("mb="))
            std::from_chars(query.data() + 3, query.data() + query.size(), mebibytes);
          grow(mebibytes);
        }
        response.set("Content-Type", "text/plain");
        response.end(answer);
      });
  auto nodes = multinode::listen(options, server);
  if (!nodes.is_master() && worker_exit_above && nodes.id() > *worker_exit_above) return 3;
  if (nodes.is_master()) std::cout << "port " << nodes.local_port() << std::endl;
  return nodes.run();
}
