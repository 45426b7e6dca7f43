// libFuzzer target for the control channel's records (decode_record): any bytes
// either decode to a record of a known type that encodes back to the same 24
// bytes (reserved fields zero), or are refused; never a crash.
//
//   cmake --preset fuzz && cmake --build --preset fuzz --target control_record_fuzz
//   build/fuzz/fuzz/control_record_fuzz fuzz/corpus/control_record_fuzz
#include "control/channel.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>

using namespace multinode::detail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Record record;
  if (!decode_record(data, size, record)) {
    if (size == record_size) {
      // Refused at the right size: the type was unknown.
      const unsigned type = data[0] | (data[1] << 8);
      if (type >= 1 && type <= static_cast<unsigned>(RecordType::watchdog)) __builtin_trap();
    }
    return 0;
  }
  if (size != record_size) __builtin_trap();
  unsigned char again[record_size];
  encode_record(record, again);
  Record twice;
  if (!decode_record(again, record_size, twice)) __builtin_trap();
  if (twice.type != record.type || twice.peer_id != record.peer_id || twice.peer_slot != record.peer_slot ||
      twice.value != record.value) {
    __builtin_trap();
  }
  // What is not reserved round-trips byte for byte.
  if (std::memcmp(again, data, 2) != 0 || std::memcmp(again + 4, data + 4, 8) != 0 ||
      std::memcmp(again + 16, data + 16, 8) != 0) {
    __builtin_trap();
  }
  return 0;
}
