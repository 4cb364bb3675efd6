// Binary dense: the input rows are the gemm's A as they are; the weights are
// laid out in panels once (BDense::prepare). Rows are processed in blocks:
// the counts of a block for the thread's panels go to a scratch buffer that
// stays in cache, then the output transform writes the block's outputs.
#include <algorithm>
#include <cstdint>

#include "core.h"
#include "internal.h"

namespace tfqnn {
namespace core {
namespace {

// Rows per block: A block in L1 (16 KiB), counts block <= 128 KiB.
int64_t block_rows(int kw, int columns) {
  int64_t r = 16384 / (4 * std::max(kw, 1));
  r = std::min<int64_t>(r, 32768 / std::max(columns, 1));
  r = std::max<int64_t>(8, std::min<int64_t>(r, 256));
  return r / 8 * 8;
}

}  // namespace

void BDense::prepare(const int32_t* weights, int out_features, int in_features, int weight_bases) {
  out_features_ = out_features;
  in_features_ = in_features;
  weight_bases_ = weight_bases;
  const int kw = packed_words(in_features);
  const int columns = weight_bases * out_features;  // [m][o]
  const size_t words = static_cast<size_t>(num_panels(columns)) * kw * kPanel;
  weights_.clear();
  int32_t* panels = aligned_words(&weights_, words);
  weights_offset_ = static_cast<size_t>(panels - weights_.data());
  pack_panels(weights, kw, columns, kw, panels);
}

void BDense::run(const int32_t* input, int64_t rows, const OutputTransform& transform, void* output,
                 int num_threads) {
  if (rows <= 0 || out_features_ <= 0) return;
  const Kernels& kernels = active_kernels();
  const int n = out_features_;
  const bool plain = transform.is_plain() && weight_bases_ == 1;
  const int nb = plain ? 1 : transform.input_bases;
  const int columns = weight_bases_ * n;  // [m][o]
  const int kw = packed_words(in_features_);
  const int64_t lda = int64_t{nb} * kw;  // input words per row
  const int panels = num_panels(columns);
  const int32_t* weights = weights_.data() + weights_offset_;
  const int64_t row_bytes = transform_row_bytes(transform, n);

  // Threads take column panels (each reads only its share of the weights,
  // the larger operand unless the batch is large), else rows. A multi-basis
  // transform needs every column of a row: rows.
  const double work = static_cast<double>(rows) * columns * kw * nb;
  int threads = useful_threads(num_threads, work, std::max<int64_t>(rows / 8, panels));
  const bool split_rows = !plain || panels < threads || rows >= int64_t{16} * n;
  if (!split_rows) threads = std::min(threads, panels);
  const int64_t ldc = int64_t{panels} * kPanel;
  const int64_t block =
      std::min<int64_t>(block_rows(kw, split_rows ? static_cast<int>(ldc * nb)
                                                  : (panels + threads - 1) / threads * kPanel),
                        round_up(rows, 8));
  const int64_t basis_stride = block * ldc;  // counts of one input basis
  const size_t per_thread = static_cast<size_t>(round_up(basis_stride * nb, kAlignWords));
  int32_t* scratch = aligned_words(&scratch_, per_thread * threads);

  auto task = [&](int64_t r0, int64_t r1, int64_t p0, int64_t p1, int thread) {
    int32_t* counts = scratch + per_thread * thread;
    const int col0 = static_cast<int>(p0 * kPanel);
    const int ncols = static_cast<int>(std::min<int64_t>(columns, p1 * kPanel)) - col0;
    for (int64_t r = r0; r < r1; r += block) {
      const int rb = static_cast<int>(std::min(block, r1 - r));
      for (int b = 0; b < nb; ++b) {
        const int32_t* a = input + r * lda + int64_t{b} * kw;
        for (int64_t p = p0; p < p1; ++p) {
          const int c = static_cast<int>(p * kPanel);
          kernels.gemm_panel(a, lda, rb, weights + p * kw * kPanel, kw,
                             counts + b * basis_stride + (c - col0), ldc,
                             std::min(kPanel, columns - c));
        }
      }
      char* out = static_cast<char*>(output) + r * row_bytes;
      if (plain) {
        kernels.output_transform(counts, ldc, rb, col0, ncols, in_features_, nullptr, transform,
                                 out, n);
      } else {
        multi_basis_transform(counts, ldc, basis_stride, rb, 1, n, in_features_, nullptr, transform,
                              out);
      }
    }
  };
  if (split_rows) {
    parallel_for(threads, threads, [&](int64_t t0, int64_t, int thread) {
      // Chunk t0 of `threads`, rows in multiples of 8.
      const int64_t groups = (rows + 7) / 8;
      const int64_t r0 = std::min(rows, groups * t0 / threads * 8);
      const int64_t r1 = std::min(rows, groups * (t0 + 1) / threads * 8);
      if (r0 < r1) task(r0, r1, 0, panels, thread);
    });
  } else {
    parallel_for(panels, threads,
                 [&](int64_t p0, int64_t p1, int thread) { task(0, rows, p0, p1, thread); });
  }
}

void bdense(const int32_t* input, int64_t rows, const int32_t* weights, int out_features,
            int in_features, const OutputTransform& transform, void* output, int num_threads) {
  BDense dense;
  dense.prepare(weights, out_features, in_features);
  dense.run(input, rows, transform, output, num_threads);
}

}  // namespace core
}  // namespace tfqnn
