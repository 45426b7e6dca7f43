// What a connection knows about the response in hand: what the handler set
// through its Response handles (status, fields, trailers, callbacks) and how far
// the response has gone out. Response handles (response.cpp) reach it through
// their connection; the serializer writes it out.
#pragma once

#include "http/text.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace multinode::http::detail {

struct ResponseState {
  // How far the response has gone.
  enum class Stage : std::uint8_t {
    head_pending,  // the handler may still set the status and fields
    head_sent,     // the head is out, the body is going out
    ended,         // the handler ended it: head and body are out (or queued)
    abandoned,     // the server answered instead (an error, or nothing on a connection closed)
  };

  unsigned status = 200;
  std::string headers;   // "Name: value\r\n" lines the handler added
  std::string trailers;  // same, for after a chunked body
  unsigned handles = 0;  // Response handles naming this exchange
  Stage stage = Stage::head_pending;
  // Independent facts, each fixed by one party at one moment:
  bool chunked = false;       // the framing write_head chose (a Content-Length otherwise, or the close)
  bool will_close = false;    // the connection closes after this response (decided with the head)
  bool user_close = false;    // the handler set `Connection: close`
  bool user_date = false;     // the handler set its own Date
  bool head_request = false;  // the request is HEAD: a head without a body
  bool drain_wanted = false;  // write() returned false: on_drain runs once the output is sent
  std::function<void()> on_drain;

  // A new exchange: everything back to its default, capacities kept (no allocation).
  void reset(bool is_head_request) noexcept {
    status = 200;
    headers.clear();
    trailers.clear();
    handles = 0;
    stage = Stage::head_pending;
    chunked = will_close = user_close = user_date = drain_wanted = false;
    head_request = is_head_request;
    on_drain = nullptr;
  }

  bool head_sent() const noexcept { return stage != Stage::head_pending; }
  // Ended by the handler or given up by the server: the handles go stale.
  bool finished() const noexcept { return stage == Stage::ended || stage == Stage::abandoned; }
  bool body_allowed() const noexcept { return !head_request && status != 204 && status != 304; }

  void add_header(std::string_view name, std::string_view value) {
    if (iequals(name, "connection")) {
      // The server writes Connection itself; the handler can only ask to close.
      for_each_list_element(value, [this](std::string_view option) {
        if (iequals(option, "close")) user_close = true;
        return true;
      });
      return;
    }
    if (iequals(name, "date")) user_date = true;
    append_field(headers, name, value);
  }

  void add_trailer(std::string_view name, std::string_view value) { append_field(trailers, name, value); }

 private:
  static void append_field(std::string& out, std::string_view name, std::string_view value) {
    out.append(name);
    out.append(": ");
    out.append(value);
    out.append("\r\n");
  }
};

}  // namespace multinode::http::detail
