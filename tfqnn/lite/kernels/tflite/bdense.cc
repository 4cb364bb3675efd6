// TfqnnBdense: binary dense layer with the fused output transform
// (docs/lite_ops.md); the weights are laid out for the kernels once, in
// prepare().
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

class Bdense : public Op {
 protected:
  std::string do_init(const uint8_t* data, size_t size) override {
    TFQNN_TRY(options_.parse(data, size,
                             {"in_features", "output_type", "clamp_min", "clamp_max", "input_bases",
                              "weight_bases", "output_encoding"}));
    TFQNN_TRY(options_.get_int("in_features", 1, kMaxDim, &in_features_, true));
    return transform_options_.read(options_);
  }
  std::string do_prepare(TfLiteContext* context, const NodeTensors& node) override {
    Tensors ts(context, node);
    TFQNN_TRY(ts.check_counts(ts.num_inputs() == 5 ? 5 : 4, 1));
    const TransformOptions& to = transform_options_;
    const int words = core::packed_words(in_features_) * to.input_bases;
    std::vector<int> w_dims;
    TFQNN_TRY(check_tensor(ts.input(0), "input", kTfLiteInt32, -1, &in_dims_));
    if (in_dims_.back() != words) {
      return "input's last dimension must be " + str(words) +
             " words for in_features=" + str(in_features_) +
             " and input_bases=" + str(to.input_bases) + ", got " + str(in_dims_.back());
    }
    TFQNN_TRY(check_tensor(ts.input(1), "weights", kTfLiteInt32, 2, &w_dims));
    const int row_words = core::packed_words(in_features_);
    if (w_dims[1] != row_words) return "weights must have " + str(row_words) + " words per row";
    if (w_dims[0] % to.weight_bases != 0) {
      return "weights must have a multiple of weight_bases=" + str(to.weight_bases) + " rows";
    }
    TFQNN_TRY(check_constant(ts.input(1), "weights", w_dims));
    out_features_ = w_dims[0] / to.weight_bases;
    TFQNN_TRY(transform_options_.check_multi_basis(ts, ts.num_inputs(), out_features_));
    TFQNN_TRY(transform_options_.make(ts.output(0), ts.input(2), ts.input(3), &transform_,
                                      ts.num_inputs() == 5 ? ts.input(4) : nullptr));
    std::vector<int> out = in_dims_;
    out.back() = transform_options_.output_channels(out_features_);
    if (elements(out) > kMaxElements) return "output is too large";
    if (resize(context, ts.output(0), out) != kTfLiteOk) return "cannot resize the output";
    dense_.prepare(static_cast<const int32_t*>(ts.input(1)->data), out_features_, in_features_,
                   to.weight_bases);
    return "";
  }
  void do_invoke(TfLiteContext* context, const NodeTensors& node) override {
    Tensors ts(context, node);
    const int64_t rows = elements(in_dims_) / in_dims_.back();
    dense_.run(static_cast<const int32_t*>(ts.input(0)->data), rows, transform_, ts.output(0)->data,
               threads(context));
  }

 private:
  Options options_;
  TransformOptions transform_options_;
  core::OutputTransform transform_;
  core::BDense dense_;  // the weights in the kernels' layout, packed once
  int in_features_ = 0, out_features_ = 0;
  std::vector<int> in_dims_;
};

}  // namespace

std::unique_ptr<Op> new_bdense() { return std::make_unique<Bdense>(); }

}  // namespace tflite
}  // namespace tfqnn
