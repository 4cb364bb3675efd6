// TfqnnBMaxPool2d: max pooling of bitpacked +-1 values, an AND of the words
// in each window (docs/lite_ops.md).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../core/core.h"
#include "abi.h"
#include "ops.h"
#include "validation.h"

namespace tfqnn {
namespace tflite {
namespace {

class BMaxPool2d : public Op {
 protected:
  std::string do_init(const uint8_t* data, size_t size) override {
    TFQNN_TRY(options_.parse(
        data, size, {"filter_height", "filter_width", "stride_height", "stride_width", "padding"}));
    const Options& o = options_;
    TFQNN_TRY(o.get_int("filter_height", 1, kMaxDim, &shape_.filter_height, true));
    TFQNN_TRY(o.get_int("filter_width", 1, kMaxDim, &shape_.filter_width, true));
    TFQNN_TRY(o.get_int("stride_height", 1, kMaxDim, &shape_.stride_height, false, 1));
    TFQNN_TRY(o.get_int("stride_width", 1, kMaxDim, &shape_.stride_width, false, 1));
    int padding;
    TFQNN_TRY(o.get_int("padding", 1, 2, &padding, true));
    shape_.padding = padding_of(padding);
    return "";
  }
  std::string do_prepare(TfLiteContext* context, const NodeTensors& node) override {
    Tensors ts(context, node);
    TFQNN_TRY(ts.check_counts(1, 1));
    std::vector<int> in;
    TFQNN_TRY(check_tensor(ts.input(0), "input", kTfLiteInt32, 4, &in));
    if (ts.output(0)->type != kTfLiteInt32) return "output must be int32";
    core::BMaxPoolShape s = shape_;
    s.batch = in[0];
    s.in_height = in[1];
    s.in_width = in[2];
    s.words = in[3];
    if (s.padding == core::Padding::kValid &&
        (s.filter_height > s.in_height || s.filter_width > s.in_width)) {
      return "the pool window is larger than the input with VALID padding";
    }
    core::compute_pool_geometry(&s);
    if (s.out_height <= 0 || s.out_width <= 0) return "the output would be empty";
    pool_ = s;
    if (resize(context, ts.output(0), {s.batch, s.out_height, s.out_width, s.words}) != kTfLiteOk) {
      return "cannot resize the output";
    }
    return "";
  }
  void do_invoke(TfLiteContext* context, const NodeTensors& node) override {
    Tensors ts(context, node);
    core::bmaxpool2d(static_cast<const int32_t*>(ts.input(0)->data), pool_,
                     static_cast<int32_t*>(ts.output(0)->data));
  }

 private:
  Options options_;
  core::BMaxPoolShape shape_, pool_;
};

}  // namespace

std::unique_ptr<Op> new_bmaxpool2d() { return std::make_unique<BMaxPool2d>(); }

}  // namespace tflite
}  // namespace tfqnn
