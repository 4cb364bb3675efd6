// Codebook decoding: bit-packed indices into a float table (TfqnnCodebookDecode,
// docs/lite_ops.md). Runs once per op, when the model is prepared, so plain
// scalar code is enough.
#include <atomic>
#include <cstdint>

#include "core.h"

namespace tfqnn {
namespace core {
namespace {

std::atomic<int64_t> g_decodes{0};

}  // namespace

int codebook_decode(const uint8_t* packed, int64_t count, int bits, const float* codebook,
                    int64_t codes, float* out) {
  g_decodes.fetch_add(1, std::memory_order_relaxed);
  const int64_t bytes = packed_index_bytes(count, bits);
  const uint32_t mask = (uint32_t(1) << bits) - 1;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t bit = i * bits;
    const int64_t byte = bit >> 3;
    // bits + (bit & 7) <= 23: three bytes hold the field; read only those
    // inside the buffer (the field itself always is).
    uint32_t word = packed[byte];
    if (byte + 1 < bytes) word |= uint32_t(packed[byte + 1]) << 8;
    if (byte + 2 < bytes) word |= uint32_t(packed[byte + 2]) << 16;
    const uint32_t index = (word >> (bit & 7)) & mask;
    if (index >= uint64_t(codes)) return kCodebookBadIndex;
    out[i] = codebook[index];
  }
  return kCodebookOk;
}

int64_t codebook_decode_count() { return g_decodes.load(std::memory_order_relaxed); }

}  // namespace core
}  // namespace tfqnn
