// Binary max pooling: the max of +-1 values is -1 only where all are -1, so
// an output word is the AND of the words in its window (padding ignored).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core.h"
#include "internal.h"

namespace tfqnn {
namespace core {

void compute_pool_geometry(BMaxPoolShape* s) {
  conv_axis_geometry(s->in_height, s->filter_height, s->stride_height, 1, s->padding,
                     &s->out_height, &s->pad_top);
  conv_axis_geometry(s->in_width, s->filter_width, s->stride_width, 1, s->padding, &s->out_width,
                     &s->pad_left);
}

// Separable: for each output row, the AND of the window's input rows (one
// contiguous pass per row, which the compiler vectorizes), then of each
// window's columns in that row. The same words as the plain window loop.
void bmaxpool2d(const int32_t* input, const BMaxPoolShape& s, int32_t* output) {
  const int words = s.words;
  const int64_t row_words = int64_t{s.in_width} * words;
  std::vector<int32_t> rows(static_cast<size_t>(row_words));
  for (int b = 0; b < s.batch; ++b) {
    const int32_t* img = input + int64_t{b} * s.in_height * row_words;
    for (int oy = 0; oy < s.out_height; ++oy) {
      const int ys = oy * s.stride_height - s.pad_top;
      const int y_lo = std::max(ys, 0), y_hi = std::min(ys + s.filter_height, s.in_height);
      int32_t* r = rows.data();
      std::fill(r, r + row_words, -1);  // all -1: the identity of AND
      for (int y = y_lo; y < y_hi; ++y) {
        const int32_t* p = img + y * row_words;
        for (int64_t i = 0; i < row_words; ++i) r[i] &= p[i];
      }
      int32_t* out_row = output + (int64_t{b} * s.out_height + oy) * s.out_width * words;
      for (int ox = 0; ox < s.out_width; ++ox) {
        const int xs = ox * s.stride_width - s.pad_left;
        const int x_lo = std::max(xs, 0), x_hi = std::min(xs + s.filter_width, s.in_width);
        int32_t* o = out_row + int64_t{ox} * words;
        std::fill(o, o + words, -1);
        for (int x = x_lo; x < x_hi; ++x) {
          const int32_t* p = r + int64_t{x} * words;
          for (int w = 0; w < words; ++w) o[w] &= p[w];
        }
      }
    }
  }
}

}  // namespace core
}  // namespace tfqnn
