// Weight panels for the gemm microkernels (gemm.h) and aligned scratch.
#include <cstdint>
#include <vector>

#include "internal.h"

namespace tfqnn {
namespace core {

int32_t* aligned_words(std::vector<int32_t>* v, size_t words) {
  if (v->size() < words + kAlignWords) v->resize(words + kAlignWords);
  const uintptr_t p = reinterpret_cast<uintptr_t>(v->data());
  const uintptr_t a = (p + 63) & ~uintptr_t{63};
  return v->data() + (a - p) / sizeof(int32_t);
}

void pack_panels(const int32_t* rows, int64_t ld, int n, int kw, int32_t* out) {
  // Written in order; the reads of a panel (32 rows of kw words) stay in cache.
  for (int p = 0; p < num_panels(n); ++p) {
    const int o0 = p * kPanel;
    const int cols = n - o0 < kPanel ? n - o0 : kPanel;
    const int32_t* src = rows + o0 * ld;
    int32_t* dst = out + static_cast<int64_t>(p) * kw * kPanel;
    for (int k = 0; k < kw; ++k, dst += kPanel) {
      int j = 0;
      for (; j < cols; ++j) dst[j] = src[j * ld + k];
      for (; j < kPanel; ++j) dst[j] = 0;
    }
  }
}

}  // namespace core
}  // namespace tfqnn
