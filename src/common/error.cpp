#include <multinode/error.hpp>

#include <string>

namespace multinode {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "multinode"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::frame_too_large:
        return "frame larger than the maximum frame size (Options::max_frame_size)";
      case errc::bad_frame_type:
        return "frame of an unknown type";
      case errc::bad_frame_header:
        return "frame header with reserved bits set";
      case errc::invalid_utf8:
        return "text frame that is not valid UTF-8";
      case errc::invalid_json:
        return "JSON frame that does not parse or nests too deep";
      case errc::stream_closed:
        return "stream closed by this process";
      case errc::peer_gone:
        return "peer process went away";
      case errc::control_protocol:
        return "unexpected record on the control channel";
      case errc::bad_control_frame:
        return "malformed control frame on a peer stream";
      case errc::peer_closed:
        return "peer closed the stream";
      case errc::rejected_by_peer:
        return "peer closed the stream because of a bad frame from this process";
    }
    return "unknown multinode error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& category() noexcept {
  static const Category instance;
  return instance;
}

}  // namespace multinode
