// The examples' command lines, with Debian's CLI11 as the multinode command's:
// every option declared once with its type and bounds, --help, and an error that
// names the option and what it wants (`--port: Value 70000 not in range ...`).
#pragma once

#include <multinode/options.hpp>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace examples {

// nullopt: go on. Else the exit status: 0 after --help, 2 for a usage error (what
// was wrong said on stderr, as getopt-based tools do).
inline std::optional<int> parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
}

// --port, --nodes, --host: where every example listens.
inline void add_listen_options(CLI::App& app, multinode::Options& options) {
  app.add_option("--port", options.port, "Port to listen on (0 picks a free one)")->capture_default_str();
  app.add_option("--nodes", options.nodes, "Serving processes, the master included")
      ->check(CLI::Range(1U, 4096U))
      ->capture_default_str();
  app.add_option("--host", options.host, "Address or name to listen on (default: every address)");
}

// One of the words of `choices`, into its value; any other word is refused with
// "NAME: must be A or B, not 'C'".
template <typename Enum>
void add_choice(CLI::App& app, const std::string& name, Enum& into,
                const std::map<std::string, Enum>& choices, const std::string& help) {
  std::string words;
  for (const auto& entry : choices) words += (words.empty() ? "" : " or ") + entry.first;
  const auto known = [choices, words](const std::string& word) {
    return choices.count(word) != 0 ? std::string() : "must be " + words + ", not '" + word + "'";
  };
  app.add_option_function<std::string>(
         name, [&into, choices](const std::string& word) { into = choices.at(word); }, help + ": " + words)
      ->check(CLI::Validator(known, "WORD"));
}

// --balancing shared|reuseport.
inline void add_balancing_option(CLI::App& app, multinode::Options& options) {
  add_choice(app, "--balancing", options.balancing,
             {{"shared", multinode::Balancing::shared}, {"reuseport", multinode::Balancing::reuseport}},
             "One socket for every process, or one each");
}

// An option in milliseconds, into a std::chrono::milliseconds.
inline CLI::Option* add_milliseconds(CLI::App& app, const std::string& name, std::chrono::milliseconds& into,
                                     const std::string& help) {
  return app
      .add_option_function<std::int64_t>(
          name, [&into](std::int64_t ms) { into = std::chrono::milliseconds{ms}; }, help)
      ->check(CLI::NonNegativeNumber);
}

}  // namespace examples
