// An event handler slot that may be replaced or cleared from inside the handler
// itself: a std::function must not be reassigned while it runs, so a
// replacement made during the call takes effect when the call returns.
#pragma once

#include <functional>
#include <utility>

namespace multinode::detail {

template <typename Signature>
class Callback;

template <typename... Args>
class Callback<void(Args...)> {
 public:
  void set(std::function<void(Args...)> handler) {
    if (running_) {
      pending_ = std::move(handler);
      has_pending_ = true;
    } else {
      current_ = std::move(handler);
    }
  }
  void clear() { set(nullptr); }

  explicit operator bool() const noexcept { return has_pending_ ? bool(pending_) : bool(current_); }

  // Calls the handler if one is set. Not reentrant for the same slot: a handler
  // that triggers its own event again is called once per event, in order, only
  // when the events come from the event loop (as all of them do here).
  template <typename... CallArgs>
  void operator()(CallArgs&&... args) {
    if (!current_) {
      take_pending();
      return;
    }
    Running guard(*this);
    current_(std::forward<CallArgs>(args)...);
  }

 private:
  struct Running {
    explicit Running(Callback& c) noexcept : callback(c) { callback.running_ = true; }
    ~Running() {
      callback.running_ = false;
      callback.take_pending();
    }
    Callback& callback;
  };

  void take_pending() {
    if (has_pending_) {
      current_ = std::move(pending_);
      pending_ = nullptr;
      has_pending_ = false;
    }
  }

  std::function<void(Args...)> current_;
  std::function<void(Args...)> pending_;
  bool running_ = false;
  bool has_pending_ = false;
};

}  // namespace multinode::detail
