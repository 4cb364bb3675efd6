// Portable binary GEMM microkernel (any CPU). On x86-64 a copy compiled for
// the POPCNT instruction is used when the CPU has it: without it, a
// baseline x86-64 build turns __builtin_popcount into a library call.
#include <cstdint>

#include "gemm.h"

namespace tfqnn {
namespace core {
namespace {

constexpr int kChunk = 8;  // columns kept in registers

__attribute__((always_inline)) inline void panel_body(const int32_t* a, int64_t lda, int rows,
                                                      const int32_t* panel, int kw, int32_t* counts,
                                                      int64_t ldc, int ncols) {
  for (int m = 0; m < rows; ++m) {
    const uint32_t* row = reinterpret_cast<const uint32_t*>(a + m * lda);
    for (int j0 = 0; j0 < ncols; j0 += kChunk) {
      uint32_t acc[kChunk] = {0, 0, 0, 0, 0, 0, 0, 0};
      const uint32_t* b = reinterpret_cast<const uint32_t*>(panel) + j0;
      for (int k = 0; k < kw; ++k) {
        const uint32_t x = row[k];
        const uint32_t* bk = b + k * kPanel;
#pragma GCC unroll 8
        for (int j = 0; j < kChunk; ++j) {
          acc[j] += static_cast<uint32_t>(__builtin_popcount(x ^ bk[j]));
        }
      }
      const int n = ncols - j0 < kChunk ? ncols - j0 : kChunk;
      for (int j = 0; j < n; ++j) {
        counts[m * ldc + j0 + j] = static_cast<int32_t>(acc[j]);
      }
    }
  }
}

void panel_generic(const int32_t* a, int64_t lda, int rows, const int32_t* panel, int kw,
                   int32_t* counts, int64_t ldc, int ncols) {
  panel_body(a, lda, rows, panel, kw, counts, ldc, ncols);
}

#if defined(__x86_64__)
__attribute__((target("popcnt"))) void panel_popcnt(const int32_t* a, int64_t lda, int rows,
                                                    const int32_t* panel, int kw, int32_t* counts,
                                                    int64_t ldc, int ncols) {
  panel_body(a, lda, rows, panel, kw, counts, ldc, ncols);
}

bool has_popcnt() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("popcnt") != 0;
  }();
  return has;
}
#endif

}  // namespace

void gemm_panel_scalar(const int32_t* a, int64_t lda, int rows, const int32_t* panel, int kw,
                       int32_t* counts, int64_t ldc, int ncols) {
#if defined(__x86_64__)
  if (has_popcnt()) {
    panel_popcnt(a, lda, rows, panel, kw, counts, ldc, ncols);
    return;
  }
#endif
  panel_generic(a, lda, rows, panel, kw, counts, ldc, ncols);
}

}  // namespace core
}  // namespace tfqnn
