// libFuzzer target for examples/chat's two parsers: a client's WebSocket frame
// (parse_client_message) and a peer's mesh message (Room::apply). Neither may
// crash, and what they let through must hold to the limits: a nick or a line
// within its size, a nick without control characters, a history never longer
// than its limit and always in order.
//
//   cmake --preset fuzz && cmake --build --preset fuzz --target chat_message_fuzz
//   build/fuzz/fuzz/chat_message_fuzz fuzz/corpus/chat_message_fuzz
#include "../examples/chat/room.hpp"

#include <boost/json/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <system_error>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  chat::Limits limits;
  limits.max_nick_bytes = 8;
  limits.max_text_bytes = 64;
  const auto message = chat::parse_client_message(input, limits);
  switch (message.kind) {
    case chat::ClientMessage::Kind::nick:
      if (message.value.empty() || message.value.size() > limits.max_nick_bytes ||
          chat::detail::has_control_character(message.value))
        std::abort();
      break;
    case chat::ClientMessage::Kind::say:
      if (message.value.empty() || message.value.size() > limits.max_text_bytes) std::abort();
      break;
    case chat::ClientMessage::Kind::invalid:
      if (message.value.empty()) std::abort();  // the close frame says why
      break;
  }

  // The same bytes as a peer's message, given twice: the second changes no history.
  std::error_code error;
  const auto value = boost::json::parse(input, error);
  if (error) return 0;
  chat::Room room(1, 4);
  room.say("here", "a line of this process", 1000);
  const auto first = room.apply(2, value);
  const auto again = room.apply(2, value);
  if (room.history().size() > 4 || !again.new_entries.empty() || first.invalid != again.invalid) std::abort();
  for (std::size_t i = 1; i < room.history().size(); ++i) {
    if (!(room.history()[i - 1].key() < room.history()[i].key())) std::abort();
  }
  (void)room.welcome_frame(1);
  (void)room.online_frame();
  return 0;
}
