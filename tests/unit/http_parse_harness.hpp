// Feeds bytes to the server's RequestReader the way a connection does (prepare,
// commit, next) and records what came out, so that a test can cut its input at
// any offsets and compare. Shared by the parser tests, the differential tests
// and the fuzz target.
#pragma once

#include <multinode/http.hpp>

#include "http/parser.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace multinode::http::test {

struct ParsedRequest {
  std::string method;
  std::string target;
  int version = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::pair<std::string, std::string>> trailers;
  std::string body;
  bool keep_alive = false;
  bool chunked = false;
  bool expects_continue_head = false;  // head event came while the body was incomplete

  bool operator==(const ParsedRequest&) const = default;
};

struct ParseOutcome {
  std::vector<ParsedRequest> requests;
  std::optional<error> failure;  // the request after the last good one was refused
  bool partial = false;          // input ended inside a request

  bool operator==(const ParseOutcome&) const = default;
};

inline std::string describe(const ParseOutcome& outcome) {
  std::string text = std::to_string(outcome.requests.size()) + " request(s)";
  for (const auto& r : outcome.requests) {
    text += "\n  " + r.method + " " + r.target + " HTTP/" + std::to_string(r.version / 10) + "." +
            std::to_string(r.version % 10) + " headers=" + std::to_string(r.headers.size()) +
            " body=" + std::to_string(r.body.size()) + (r.keep_alive ? " keep-alive" : " close");
  }
  if (outcome.failure) text += "\n  refused: " + make_error_code(*outcome.failure).message();
  if (outcome.partial) text += "\n  partial";
  return text;
}

// Parses input delivered in pieces ending at each of the cut offsets (sorted, within
// the input). Stops after a request that does not keep the connection alive, as a
// connection does.
inline ParseOutcome parse_pieces(const Options& options, std::string_view input,
                                 std::vector<std::size_t> cuts) {
  std::sort(cuts.begin(), cuts.end());
  cuts.push_back(input.size());
  detail::RequestReader reader(options);
  ParseOutcome outcome;
  ParsedRequest current;
  std::size_t fed = 0;
  bool stop = false;
  for (std::size_t cut : cuts) {
    cut = std::min(cut, input.size());
    // Feed up to this cut (the reader may offer less room than the piece).
    while (fed < cut && !stop) {
      std::span<char> room = reader.prepare();
      if (room.empty()) {
        outcome.failure = reader.failure();
        return outcome;
      }
      const std::size_t size = std::min(room.size(), cut - fed);
      std::memcpy(room.data(), input.data() + fed, size);
      reader.commit(size);
      fed += size;
      // Bounded by the bytes fed: every event consumes input or ends the pass.
      for (;;) {
        const detail::ReadEvent event = reader.next();
        if (event == detail::ReadEvent::need_more) break;
        if (event == detail::ReadEvent::failed) {
          outcome.failure = reader.failure();
          return outcome;
        }
        Request& request = reader.request();
        if (event == detail::ReadEvent::head) {
          current = ParsedRequest{};
          current.expects_continue_head =
              request.expects_continue() && reader.phase() == detail::ReadPhase::body;
          if (options.stream_body)
            request.on_data([&current](std::string_view data) { current.body.append(data); });
          continue;
        }
        current.method = request.method();
        current.target = request.target();
        current.version = request.version();
        for (const Field& f : request.headers()) current.headers.emplace_back(f.name, f.value);
        for (const Field& f : request.trailers()) current.trailers.emplace_back(f.name, f.value);
        if (!options.stream_body) current.body = request.body();
        current.keep_alive = request.keep_alive();
        current.chunked = request.chunked();
        outcome.requests.push_back(current);
        reader.finish_request();
        if (!current.keep_alive) {
          stop = true;
          break;
        }
      }
    }
  }
  outcome.partial = !stop && reader.phase() != detail::ReadPhase::idle;
  return outcome;
}

inline ParseOutcome parse_whole(const Options& options, std::string_view input) {
  return parse_pieces(options, input, {});
}

inline ParseOutcome parse_bytewise(const Options& options, std::string_view input) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < input.size(); ++i) cuts.push_back(i);
  return parse_pieces(options, input, cuts);
}

}  // namespace multinode::http::test
