#include "worker/worker_link.hpp"

#include "common/log.hpp"
#include "core/runtime.hpp"

#include <unistd.h>

namespace multinode::detail {

WorkerLink::WorkerLink(Runtime& runtime, int control_fd) : runtime_(runtime), channel_(runtime.io(), control_fd) {}

void WorkerLink::start() {
  channel_.start(
      [this](const Record& record, int fd) {
        switch (record.type) {
          case RecordType::peer:
            if (fd >= 0) runtime_.add_peer(fd, record.peer_id, record.peer_slot);
            break;
          case RecordType::stop:
            runtime_.begin_stop("the master asked");
            break;
          case RecordType::ready:
          case RecordType::stopping:
            log(LogLevel::warning, "ignoring an unexpected record from the master");
            break;
        }
      },
      [this](std::error_code error) {
        if (runtime_.stopping()) return;
        if (!error) {
          runtime_.begin_stop("the master went away");
        } else {
          runtime_.begin_stop("the control channel failed: " + error.message());
        }
      });
}

void WorkerLink::send_ready() {
  channel_.send({RecordType::ready, runtime_.id(), runtime_.slot(), static_cast<std::uint64_t>(::getpid())});
}

void WorkerLink::send_stopping(int signal_number) {
  channel_.send({RecordType::stopping, runtime_.id(), runtime_.slot(), static_cast<std::uint64_t>(signal_number)});
}

void WorkerLink::close() { channel_.close(); }

}  // namespace multinode::detail
