// Private to the core: the per-ISA kernel table, the ISA override of the
// test hooks, threads and aligned scratch. Not part of the core's interface.
//
// Files (../README.md): an op of the kernel table below (gemm,
// output_transform, bitpack) has one file per instruction set,
// <op>_<isa>.cc with isa scalar, avx2, avx512 or neon, that defines the
// ISA's entries of the table; the scalar rows that the vector versions also
// run for their tails are here. Every other file is one idea that needs no
// ISA: dispatch, threads, panels, the ops built on the table (bdense,
// bconv2d), bmaxpool2d, the C hooks.
#ifndef TFQNN_LITE_KERNELS_CORE_INTERNAL_H_
#define TFQNN_LITE_KERNELS_CORE_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "../macros.h"
#include "core.h"
#include "gemm.h"

namespace tfqnn {
namespace core {

// ---- dispatch --------------------------------------------------------------
// Replaces the process's ISA (test hooks); false if `isa` is unsupported.
bool set_isa_override(Isa isa);
// Back to the ISA chosen at start-up (the CPU's best or TFQNN_ISA).
void clear_isa_override();

// Output transform of a block of rows: dot = k - 2 * counts[r][c], then the
// transform of docs/lite_ops.md, for columns [col0, col0 + ncols) of rows
// [0, rows). `counts` has row stride `ld_counts` and starts at column col0;
// `row_k` (may be null) gives a per-row K instead of `k`. `out` is the
// output row 0, column 0 (stride: `out_columns` values, or
// packed_words(out_columns) words when bitpacked); col0 must be a multiple
// of 32 when bitpacked, and ncols too unless col0 + ncols == out_columns.
using OutputTransformFn = void (*)(const int32_t* counts, int64_t ld_counts, int rows, int col0,
                                   int ncols, int k, const int32_t* row_k, const OutputTransform& t,
                                   void* out, int out_columns);

// Float bitpacking: bit 1 where x < threshold (0 for the plain sign).
using BitpackFloatFn = void (*)(const float*, int64_t, int, float, int32_t*);
using BitpackInt8Fn = void (*)(const int8_t*, int64_t, int, int32_t, int32_t*);
using UnpackFloatFn = void (*)(const int32_t*, int64_t, int, float*);
// One term of the multi-basis transform (accumulate_term below).
using AccumulateFn = void (*)(const int32_t* counts, int k, const float* mult, int n, bool first,
                              float* y);
// y[j] = clamp(y[j] + bias[j]) of the multi-basis transform (bias_clamp_values).
using BiasClampFn = void (*)(float* y, const float* bias, int n, float lo, float hi);
// out[j] = quantize_int8(y[j], scale, zero_point) for n values.
using QuantizeInt8Fn = void (*)(const float* y, int64_t n, float scale, int32_t zero_point,
                                int8_t* out);

struct Kernels {
  GemmPanelFn gemm_panel;
  OutputTransformFn output_transform;
  BitpackFloatFn bitpack_float;
  BitpackInt8Fn bitpack_int8;
  UnpackFloatFn unpack_float;
  AccumulateFn accumulate;       // a term of the multi-basis transform (accumulate_term)
  BiasClampFn bias_clamp;        // its bias and clamps (bias_clamp_values)
  QuantizeInt8Fn quantize_int8;  // its int8 output
};

// The kernels of the active ISA.
const Kernels& active_kernels();

// Per-ISA entries (defined in <op>_<isa>.cc; the x86 ones only on x86-64,
// the NEON ones only on aarch64).
void output_transform_scalar(const int32_t*, int64_t, int, int, int, int, const int32_t*,
                             const OutputTransform&, void*, int);
void bitpack_float_scalar(const float*, int64_t, int, float, int32_t*);
void bitpack_int8_scalar(const int8_t*, int64_t, int, int32_t, int32_t*);
void unpack_float_scalar(const int32_t*, int64_t, int, float*);
void accumulate_scalar(const int32_t*, int, const float*, int, bool, float*);
void bias_clamp_scalar(float*, const float*, int, float, float);
void quantize_int8_scalar(const float*, int64_t, float, int32_t, int8_t*);
#if defined(__x86_64__)
void accumulate_avx2(const int32_t*, int, const float*, int, bool, float*);
void accumulate_avx512(const int32_t*, int, const float*, int, bool, float*);
void bias_clamp_avx2(float*, const float*, int, float, float);
void bias_clamp_avx512(float*, const float*, int, float, float);
void quantize_int8_avx2(const float*, int64_t, float, int32_t, int8_t*);
void quantize_int8_avx512(const float*, int64_t, float, int32_t, int8_t*);
void output_transform_avx2(const int32_t*, int64_t, int, int, int, int, const int32_t*,
                           const OutputTransform&, void*, int);
void output_transform_avx512(const int32_t*, int64_t, int, int, int, int, const int32_t*,
                             const OutputTransform&, void*, int);
void bitpack_float_avx2(const float*, int64_t, int, float, int32_t*);
void bitpack_int8_avx2(const int8_t*, int64_t, int, int32_t, int32_t*);
void unpack_float_avx2(const int32_t*, int64_t, int, float*);
void bitpack_float_avx512(const float*, int64_t, int, float, int32_t*);
void bitpack_int8_avx512(const int8_t*, int64_t, int, int32_t, int32_t*);
void unpack_float_avx512(const int32_t*, int64_t, int, float*);
#endif
#if TFQNN_NEON
void output_transform_neon(const int32_t*, int64_t, int, int, int, int, const int32_t*,
                           const OutputTransform&, void*, int);
void bitpack_float_neon(const float*, int64_t, int, float, int32_t*);
void bitpack_int8_neon(const int8_t*, int64_t, int, int32_t, int32_t*);
void unpack_float_neon(const int32_t*, int64_t, int, float*);
void accumulate_neon(const int32_t*, int, const float*, int, bool, float*);
void bias_clamp_neon(float*, const float*, int, float, float);
void quantize_int8_neon(const float*, int64_t, float, int32_t, int8_t*);
#endif

// Bytes of one output row of `columns` output channels.
inline int64_t output_row_bytes(OutputType type, int columns) {
  switch (type) {
    case OutputType::kFloat: return int64_t{4} * columns;
    case OutputType::kInt8: return columns;
    case OutputType::kBitpacked: return int64_t{4} * packed_words(columns);
  }
  return 0;
}

// As output_row_bytes() with the type known at compile time, for `columns`
// that are a multiple of 32 when bitpacked (offsets of a vector kernel).
template <OutputType kType>
constexpr int64_t output_bytes(int64_t columns) {
  return kType == OutputType::kFloat  ? 4 * columns
         : kType == OutputType::kInt8 ? columns
                                      : columns / 8;
}

// ---- scalar rows, also the tails of the vector versions -------------------
// Bitpacking (bitpack_scalar.cc has the layout), one row: words
// [w0, packed_words(channels)) of the bitpacked row; unpacked channels
// [c0, channels). Inline, so that the vector versions inline them into their
// row loops. Float: bit 1 where x < threshold.
inline void pack_row_float(const float* x, int channels, float threshold, int w0, int32_t* out) {
  const int words = packed_words(channels);
  for (int w = w0; w < words; ++w) {
    const int c0 = w * 32;
    const int n = channels - c0 < 32 ? channels - c0 : 32;
    uint32_t bits = 0;
    for (int i = 0; i < n; ++i) bits |= uint32_t{x[c0 + i] < threshold} << i;
    out[w] = static_cast<int32_t>(bits);
  }
}

inline void pack_row_int8(const int8_t* q, int channels, int32_t zero_point, int w0, int32_t* out) {
  const int words = packed_words(channels);
  for (int w = w0; w < words; ++w) {
    const int c0 = w * 32;
    const int n = channels - c0 < 32 ? channels - c0 : 32;
    uint32_t bits = 0;
    for (int i = 0; i < n; ++i) {
      bits |= uint32_t{static_cast<int32_t>(q[c0 + i]) < zero_point} << i;
    }
    out[w] = static_cast<int32_t>(bits);
  }
}

inline void unpack_row(const int32_t* in, int channels, int c0, float* out) {
  for (int c = c0; c < channels; ++c) {
    const uint32_t word = static_cast<uint32_t>(in[c / 32]);
    out[c] = (word >> (c % 32)) & 1u ? -1.0f : 1.0f;
  }
}

// ---- scalar helpers shared by the transforms -------------------------------
// y = float(dot) * m + b (two roundings), clamped; NaN passes the clamps.
inline float affine_clamp(int32_t dot, float m, float b, float lo, float hi) {
  float y = static_cast<float>(dot) * m;
  y = y + b;
  y = lo > y ? lo : y;
  y = hi < y ? hi : y;
  return y;
}

// clamp(round_half_away(y / scale) + zero_point, -128, 127).
int8_t quantize_int8(float y, float scale, int32_t zero_point);

// The output transform of one row, columns [j0, ncols) of the block (relative
// to col0; a multiple of 32 when bitpacked), with that row's K.
void output_transform_row_scalar(const int32_t* cnt, int j0, int col0, int ncols, int k,
                                 const OutputTransform& t, void* out_row);

// ---- multi-basis output transform (multi_basis.cc) --------------------------
// The transform of `rows` rows when !t.is_plain(): counts of input basis n
// at counts + n * basis_stride, row r at r * ld_counts; within a row the
// columns are grouped [g][m][o'] (o = g * og + o', og = channels / groups;
// groups = 1: column m * channels + o). Writes transform_row_bytes() per row.
void multi_basis_transform(const int32_t* counts, int64_t ld_counts, int64_t basis_stride, int rows,
                           int groups, int channels, int k, const int32_t* row_k,
                           const OutputTransform& t, void* out);

// One term of the multi-basis transform over n channels (the loop every ISA
// compiles, vectorized for its registers): y[j] = p[j] (kFirst) or y[j] +
// p[j], with p[j] = float32(k - 2 counts[j]) * mult[j], each step rounded.
template <bool kFirst>
__attribute__((always_inline)) inline void accumulate_term(const int32_t* __restrict counts, int k,
                                                           const float* __restrict mult, int n,
                                                           float* __restrict y) {
  for (int j = 0; j < n; ++j) {
    const float p = static_cast<float>(k - 2 * counts[j]) * mult[j];
    if (kFirst) {
      y[j] = p;
    } else {
      y[j] = y[j] + p;
    }
  }
}

// The bias and clamps of the multi-basis transform over n channels (the loop
// every ISA compiles, vectorized for its registers): y[j] = min(max(y[j] +
// bias[j], lo), hi), as affine_clamp (NaN passes the clamps).
__attribute__((always_inline)) inline void bias_clamp_values(float* __restrict y,
                                                             const float* __restrict bias, int n,
                                                             float lo, float hi) {
  for (int j = 0; j < n; ++j) {
    float v = y[j] + bias[j];
    v = lo > v ? lo : v;
    v = hi < v ? hi : v;
    y[j] = v;
  }
}

// ---- fused shortcut (TfqnnBconv2d option residual) ----------------------------
// A block of `rows` float output rows of `channels`: out = out + residual, or
// with a post-bias out = (out + post_bias[o]) + residual, each step rounded
// to float32 (the loop every ISA compiles, vectorized for its registers).
__attribute__((always_inline)) inline void add_residual_rows(float* __restrict out,
                                                             const float* __restrict post_bias,
                                                             const float* __restrict residual,
                                                             int rows, int channels) {
  if (post_bias == nullptr) {
    const int64_t n = int64_t{rows} * channels;
    for (int64_t i = 0; i < n; ++i) out[i] = out[i] + residual[i];
    return;
  }
  for (int r = 0; r < rows; ++r) {
    float* o = out + int64_t{r} * channels;
    const float* x = residual + int64_t{r} * channels;
    for (int c = 0; c < channels; ++c) o[c] = (o[c] + post_bias[c]) + x[c];
  }
}
using AddResidualFn = void (*)(float*, const float*, const float*, int, int);

// The int8 shortcut (int8 output): out[i] = the int8 ADD (core.h, Int8Add)
// of out[i] and residual[i], for n values (the loop every ISA compiles,
// vectorized for its registers; int32 arithmetic, so every ISA gives the
// same bits).
__attribute__((always_inline)) inline void add_residual_int8_values(
    int8_t* __restrict out, const int8_t* __restrict residual, int64_t n, const Int8Add& p) {
  const int32_t am = p.a_multiplier, bm = p.b_multiplier, bias = p.bias, zo = p.output_zero_point;
  const int32_t lo = p.output_min, hi = p.output_max;
  const int shift = p.shift;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t acc = bias + int32_t{out[i]} * am + int32_t{residual[i]} * bm;
    int32_t q = (acc >> shift) + zo;
    q = q < lo ? lo : q;
    q = q > hi ? hi : q;
    out[i] = static_cast<int8_t>(q);
  }
}
using AddResidualInt8Fn = void (*)(int8_t*, const int8_t*, int64_t, const Int8Add&);
void add_residual_int8_scalar(int8_t*, const int8_t*, int64_t, const Int8Add&);
void add_residual_scalar(float*, const float*, const float*, int, int);
#if defined(__x86_64__)
void add_residual_avx2(float*, const float*, const float*, int, int);
void add_residual_avx512(float*, const float*, const float*, int, int);
void add_residual_int8_avx2(int8_t*, const int8_t*, int64_t, const Int8Add&);
void add_residual_int8_avx512(int8_t*, const int8_t*, int64_t, const Int8Add&);
#endif
#if TFQNN_NEON
void add_residual_neon(float*, const float*, const float*, int, int);
void add_residual_int8_neon(int8_t*, const int8_t*, int64_t, const Int8Add&);
#endif

// ---- threads -----------------------------------------------------------------
// Runs fn(begin, end, slot) on [0, n) cut into at most `num_threads`
// contiguous chunks, one per thread, and waits. `slot` is the running
// thread's index in [0, min(num_threads, n)) (for its scratch): each thread
// that joins the call has its own.
void parallel_for(int64_t n, int num_threads, const std::function<void(int64_t, int64_t, int)>& fn);
// As above with up to num_threads * chunks_per_thread contiguous chunks, as
// equal as the integers allow, taken one at a time by whichever thread is
// free: a thread that starts late (its core busy) leaves the rest to the
// others instead of holding a whole share.
void parallel_for(int64_t n, int num_threads, int chunks_per_thread,
                  const std::function<void(int64_t, int64_t, int)>& fn);

// How many threads (<= num_threads, <= max_chunks) are worth starting for
// `work` units (word pairs XOR-counted) with the active ISA.
int useful_threads(int num_threads, double work, int64_t max_chunks);
// The least estimated time (ns) a thread's chunk must take for
// useful_threads() to start it (0: as many threads as allowed; the test
// hooks use it); returns the previous value.
double set_min_thread_time_ns(double ns);
// How long (ns, clamped to [0, 1 s]) an idle worker spins before it sleeps
// (0: it sleeps at once; benchmarks compare settings); returns the previous.
int64_t set_thread_spin_ns(int64_t ns);

// ---- aligned scratch ---------------------------------------------------------
constexpr int kAlignWords = 16;  // 64 bytes

// The first 64-byte aligned element of `v` after growing it to hold
// `words` aligned words.
int32_t* aligned_words(std::vector<int32_t>* v, size_t words);
inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// ---- geometry ---------------------------------------------------------------
// TensorFlow's SAME/VALID along one axis (VALID with in < the dilated kernel:
// out = 0).
void conv_axis_geometry(int in, int k, int stride, int dilation, Padding padding, int* out,
                        int* pad_before);

// ---- weights ------------------------------------------------------------------
// Lays out `n` rows of `kw` words (row stride `ld`) as gemm panels:
// panel p, word k, column j at out[(p * kw + k) * kPanel + j], rows beyond n
// zero. `out` must hold panels(n) * kw * kPanel words.
inline int num_panels(int n) { return (n + kPanel - 1) / kPanel; }
void pack_panels(const int32_t* rows, int64_t ld, int n, int kw, int32_t* out);

}  // namespace core
}  // namespace tfqnn

#endif  // TFQNN_LITE_KERNELS_CORE_INTERNAL_H_
