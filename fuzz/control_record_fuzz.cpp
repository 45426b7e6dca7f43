// libFuzzer target for the control channel's records (decode_record): any bytes
// either decode to a record of a known type that encodes back to the same 24
// bytes (reserved fields zero), or are refused; never a crash. A bridge_stats
// record is refused only for an unknown field or link state, and what it carries
// lands in the counters (apply_bridge_stats) without touching the other fields.
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
      if (type >= 1 && type <= static_cast<unsigned>(RecordType::promote) &&
          type != static_cast<unsigned>(RecordType::bridge_stats))
        __builtin_trap();
      if (type == static_cast<unsigned>(RecordType::bridge_stats)) {
        const std::uint32_t field =
            data[8] | (data[9] << 8) | (data[10] << 16) | (std::uint32_t(data[11]) << 24);
        std::uint64_t value = 0;
        for (int i = 7; i >= 0; --i) value = (value << 8) | data[16 + i];
        const bool bad_state = field == static_cast<std::uint32_t>(BridgeStatsField::state) &&
                               value > static_cast<std::uint64_t>(multinode::BridgeLinkState::up);
        if (field < bridge_stats_fields && !bad_state) __builtin_trap();
      }
    }
    return 0;
  }
  if (record.type == RecordType::bridge_stats) {
    multinode::BridgeCounters counters;
    apply_bridge_stats(record, counters);
    // The record's figure, read back from the records of those counters for the same serial.
    const auto records = bridge_stats_records(counters, record.peer_id);
    if (records.size() != bridge_stats_fields) __builtin_trap();
    const Record& same = records[record.peer_slot];
    if (same.type != RecordType::bridge_stats || same.peer_id != record.peer_id ||
        same.peer_slot != record.peer_slot || same.value != record.value) {
      __builtin_trap();
    }
    for (const Record& other : records) {  // every other figure stays zero (state: off)
      if (other.peer_slot != record.peer_slot && other.value != 0) __builtin_trap();
    }
    if (counters.rejected !=
        counters.oversized + counters.foreign + counters.malformed + counters.bad_replies) {
      __builtin_trap();
    }
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
