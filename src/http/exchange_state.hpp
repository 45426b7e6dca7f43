// What a connection holds only while it has something in hand (a request being
// read or answered, output still going out): the request reader (its parser and
// the Request), the response state and the output queue. A keep-alive connection
// between requests gives it back to the process's pool and holds a pointer
// (docs/http.md, "Memory per connection"); the next connection to receive bytes
// takes a spare, whose field list and header strings kept their capacity, so that
// keep-alive requests still allocate nothing.
#pragma once

#include <multinode/http/options.hpp>

#include "http/buffer_pool.hpp"
#include "http/output.hpp"
#include "http/parser.hpp"
#include "http/response_state.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace multinode::http::detail {

struct ExchangeState {
  ExchangeState(const Options& options, BufferPool& input_pool, BufferPool& output_pool)
      : reader(options, &input_pool) {
    output.set_pool(&output_pool);
    response.stage = ResponseState::Stage::ended;  // no response in hand: Response handles are stale
  }
  ExchangeState(const ExchangeState&) = delete;
  ExchangeState& operator=(const ExchangeState&) = delete;

  RequestReader reader;
  OutputQueue output;
  ResponseState response;
};

class ExchangePool {
 public:
  // Keeps at most max_spares states given back; lent, if given, mirrors how many are out.
  ExchangePool(const Options& options, BufferPool& input_pool, BufferPool& output_pool,
               std::size_t max_spares, std::uint64_t* lent = nullptr)
      : options_(options),
        input_pool_(input_pool),
        output_pool_(output_pool),
        max_spares_(max_spares),
        lent_(lent) {
    spares_.reserve(max_spares);
  }
  ExchangePool(const ExchangePool&) = delete;
  ExchangePool& operator=(const ExchangePool&) = delete;

  // The last spare given back, or a new state.
  std::unique_ptr<ExchangeState> take() {
    std::unique_ptr<ExchangeState> state;
    if (!spares_.empty()) {
      state = std::move(spares_.back());
      spares_.pop_back();
    } else {
      state = std::make_unique<ExchangeState>(options_, input_pool_, output_pool_);
    }
    count(+1);
    return state;
  }

  // A state between requests: no request in hand, nothing buffered in or out, no
  // callback left (the caller checked, and cleared the response).
  void give(std::unique_ptr<ExchangeState> state) noexcept {
    if (!state) return;
    count(-1);
    if (spares_.size() < max_spares_) spares_.push_back(std::move(state));
  }

  // A state in any condition (its connection is going away): freed, with its buffers.
  void drop(std::unique_ptr<ExchangeState> state) noexcept {
    if (!state) return;
    count(-1);
  }

  std::size_t lent() const noexcept { return out_; }
  std::size_t spares() const noexcept { return spares_.size(); }

 private:
  void count(int change) noexcept {
    out_ = change > 0 ? out_ + 1 : out_ - 1;
    if (lent_) *lent_ = out_;
  }

  const Options& options_;
  BufferPool& input_pool_;
  BufferPool& output_pool_;
  const std::size_t max_spares_;
  std::uint64_t* lent_;
  std::size_t out_ = 0;
  std::vector<std::unique_ptr<ExchangeState>> spares_;
};

}  // namespace multinode::http::detail
