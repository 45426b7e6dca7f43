// multinode's own error codes, as std::error_code values of the "multinode" category.
#pragma once

#include <system_error>

namespace multinode {

enum class errc {
  frame_too_large = 1,  // a frame's length is above Options::max_frame_size
  bad_frame_type,       // a frame header names a type this version does not know
  bad_frame_header,     // reserved header bits are set
  invalid_utf8,         // a text frame is not valid UTF-8
  invalid_json,         // a JSON frame does not parse, or nests deeper than allowed
  stream_closed,        // the peer stream was closed by this side
  peer_gone,            // the peer process went away
  control_protocol,     // the control channel carried something unexpected
  bad_control_frame,    // a peer stream control frame is malformed
  peer_closed,          // the peer closed the framed stream (it sent a close frame)
  rejected_by_peer,     // the peer closed the framed stream because of a frame from this side
};

const std::error_category& category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), category()};
}

}  // namespace multinode

template <>
struct std::is_error_code_enum<multinode::errc> : std::true_type {};
