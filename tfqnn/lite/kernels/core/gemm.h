// Binary GEMM microkernels: the interface every ISA implements.
//
// The left operand A holds `rows` rows of `kw` packed words (any row stride);
// the right operand, the weights, is laid out in panels of kPanel = 32 output
// channels, word-major: panel[k * kPanel + j] is word k of output channel j
// of the panel (zero for channels beyond the last one). A kernel broadcasts
// one word of a row of A, XORs it with the kPanel words of the panel, counts
// the bits per lane and accumulates per output channel: no horizontal sums,
// any kw, and 32 columns are exactly one word of a bitpacked output.
#ifndef TFQNN_LITE_KERNELS_CORE_GEMM_H_
#define TFQNN_LITE_KERNELS_CORE_GEMM_H_

#include <cstdint>

#include "../macros.h"

namespace tfqnn {
namespace core {

constexpr int kPanel = 32;

// counts[m * ldc + j] = sum over k < kw of popcount(a[m * lda + k] ^
// panel[k * kPanel + j]), for m < rows and j < ncols (1 <= ncols <= kPanel);
// columns >= ncols are not written. `panel` should be 64-byte aligned (for
// speed only: kernels use unaligned loads).
using GemmPanelFn = void (*)(const int32_t* a, int64_t lda, int rows, const int32_t* panel, int kw,
                             int32_t* counts, int64_t ldc, int ncols);

void gemm_panel_scalar(const int32_t* a, int64_t lda, int rows, const int32_t* panel, int kw,
                       int32_t* counts, int64_t ldc, int ncols);
#if defined(__x86_64__)
void gemm_panel_avx2(const int32_t* a, int64_t lda, int rows, const int32_t* panel, int kw,
                     int32_t* counts, int64_t ldc, int ncols);
void gemm_panel_avx512(const int32_t* a, int64_t lda, int rows, const int32_t* panel, int kw,
                       int32_t* counts, int64_t ldc, int ncols);
#endif
#if TFQNN_NEON
void gemm_panel_neon(const int32_t* a, int64_t lda, int rows, const int32_t* panel, int kw,
                     int32_t* counts, int64_t ldc, int ncols);
#endif

}  // namespace core
}  // namespace tfqnn

#endif  // TFQNN_LITE_KERNELS_CORE_GEMM_H_
