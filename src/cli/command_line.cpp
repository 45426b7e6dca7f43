// The `multinode` command line (command_line.hpp), with Debian's CLI11.
#include "cli/command_line.hpp"

#include <CLI/CLI.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <thread>

#ifndef MULTINODE_VERSION
#error "MULTINODE_VERSION is defined by CMake (the project's version)"
#endif

namespace multinode::cli {

std::string default_control_path() {
  if (const char* runtime = std::getenv("XDG_RUNTIME_DIR"); runtime != nullptr && *runtime == '/')
    return std::string(runtime) + "/multinode.sock";
  if (::geteuid() == 0) return "/run/multinode.sock";
  return "/tmp/multinode-" + std::to_string(::geteuid()) + "/control.sock";
}

namespace {

// A word CLI11 checks against the list, mapped to the library's enum once parsed.
template <typename Enum>
void add_choice(CLI::App& app, const std::string& name, Enum& target,
                const std::map<std::string, Enum>& choices, const std::string& help) {
  std::vector<std::string> words;
  for (const auto& [word, value] : choices) words.push_back(word);
  app.add_option_function<std::string>(
         name, [&target, choices](const std::string& word) { target = choices.at(word); }, help)
      ->check(CLI::IsMember(words))
      ->type_name("WORD");
}

}  // namespace

Invocation parse_command_line(const std::vector<std::string>& args) {
  Invocation result;
  CLI::App app{"multinode: runs a server program once per core behind one port, and supervises it",
               "multinode"};
  app.set_version_flag("--version", std::string("multinode ") + MULTINODE_VERSION);
  app.require_subcommand(1);

  std::string control_path;
  const std::string control_help =
      "Path of the supervisor's control socket (default: " + default_control_path() + ")";

  // --- run ---
  Options& o = result.options;
  o.port = 8080;  // the library's 80 needs root
  o.nodes = std::max(1U, std::thread::hardware_concurrency());
  o.master_listen = false;
  o.heartbeat_timeout = std::chrono::milliseconds{0};  // a program that sends no WATCHDOG=1 is not hung
  CLI::App* run =
      app.add_subcommand("run", "Start PROGRAM in N worker processes sharing the listening socket");
  run->footer("Usage: multinode run [OPTIONS] -- PROGRAM [ARGS...]");
  std::vector<std::string> command;
  run->add_option("-n,--nodes", o.nodes, "Worker processes (default: one per core)")
      ->check(CLI::Range(1U, 4096U));
  run->add_option("-p,--port", o.port, "Port to listen on (default 8080; 0 picks a free one)");
  run->add_option("--host", o.host, "Address or name to listen on (default: every address)");
  run->add_option(
         "--listen", o.listen,
         "HOST:PORT[=NAME], repeatable: sockets of their own instead of --host/--port, at fds 3, 4, ... "
         "in this order, NAME in LISTEN_FDNAMES (default multinode)")
      ->type_name("HOST:PORT[=NAME]")
      ->take_first()
      ->allow_extra_args(false);
  add_choice(*run, "--balancing", o.balancing,
             {{"shared", Balancing::shared}, {"reuseport", Balancing::reuseport}},
             "shared (one socket, default) or reuseport (one SO_REUSEPORT socket per slot)");
  bool no_restart = false;
  run->add_flag("--no-restart", no_restart, "Do not replace a worker that died");
  std::int64_t stop_timeout = o.stop_timeout.count();
  run->add_option("--stop-timeout", stop_timeout, "Graceful stop: ms before SIGKILL (default 10000)")
      ->check(CLI::NonNegativeNumber);
  std::int64_t heartbeat = 0;
  run->add_option("--heartbeat-timeout", heartbeat,
                  "A ready worker silent on WATCHDOG=1 this long (ms) is hung and replaced; "
                  "sets WATCHDOG_USEC (default 0: off)")
      ->check(CLI::NonNegativeNumber);
  std::uint64_t max_requests = 0;
  run->add_option("--max-requests", max_requests,
                  "Library workers only: a foreign program reports no request counts (refused unless 0)");
  run->add_option("--max-rss", o.max_rss,
                  "Recycle a worker whose resident memory is above MB (default 0: off)");
  run->add_option("--user", o.user, "Started as root: bind, then run as this user");
  run->add_option("--group", o.group, "With --user: this group (default: the user's primary group)");
  run->add_option("--control", control_path, control_help);
  run->add_option("--metrics-listen", o.metrics_listen, "HOST:PORT where GET /metrics is served");
  run->add_option("--log-file", o.log_file, "The supervisor's log lines go to this file (default stderr)");
  add_choice(*run, "--log-format", o.log_format, {{"text", LogFormat::text}, {"json", LogFormat::json}},
             "text (default) or json: the supervisor's lines and the workers' output");
  add_choice(*run, "--ready", o.worker_readiness,
             {{"started", WorkerReadiness::started}, {"notify", WorkerReadiness::notify}},
             "started (default: once executed) or notify (once it sends READY=1 on NOTIFY_SOCKET)");
  run->add_option("--bridge", o.bridge,
                  "redis://HOST:PORT[/DB]: passed to the workers as MULTINODE_BRIDGE (cluster-wide messages, "
                  "docs/bridge.md); the supervisor keeps no link of its own")
      ->type_name("URL");
  run->add_option("--bridge-prefix", o.bridge_prefix,
                  "With --bridge: the Redis channel prefix, as MULTINODE_BRIDGE_PREFIX (default multinode:)");
  run->add_option(
         "--standby", o.standby,
         "Keep K more processes of the program started but not serving (MULTINODE_STANDBY=1): a dead "
         "worker's slot is filled by promoting one instead of a new start (default 0; the program "
         "must support it, docs/cli.md)")
      ->check(CLI::Range(0U, Options::max_standby));
  bool stop_with_parent = false;
  run->add_flag("--stop-with-parent", stop_with_parent,
                "Stop gracefully, as on SIGTERM, when the process that started this command ends, even by "
                "SIGKILL (for a launcher such as the Node.js client's `node app.js`)");
  run->add_option("--max-line", o.worker_max_line, "Worker output lines longer than this (bytes) are cut")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24));
  run->add_option("program", command, "The program and its arguments ({fd} {port} {id} {slot} replaced)")
      ->required();
  run->positionals_at_end();

  // --- the control socket's clients ---
  bool json = false;
  CLI::App* status = app.add_subcommand("status", "The supervisor's workers and their state");
  status->add_flag("--json", json, "The reply as the control socket sends it (JSON)");
  CLI::App* metrics = app.add_subcommand("metrics", "Prometheus text of the supervisor and its workers");
  CLI::App* reload =
      app.add_subcommand("reload", "Rolling restart: every worker replaced, one slot at a time");
  CLI::App* scale = app.add_subcommand("scale", "Change the number of workers to N");
  unsigned workers = 0;
  scale->add_option("N", workers, "Worker processes")->required();
  CLI::App* stop = app.add_subcommand("stop", "Graceful stop of the supervisor and every worker");
  for (CLI::App* sub : {status, metrics, reload, scale, stop})
    sub->add_option("--control", control_path, control_help);

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  if (!reversed.empty()) reversed.pop_back();  // argv[0]
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    std::ostringstream out, err;
    // 2 for a usage error, as getopt-based tools do (CLI11's own codes are above 100).
    result.exit_status = app.exit(e, out, err) == 0 ? 0 : 2;
    result.message = result.exit_status == 0 ? out.str() : err.str() + out.str();
    return result;
  }
  result.control_path = control_path.empty() ? default_control_path() : control_path;
  if (run->parsed()) {
    if (max_requests != 0) {
      result.exit_status = 2;
      result.message =
          "multinode: --max-requests needs the worker's request counts, which a foreign program does not "
          "report to the supervisor; recycle by memory with --max-rss MB instead\n";
      return result;
    }
    result.action = Action::run;
    o.restart_children = !no_restart;
    o.stop_timeout = std::chrono::milliseconds{stop_timeout};
    o.heartbeat_timeout = std::chrono::milliseconds{heartbeat};
    o.control_socket = result.control_path;
    o.worker_command = command;
    result.stop_with_parent = stop_with_parent;
    return result;
  }
  result.action = Action::control;
  if (status->parsed()) {
    result.control_line = "status";
    result.status_json = json;
  } else if (metrics->parsed()) {
    result.control_line = "metrics";
  } else if (reload->parsed()) {
    result.control_line = "reload";
  } else if (scale->parsed()) {
    result.control_line = "scale " + std::to_string(workers);
  } else {
    result.control_line = "stop";
  }
  return result;
}

std::string status_table(const std::string& json) {
  boost::system::error_code error;
  const boost::json::value status = boost::json::parse(json, error);
  if (error || !status.is_object()) return json;
  const auto number = [](const boost::json::value* v) -> std::string {
    if (v == nullptr || v->is_null()) return "-";
    if (v->is_double()) {
      char text[32];
      std::snprintf(text, sizeof text, "%.1f", v->as_double());
      return text;
    }
    if (v->is_int64()) return std::to_string(v->as_int64());
    if (v->is_uint64()) return std::to_string(v->as_uint64());
    return "-";
  };
  const auto megabytes = [](const boost::json::value* rss) -> std::string {
    if (rss == nullptr || !(rss->is_uint64() || rss->is_int64())) return "-";
    char text[32];
    std::snprintf(text, sizeof text, "%.1f",
                  static_cast<double>(rss->is_uint64() ? rss->as_uint64() : rss->as_int64()) / 1048576.0);
    return text;
  };
  const auto text_of = [](const boost::json::value* v) -> std::string {
    return v != nullptr && v->is_string() ? std::string(v->as_string()) : "-";
  };
  std::ostringstream out;
  const auto& root = status.as_object();
  if (const auto* master = root.if_contains("master"); master != nullptr && master->is_object()) {
    const auto& m = master->as_object();
    out << "supervisor pid " << number(m.if_contains("pid")) << ", up " << number(m.if_contains("uptime_s"))
        << " s, generation " << number(m.if_contains("generation")) << "\n";
  }
  out << "ID    SLOT  PID       STATE     UPTIME_S  RESTARTS  RSS_MB  HEARTBEAT_MS\n";
  // One row of the table, under its header's columns.
  const auto row = [&out](const std::string& id, const std::string& slot, const std::string& pid,
                          const std::string& state, const std::string& uptime, const std::string& restarts,
                          const std::string& rss, const std::string& heartbeat) {
    char line[256];
    std::snprintf(line, sizeof line, "%-5s %-5s %-9s %-9s %-9s %-9s %-7s %s\n", id.c_str(), slot.c_str(),
                  pid.c_str(), state.c_str(), uptime.c_str(), restarts.c_str(), rss.c_str(),
                  heartbeat.c_str());
    out << line;
  };
  if (const auto* workers = root.if_contains("workers"); workers != nullptr && workers->is_array()) {
    for (const auto& w : workers->as_array()) {
      if (!w.is_object()) continue;
      const auto& o = w.as_object();
      row(number(o.if_contains("id")), number(o.if_contains("slot")), number(o.if_contains("pid")),
          text_of(o.if_contains("state")), number(o.if_contains("uptime_s")),
          number(o.if_contains("restarts")), megabytes(o.if_contains("rss_bytes")),
          number(o.if_contains("heartbeat_age_ms")));
    }
  }
  // Standbys (--standby K) fill no slot: their own rows, slot "-".
  if (const auto* standby = root.if_contains("standby"); standby != nullptr && standby->is_array()) {
    for (const auto& s : standby->as_array()) {
      if (!s.is_object()) continue;
      const auto& o = s.as_object();
      row(number(o.if_contains("id")), "-", number(o.if_contains("pid")),
          "sb:" + text_of(o.if_contains("state")), number(o.if_contains("uptime_s")), "-",
          megabytes(o.if_contains("rss_bytes")), "-");
    }
  }
  return out.str();
}

}  // namespace multinode::cli
