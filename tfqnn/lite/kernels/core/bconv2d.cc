// Binary 2-D convolution: on-the-fly im2col of packed words into blocks of
// output pixels (rows), binary GEMM against the filter panels, fused output
// transform per block.
//
// A row of the im2col block holds, for one output pixel and one group, the
// group's words of every tap in (ky, kx) order, which is the order of the
// words of a filter row (OHWI, packed along I). A tap in the padding is the
// zero word (+1 in every channel). For pad_values = 0 such a tap must add
// nothing instead of sum(w) = Cg - 2 popcount(w): the block's rows in the
// border get their K lowered by Cg and their counts lowered by popcount(w)
// of the tap. Which taps of a pixel lie in the padding depends only on its
// class along each axis (pixels near the top, bottom, left or right edge), so
// prepare() sums the padding taps' popcounts once per class pair and a border
// row subtracts one vector. For pad_values = -1 (padding pixels -1 in every
// channel) a tap must add -sum(w): its count becomes Cg - popcount(w) instead
// of popcount(w), so a border row keeps K and adds taps * Cg - 2 sums.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core.h"
#include "internal.h"

namespace tfqnn {
namespace core {
namespace {

// dst[0, n) = src[0, n): 16-byte copies, the last one overlapping the one
// before it (no loop over the tail).
inline void copy_words(int32_t* dst, const int32_t* src, int n) {
  if (n >= 4) {
    int i = 0;
    for (; i + 4 < n; i += 4) std::memcpy(dst + i, src + i, 16);
    std::memcpy(dst + n - 4, src + n - 4, 16);
  } else if (n >= 2) {
    std::memcpy(dst, src, 8);
    std::memcpy(dst + n - 2, src + n - 2, 8);
  } else if (n == 1) {
    dst[0] = src[0];
  }
}

inline void zero_words(int32_t* dst, int n) {
  if (n >= 4) {
    int i = 0;
    for (; i + 4 < n; i += 4) std::memset(dst + i, 0, 16);
    std::memset(dst + n - 4, 0, 16);
  } else if (n >= 2) {
    std::memset(dst, 0, 8);
    std::memset(dst + n - 2, 0, 8);
  } else if (n == 1) {
    dst[0] = 0;
  }
}

// n copies of `words` words: dst += ldd, src += lds after each; a fixed
// size for the common filter rows (3 taps of 1, 2, 4, 8 words...).
template <int kWords>
void copy_rows_fixed(int32_t* dst, int64_t ldd, const int32_t* src, int64_t lds, int n) {
  for (int p = 0; p < n; ++p, dst += ldd, src += lds) {
    std::memcpy(dst, src, kWords * sizeof(int32_t));
  }
}

void copy_rows(int32_t* dst, int64_t ldd, const int32_t* src, int64_t lds, int n, int words) {
  switch (words) {
    case 1: copy_rows_fixed<1>(dst, ldd, src, lds, n); return;
    case 2: copy_rows_fixed<2>(dst, ldd, src, lds, n); return;
    case 3: copy_rows_fixed<3>(dst, ldd, src, lds, n); return;
    case 4: copy_rows_fixed<4>(dst, ldd, src, lds, n); return;
    case 6: copy_rows_fixed<6>(dst, ldd, src, lds, n); return;
    case 8: copy_rows_fixed<8>(dst, ldd, src, lds, n); return;
    case 12: copy_rows_fixed<12>(dst, ldd, src, lds, n); return;
    case 16: copy_rows_fixed<16>(dst, ldd, src, lds, n); return;
    case 24: copy_rows_fixed<24>(dst, ldd, src, lds, n); return;
    default:
      for (int p = 0; p < n; ++p, dst += ldd, src += lds) copy_words(dst, src, words);
  }
}

// The active ISA's add_residual_rows (internal.h; same bits on every ISA).
AddResidualFn add_residual_kernel() {
  switch (active_isa()) {
#if defined(__x86_64__)
    case Isa::kAvx512: return add_residual_avx512;
    case Isa::kAvx2: return add_residual_avx2;
#endif
#if TFQNN_NEON
    case Isa::kNeon: return add_residual_neon;
#endif
    default: return add_residual_scalar;
  }
}

// The active ISA's add_residual_int8_values (internal.h; same bits on every ISA).
AddResidualInt8Fn add_residual_int8_kernel() {
  switch (active_isa()) {
#if defined(__x86_64__)
    case Isa::kAvx512: return add_residual_int8_avx512;
    case Isa::kAvx2: return add_residual_int8_avx2;
#endif
#if TFQNN_NEON
    case Isa::kNeon: return add_residual_int8_neon;
#endif
    default: return add_residual_int8_scalar;
  }
}

// The residual of output rows [0, rows) (row stride `channels`), columns
// [c0, c1): one call for whole rows, else one per row.
inline void add_residual_columns(AddResidualFn add_residual, float* out, const float* post_bias,
                                 const float* residual, int rows, int channels, int c0, int c1) {
  if (c0 == 0 && c1 == channels) {
    add_residual(out, post_bias, residual, rows, channels);
    return;
  }
  for (int r = 0; r < rows; ++r) {
    const int64_t at = int64_t{r} * channels + c0;
    add_residual(out + at, post_bias != nullptr ? post_bias + c0 : nullptr, residual + at, 1,
                 c1 - c0);
  }
}

// counts[0, n) -= sums[0, n).
inline void subtract_words(int32_t* __restrict counts, const int32_t* __restrict sums, int n) {
  for (int o = 0; o < n; ++o) counts[o] -= sums[o];
}

// counts[0, n) += base - 2 sums[0, n) (pad_values = -1: the padding taps'
// counts become Cg - popcount(w)).
inline void flip_words(int32_t* __restrict counts, const int32_t* __restrict sums, int n,
                       int32_t base) {
  for (int o = 0; o < n; ++o) counts[o] += base - 2 * sums[o];
}

// How run() cuts the output among threads: row chunks of whole 8-row
// units times column chunks of whole gemm panels (only where the columns
// split: a plain transform of one group, which runs on a column range).
// Up to kTasksPerThread tasks per thread, taken one at a time, so that a
// late thread leaves its share to the others and the last task is short.
// Rows only while they give at least two tasks per thread (a column chunk
// repeats its rows' im2col): QuickNet's 7x7 maps at two threads, 7 units.
// Columns too where they give fewer (1 output row: columns only).
constexpr int kTasksPerThread = 4;
struct WorkSplit {
  int64_t row_chunks;
  int col_chunks;
};
WorkSplit split_work(int64_t units, int panels, int threads) {
  const int64_t want = int64_t{threads} * kTasksPerThread;
  const int64_t row_chunks = std::min(units, want);
  if (row_chunks >= int64_t{2} * threads) return {row_chunks, 1};
  const int64_t col_chunks = std::min<int64_t>(panels, (want + row_chunks - 1) / row_chunks);
  return {row_chunks, static_cast<int>(std::max<int64_t>(col_chunks, 1))};
}

// What im2col needs of the shape.
struct Geometry {
  int H, W, words, wg, fh, fw, sh, sw, dh, dw, pt, pl, ho, wo, kw;  // words: per pixel
  int y0, y1, x0, x1;  // output pixels [y0, y1) x [x0, x1) see no padding
};

// im2col of output pixels (rows) [r, r + rb), the wg words at word `offset`
// of each input pixel (a group of one input basis): row i of `a` (kw words)
// holds those words of each tap of pixel r + i. Taps are
// copied per filter row ky: a filter row in the vertical padding is zero
// words for every pixel of the output row; otherwise the pixels whose taps
// all lie inside the image ([x0, x1)) copy the filter row's words, and the
// others copy or zero each tap.
void im2col(const Geometry& c, const int32_t* input, int offset, int64_t r, int rb, int32_t* a) {
  const int64_t image = int64_t{c.H} * c.W * c.words;
  int64_t b = r / (int64_t{c.ho} * c.wo);
  int oy = static_cast<int>(r / c.wo % c.ho), ox = static_cast<int>(r % c.wo);
  // The words of a filter row of one pixel are contiguous in the input.
  const bool contiguous_taps = c.dw == 1 && c.wg == c.words;
  const int seg = c.fw * c.wg;  // words of a filter row in a row of `a`
  const int64_t step = int64_t{c.sw} * c.words;
  for (int i = 0; i < rb;) {
    // The pixels [ox, ox + run) of output row oy.
    const int run = std::min<int>(c.wo - ox, rb - i);
    const int32_t* img = input + b * image + offset;
    const int in0 = std::min(std::max(c.x0, ox), ox + run);  // interior part of the run
    const int in1 = std::max(in0, std::min(c.x1, ox + run));
    int32_t* row0 = a + int64_t{i} * c.kw;  // pixel ox
    for (int ky = 0; ky < c.fh; ++ky) {
      const int iy = oy * c.sh - c.pt + ky * c.dh;
      int32_t* d0 = row0 + ky * seg;
      if (iy < 0 || iy >= c.H) {
        for (int p = 0; p < run; ++p) zero_words(d0 + int64_t{p} * c.kw, seg);
        continue;
      }
      const int32_t* src_row = img + int64_t{iy} * c.W * c.words;
      // Border pixels: tap by tap.
      auto border = [&](int x) {
        int32_t* d = d0 + int64_t{x - ox} * c.kw;
        for (int kx = 0; kx < c.fw; ++kx) {
          const int ix = x * c.sw - c.pl + kx * c.dw;
          if (ix >= 0 && ix < c.W) {
            copy_words(d + kx * c.wg, src_row + int64_t{ix} * c.words, c.wg);
          } else {
            zero_words(d + kx * c.wg, c.wg);
          }
        }
      };
      for (int x = ox; x < in0; ++x) border(x);
      if (in0 < in1) {
        const int n = in1 - in0;
        int32_t* d = d0 + int64_t{in0 - ox} * c.kw;
        const int32_t* src = src_row + (int64_t{in0} * c.sw - c.pl) * c.words;
        if (contiguous_taps) {
          copy_rows(d, c.kw, src, step, n, seg);
        } else {
          for (int kx = 0; kx < c.fw; ++kx) {
            copy_rows(d + kx * c.wg, c.kw, src + int64_t{kx} * c.dw * c.words, step, n, c.wg);
          }
        }
      }
      for (int x = in1; x < ox + run; ++x) border(x);
    }
    i += run;
    ox += run;
    if (ox == c.wo) {
      ox = 0;
      if (++oy == c.ho) {
        oy = 0;
        ++b;
      }
    }
  }
}

// Along one axis of `out` output positions: classes[o] numbers the distinct
// sets of taps inside [0, in) (`inside`, one 0/1 entry per tap and class).
// A tap's inside positions are an interval of o, so equal sets are
// contiguous: comparing with the last class suffices.
void axis_classes(int in, int out, int k, int stride, int dilation, int pad,
                  std::vector<int>* classes, std::vector<std::vector<char>>* inside) {
  classes->assign(static_cast<size_t>(std::max(out, 0)), 0);
  inside->clear();
  std::vector<char> mask(static_cast<size_t>(k));
  for (int o = 0; o < out; ++o) {
    for (int t = 0; t < k; ++t) {
      const int64_t i = int64_t{o} * stride - pad + int64_t{t} * dilation;
      mask[static_cast<size_t>(t)] = i >= 0 && i < in;
    }
    if (inside->empty() || inside->back() != mask) inside->push_back(mask);
    (*classes)[static_cast<size_t>(o)] = static_cast<int>(inside->size()) - 1;
  }
}

}  // namespace

void conv_axis_geometry(int in, int k, int stride, int dilation, Padding padding, int* out,
                        int* pad_before) {
  const int64_t effective = int64_t{k - 1} * dilation + 1;
  if (padding == Padding::kSame) {
    const int64_t o = (int64_t{in} + stride - 1) / stride;
    const int64_t total = std::max<int64_t>((o - 1) * stride + effective - in, 0);
    *out = static_cast<int>(o);
    *pad_before = static_cast<int>(total / 2);
  } else {
    *out = in >= effective ? static_cast<int>((in - effective) / stride + 1) : 0;
    *pad_before = 0;
  }
}

void compute_conv_geometry(BConv2dShape* s) {
  conv_axis_geometry(s->in_height, s->filter_height, s->stride_height, s->dilation_height,
                     s->padding, &s->out_height, &s->pad_top);
  conv_axis_geometry(s->in_width, s->filter_width, s->stride_width, s->dilation_width, s->padding,
                     &s->out_width, &s->pad_left);
}

void BConv2d::prepare(const BConv2dShape& shape, const int32_t* filter) {
  shape_ = shape;
  const BConv2dShape& s = shape_;
  const int groups = std::max(s.groups, 1);
  const int mb = std::max(s.weight_bases, 1);
  const int og = s.channels_out / groups;
  const int wg = packed_words(s.channels_in / groups);
  const int taps = s.filter_height * s.filter_width;
  const int kw = taps * wg;
  const int gcols = mb * og;  // gemm columns of a group: [m][o']
  const int columns = groups * gcols;
  const int panels = num_panels(gcols);
  const size_t group_words = static_cast<size_t>(panels) * kw * kPanel;
  // Filter rows in column order [g][m][o'] (the file's are [m][o]).
  std::vector<int32_t> rows;
  const int32_t* ordered = filter;
  if (mb > 1 && groups > 1) {
    rows.resize(static_cast<size_t>(columns) * kw);
    for (int g = 0; g < groups; ++g) {
      for (int m = 0; m < mb; ++m) {
        for (int j = 0; j < og; ++j) {
          const int32_t* src = filter + (int64_t{m} * s.channels_out + g * og + j) * kw;
          std::copy(src, src + kw, rows.begin() + (int64_t{g} * gcols + m * og + j) * kw);
        }
      }
    }
    ordered = rows.data();
  }
  filter_.clear();
  int32_t* packed = aligned_words(&filter_, group_words * groups);
  filter_offset_ = static_cast<size_t>(packed - filter_.data());
  for (int g = 0; g < groups; ++g) {
    pack_panels(ordered + int64_t{g} * gcols * kw, kw, gcols, kw, packed + g * group_words);
  }
  row_class_.clear();
  col_class_.clear();
  border_taps_.clear();
  border_sums_.clear();
  col_classes_ = 0;
  if (s.pad_values != 1) {
    std::vector<std::vector<char>> rows_inside, cols_inside;
    axis_classes(s.in_height, s.out_height, s.filter_height, s.stride_height, s.dilation_height,
                 s.pad_top, &row_class_, &rows_inside);
    axis_classes(s.in_width, s.out_width, s.filter_width, s.stride_width, s.dilation_width,
                 s.pad_left, &col_class_, &cols_inside);
    col_classes_ = static_cast<int>(cols_inside.size());
    const size_t classes = rows_inside.size() * cols_inside.size();
    const int n = columns;  // sums per gemm column [g][m][o']
    border_taps_.assign(classes, 0);
    border_sums_.assign(classes * n, 0);
    for (size_t cy = 0; cy < rows_inside.size(); ++cy) {
      for (size_t cx = 0; cx < cols_inside.size(); ++cx) {
        const size_t cls = cy * cols_inside.size() + cx;
        int32_t* sums = border_sums_.data() + cls * n;
        for (int ky = 0; ky < s.filter_height; ++ky) {
          for (int kx = 0; kx < s.filter_width; ++kx) {
            if (rows_inside[cy][ky] && cols_inside[cx][kx]) continue;
            ++border_taps_[cls];
            const int t = ky * s.filter_width + kx;
            for (int o = 0; o < n; ++o) {
              const int32_t* w = ordered + (int64_t{o} * taps + t) * wg;
              int32_t pc = 0;
              for (int i = 0; i < wg; ++i) pc += __builtin_popcount(static_cast<uint32_t>(w[i]));
              sums[o] += pc;
            }
          }
        }
      }
    }
  }
}

void BConv2d::run(const int32_t* input, const OutputTransform& transform, void* output,
                  int num_threads) {
  const BConv2dShape& s = shape_;
  const int64_t rows = int64_t{s.batch} * s.out_height * s.out_width;
  if (rows <= 0 || s.channels_out <= 0) return;
  const Kernels& kernels = active_kernels();
  const AddResidualFn add_residual = add_residual_kernel();
  const AddResidualInt8Fn add_residual_int8 = add_residual_int8_kernel();
  const int groups = std::max(s.groups, 1);
  const bool plain = transform.is_plain() && s.weight_bases <= 1;
  const int nb = plain ? 1 : std::max(s.input_bases, 1);
  const int mb = std::max(s.weight_bases, 1);
  const int channels = s.channels_out;
  const int og = channels / groups;
  const int gcols = mb * og;     // gemm columns of a group
  const int n = groups * gcols;  // columns of a row of counts
  const int cg = s.channels_in / groups;
  const int wg = packed_words(cg);
  const int basis_words = packed_words(s.channels_in);
  const int words = nb * basis_words;  // per input pixel
  const int fh = s.filter_height, fw = s.filter_width;
  const int taps = fh * fw;
  const int kw = taps * wg;
  const int k_bits = taps * cg;
  const int panels = num_panels(gcols);
  const size_t group_words = static_cast<size_t>(panels) * kw * kPanel;
  const int32_t* filter = filter_.data() + filter_offset_;
  const int64_t row_bytes = transform_row_bytes(transform, channels);
  const int ho = s.out_height, wo = s.out_width;
  const int H = s.in_height, W = s.in_width;
  const int sh = s.stride_height, sw = s.stride_width;
  const int dh = s.dilation_height, dw = s.dilation_width;
  const int pt = s.pad_top, pl = s.pad_left;
  // 1x1, stride 1, no padding: the input rows are the gemm's A.
  const bool direct =
      taps == 1 && nb == 1 && sh == 1 && sw == 1 && ho == H && wo == W && pt == 0 && pl == 0;
  const bool zero_pad = s.pad_values != 1 && !border_taps_.empty();
  const bool minus_pad = s.pad_values == -1;  // padding pixels -1: K stays, counts flip

  // Output pixels [y0, y1) x [x0, x1) see no padding.
  auto first_inside = [](int pad, int stride) { return (pad + stride - 1) / stride; };
  const int y0 = std::min(ho, first_inside(pt, sh));
  const int x0 = std::min(wo, first_inside(pl, sw));
  auto end_inside = [](int in, int pad, int k, int d, int stride, int out) {
    // last o with o * stride - pad + (k - 1) * d <= in - 1
    const int64_t num = int64_t{in} - 1 + pad - int64_t{k - 1} * d;
    if (num < 0) return 0;
    return static_cast<int>(std::min<int64_t>(out, num / stride + 1));
  };
  const int y1 = std::max(y0, end_inside(H, pt, fh, dh, sh, ho));
  const int x1 = std::max(x0, end_inside(W, pl, fw, dw, sw, wo));

  const Geometry geo = {H,  W,  words, wg, fh, fw, sh, sw, dh, dw,
                        pt, pl, ho,    wo, kw, y0, y1, x0, x1};

  // Rows per block: the im2col block in L1 (~16 KiB), and the counts too
  // (~16 KiB: the output transform reads them back) unless that leaves
  // fewer than 64 rows (the gemm kernels prefer tall blocks), counts <= 128 KiB.
  int64_t block = 16384 / (4 * std::max(kw, 1));
  block = std::min<int64_t>(block, std::max<int64_t>(64, 4096 / (n * nb)));
  block = std::min<int64_t>(block, 32768 / (n * nb));
  block = std::max<int64_t>(8, std::min<int64_t>(block, 512)) / 8 * 8;
  block = std::min(block, round_up(rows, 8));
  const double work = static_cast<double>(rows) * n * nb * kw;
  const int64_t units = (rows + 7) / 8;
  const int split_panels = plain && groups == 1 ? panels : 1;  // column chunks allowed
  const int threads = useful_threads(num_threads, work, units * split_panels);
  const size_t a_words = direct ? 0 : static_cast<size_t>(round_up(block * kw, kAlignWords));
  const int64_t basis_stride = block * n;  // counts of one input basis
  const size_t c_words = static_cast<size_t>(round_up(basis_stride * nb, kAlignWords));
  const size_t k_words = static_cast<size_t>(round_up(block, kAlignWords));
  const size_t per_thread = a_words + c_words + k_words;
  int32_t* scratch = aligned_words(&scratch_, per_thread * threads);

  // Rows [r0, r1) x gemm panels [p0, p1) (all of them unless split_panels
  // > 1): gemm columns [c0, c1), output channels [c0, o1) (the same unless
  // the transform is multi-basis, which gets all of them).
  auto process = [&](int64_t r0, int64_t r1, int p0, int p1, int thread) {
    const int c0 = p0 * kPanel, c1 = p1 == panels ? n : p1 * kPanel;
    const int o1 = p1 == panels ? channels : c1;
    int32_t* a_block = scratch + per_thread * thread;
    int32_t* counts = a_block + a_words;
    int32_t* row_k = counts + c_words;
    for (int64_t r = r0; r < r1; r += block) {
      const int rb = static_cast<int>(std::min(block, r1 - r));
      for (int bi = 0; bi < nb; ++bi) {
        for (int g = 0; g < groups; ++g) {
          const int offset = bi * basis_words + g * wg;
          const int32_t* a;
          int64_t lda;
          if (direct) {
            a = input + r * words + offset;
            lda = words;
          } else {
            im2col(geo, input, offset, r, rb, a_block);
            a = a_block;
            lda = kw;
          }
          const int32_t* gf = filter + g * group_words;
          int32_t* gc = counts + bi * basis_stride + g * gcols;
          for (int p = p0; p < p1; ++p) {
            const int c = p * kPanel;
            kernels.gemm_panel(a, lda, rb, gf + int64_t{p} * kw * kPanel, kw, gc + c, n,
                               std::min(kPanel, gcols - c));
          }
        }
      }
      const int32_t* rk = nullptr;
      if (zero_pad) {
        // Per run of pixels of one output row: the interior ones keep K, the
        // border ones (all of a row in the vertical border) get their class's.
        int oy = static_cast<int>(r / wo % ho), ox = static_cast<int>(r % wo);
        for (int i = 0; i < rb;) {
          const int run = std::min(wo - ox, rb - i);
          const size_t row_base = static_cast<size_t>(row_class_[oy]) * col_classes_;
          const bool inside_row = oy >= y0 && oy < y1;
          const int in0 = inside_row ? std::min(std::max(x0, ox), ox + run) : ox + run;
          const int in1 = inside_row ? std::max(in0, std::min(x1, ox + run)) : ox + run;
          auto border = [&](int x) {
            const int row = i + x - ox;
            const size_t cls = row_base + col_class_[x];
            const int outside = border_taps_[cls];
            row_k[row] = minus_pad ? k_bits : k_bits - outside * cg;
            if (outside > 0) {
              for (int bi = 0; bi < nb; ++bi) {
                int32_t* c = counts + bi * basis_stride + int64_t{row} * n + c0;
                const int32_t* sums = border_sums_.data() + cls * n + c0;
                if (minus_pad) {
                  flip_words(c, sums, c1 - c0, outside * cg);
                } else {
                  subtract_words(c, sums, c1 - c0);
                }
              }
            }
          };
          for (int x = ox; x < in0; ++x) border(x);
          std::fill(row_k + i + (in0 - ox), row_k + i + (in1 - ox), k_bits);
          for (int x = in1; x < ox + run; ++x) border(x);
          i += run;
          ox += run;
          if (ox == wo) {
            ox = 0;
            if (++oy == ho) oy = 0;
          }
        }
        rk = row_k;
      }
      char* out = static_cast<char*>(output) + r * row_bytes;
      if (plain) {
        kernels.output_transform(counts + c0, n, rb, c0, c1 - c0, k_bits, rk, transform, out, n);
      } else {
        multi_basis_transform(counts, n, basis_stride, rb, groups, channels, k_bits, rk, transform,
                              out);
      }
      if (transform.residual != nullptr && transform.type == OutputType::kFloat) {
        add_residual_columns(add_residual, reinterpret_cast<float*>(out), transform.post_bias,
                             transform.residual + r * channels, rb, channels, c0, o1);
      } else if (transform.residual_int8 != nullptr && transform.type == OutputType::kInt8) {
        int8_t* q = reinterpret_cast<int8_t*>(out);
        if (transform.post_bias_int8 != nullptr) {
          for (int i = 0; i < rb; ++i) {
            add_residual_int8(q + int64_t{i} * channels + c0, transform.post_bias_int8 + c0,
                              o1 - c0, transform.bias_add);
          }
        }
        const int8_t* residual = transform.residual_int8 + r * channels;
        if (c0 == 0 && o1 == channels) {
          add_residual_int8(q, residual, int64_t{rb} * channels, transform.add);
        } else {  // a column chunk: row by row
          for (int i = 0; i < rb; ++i) {
            const int64_t at = int64_t{i} * channels + c0;
            add_residual_int8(q + at, residual + at, o1 - c0, transform.add);
          }
        }
      }
    }
  };

  if (threads == 1) {
    process(0, rows, 0, panels, 0);
  } else {
    const WorkSplit split = split_work(units, split_panels, threads);
    const int64_t tasks = split.row_chunks * split.col_chunks;
    // One chunk of parallel_for per task: tasks <= threads * per_thread.
    const int per_thread = static_cast<int>((tasks + threads - 1) / threads);
    parallel_for(tasks, threads, per_thread, [&](int64_t t0, int64_t t1, int slot) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t ri = t / split.col_chunks, ci = t % split.col_chunks;
        const int64_t r0 = std::min(rows, units * ri / split.row_chunks * 8);
        const int64_t r1 = std::min(rows, units * (ri + 1) / split.row_chunks * 8);
        const int p0 = static_cast<int>(panels * ci / split.col_chunks);
        const int p1 = static_cast<int>(panels * (ci + 1) / split.col_chunks);
        if (r0 < r1 && p0 < p1) process(r0, r1, p0, p1, slot);
      }
    });
  }
}

}  // namespace core
}  // namespace tfqnn
