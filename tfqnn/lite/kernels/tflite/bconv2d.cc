// TfqnnBconv2d: binary 2-D convolution with the fused output transform
// (docs/lite_ops.md); the filter is laid out for the kernels once, in
// prepare(). Option `residual` 1: a fifth input, float32 of the output's
// shape, is added to the float output (the fused shortcut ADD), after an
// optional sixth, a constant float32 [channels_out] post-bias. With int8
// output (output_type 1) the residual is int8 and the op writes the int8 ADD
// of its own int8 result (options y_scale, y_zero_point) and the residual.
#include <algorithm>
#include <cmath>
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

class Bconv2d : public Op {
 protected:
  std::string do_init(const uint8_t* data, size_t size) override {
    TFQNN_TRY(options_.parse(data, size,
                             {"channels_in",
                              "groups",
                              "stride_height",
                              "stride_width",
                              "dilation_height_factor",
                              "dilation_width_factor",
                              "padding",
                              "pad_values",
                              "output_type",
                              "clamp_min",
                              "clamp_max",
                              "input_bases",
                              "weight_bases",
                              "residual",
                              "y_scale",
                              "y_zero_point",
                              "biased_scale",
                              "biased_zero_point",
                              "residual_relu",
                              "output_encoding"}));
    const Options& o = options_;
    TFQNN_TRY(o.get_int("channels_in", 1, kMaxDim, &shape_.channels_in, true));
    TFQNN_TRY(o.get_int("groups", 1, kMaxDim, &shape_.groups, false, 1));
    TFQNN_TRY(o.get_int("stride_height", 1, kMaxDim, &shape_.stride_height, false, 1));
    TFQNN_TRY(o.get_int("stride_width", 1, kMaxDim, &shape_.stride_width, false, 1));
    TFQNN_TRY(o.get_int("dilation_height_factor", 1, kMaxDim, &shape_.dilation_height, false, 1));
    TFQNN_TRY(o.get_int("dilation_width_factor", 1, kMaxDim, &shape_.dilation_width, false, 1));
    int padding;
    TFQNN_TRY(o.get_int("padding", 1, 2, &padding, true));
    shape_.padding = padding_of(padding);
    TFQNN_TRY(o.get_int("pad_values", -1, 1, &shape_.pad_values, false, 1));
    TFQNN_TRY(o.get_int("residual", 0, 1, &residual_, false, 0));
    TFQNN_TRY(o.get_float("y_scale", 0.0f, &y_scale_));
    TFQNN_TRY(o.get_int("y_zero_point", -128, 127, &y_zero_point_, false, 0));
    TFQNN_TRY(o.get_float("biased_scale", 0.0f, &biased_scale_));
    TFQNN_TRY(o.get_int("biased_zero_point", -128, 127, &biased_zero_point_, false, 0));
    TFQNN_TRY(o.get_int("residual_relu", 0, 1, &residual_relu_, false, 0));
    if (shape_.channels_in % shape_.groups != 0) {
      return "option 'groups' must divide channels_in";
    }
    if (shape_.groups > 1 && (shape_.channels_in / shape_.groups) % 32 != 0) {
      return "grouped convolution needs channels_in / groups to be a multiple of 32";
    }
    return transform_options_.read(o);
  }
  std::string do_prepare(TfLiteContext* context, const NodeTensors& node) override {
    Tensors ts(context, node);
    // 4 inputs; 5 with output thresholds or a residual; 6 with a residual and a post-bias.
    const size_t most = residual_ ? 6 : 5;
    TFQNN_TRY(ts.check_counts(std::min(std::max<size_t>(ts.num_inputs(), 4), most), 1));
    const TransformOptions& to = transform_options_;
    std::vector<int> in, f;
    TFQNN_TRY(check_tensor(ts.input(0), "input", kTfLiteInt32, 4, &in));
    const int pixel_words = core::packed_words(shape_.channels_in) * to.input_bases;
    if (in[3] != pixel_words) {
      return "input must have " + str(pixel_words) +
             " words per pixel for channels_in=" + str(shape_.channels_in) +
             " and input_bases=" + str(to.input_bases) + ", got " + str(in[3]);
    }
    TFQNN_TRY(check_tensor(ts.input(1), "filter", kTfLiteInt32, 4, &f));
    const int group_words = core::packed_words(shape_.channels_in / shape_.groups);
    if (f[3] != group_words) {
      return "filter must have " + str(group_words) + " words per tap, got " + str(f[3]);
    }
    if (f[0] % to.weight_bases != 0) {
      return "filter must have a multiple of weight_bases=" + str(to.weight_bases) + " rows";
    }
    const int channels_out = f[0] / to.weight_bases;
    if (channels_out % shape_.groups != 0) return "output channels must be a multiple of groups";
    TFQNN_TRY(check_constant(ts.input(1), "filter", f));
    if (residual_ && to.output_type == 2) {
      return "option 'residual' needs float or int8 output (output_type 0 or 1), got output_type " +
             str(to.output_type);
    }
    const bool int8_residual = residual_ && to.output_type == 1;
    if (int8_residual && !(y_scale_ > 0 && std::isfinite(y_scale_))) {
      return "an int8 residual needs option 'y_scale', a positive finite number";
    }
    if (residual_ && ts.num_inputs() != 5 && ts.num_inputs() != 6) {
      return "option 'residual' needs a fifth input (and an optional sixth, the post-bias)";
    }
    // With a residual the fifth input is the residual, not output thresholds.
    const size_t transform_inputs = residual_ ? 4 : ts.num_inputs();
    TFQNN_TRY(transform_options_.check_multi_basis(ts, transform_inputs, channels_out));
    TFQNN_TRY(transform_options_.make(ts.output(0), ts.input(2), ts.input(3), &transform_,
                                      transform_inputs == 5 ? ts.input(4) : nullptr));
    core::BConv2dShape s = shape_;
    s.batch = in[0];
    s.in_height = in[1];
    s.in_width = in[2];
    s.channels_out = channels_out;
    s.input_bases = to.input_bases;
    s.weight_bases = to.weight_bases;
    s.filter_height = f[1];
    s.filter_width = f[2];
    // Effective filter extent, in int64 so huge dilations cannot overflow.
    const int64_t eh = int64_t(s.filter_height - 1) * s.dilation_height + 1;
    const int64_t ew = int64_t(s.filter_width - 1) * s.dilation_width + 1;
    if (s.padding == core::Padding::kValid && (eh > s.in_height || ew > s.in_width)) {
      return "the dilated filter is larger than the input with VALID padding";
    }
    if (eh > kMaxDim || ew > kMaxDim) return "the dilated filter is too large";
    core::compute_conv_geometry(&s);
    if (s.out_height <= 0 || s.out_width <= 0) return "the output would be empty";
    const std::vector<int> out = {s.batch, s.out_height, s.out_width,
                                  transform_options_.output_channels(s.channels_out)};
    if (elements(out) > kMaxElements) return "output is too large";
    transform_.post_bias = nullptr;
    if (residual_) {
      std::vector<int> r;
      TFQNN_TRY(check_tensor(ts.input(4), "residual", int8_residual ? kTfLiteInt8 : kTfLiteFloat32,
                             4, &r));
      TFQNN_TRY(check_shape(r, out, "residual"));
      transform_.post_bias_int8 = nullptr;
      if (int8_residual) {
        TFQNN_TRY(prepare_int8_adds(ts, s.channels_out));
      } else if (ts.num_inputs() == 6) {
        std::vector<int> pb;
        TFQNN_TRY(check_tensor(ts.input(5), "post_bias", kTfLiteFloat32, 1, &pb));
        TFQNN_TRY(check_shape(pb, {s.channels_out}, "post_bias"));
        TFQNN_TRY(check_constant(ts.input(5), "post_bias", pb));
        transform_.post_bias = static_cast<const float*>(ts.input(5)->data);
      }
    }
    const int64_t taps = int64_t(s.filter_height) * s.filter_width;
    if (taps * group_words > kMaxDim) return "the filter is too large";
    if (resize(context, ts.output(0), out) != kTfLiteOk) return "cannot resize the output";
    conv_.prepare(s, static_cast<const int32_t*>(ts.input(1)->data));
    return "";
  }
  // The int8 ADDs of an int8 residual (and post-bias): the op's own result
  // is y at y_scale / y_zero_point, then (with a sixth input, a constant int8
  // [channels_out] post-bias) y + post_bias at biased_scale /
  // biased_zero_point, and the output tensor's scale and zero point are the
  // residual ADD's.
  std::string prepare_int8_adds(const Tensors& ts, int channels_out) {
    auto quantized = [](const TfLiteTensor* t, const char* what) -> std::string {
      const float sc = t->params.scale;
      const int z = t->params.zero_point;
      if (!(sc > 0) || !std::isfinite(sc) || z < -128 || z > 127) {
        return std::string(what) +
               " must be int8 with a positive finite scale and a zero point in [-128, 127]";
      }
      return "";
    };
    const char* range = " must lie in [2^-10, 2^8)";
    const TfLiteTensor* res = ts.input(4);
    TFQNN_TRY(quantized(res, "residual"));
    float sum_scale = y_scale_;  // what the residual is added to
    int sum_zero_point = y_zero_point_;
    if (ts.num_inputs() == 6) {
      const TfLiteTensor* pb = ts.input(5);
      std::vector<int> d;
      TFQNN_TRY(check_tensor(pb, "post_bias", kTfLiteInt8, 1, &d));
      TFQNN_TRY(check_shape(d, {channels_out}, "post_bias"));
      TFQNN_TRY(check_constant(pb, "post_bias", d));
      TFQNN_TRY(quantized(pb, "post_bias"));
      if (!(biased_scale_ > 0 && std::isfinite(biased_scale_))) {
        return "an int8 post_bias needs option 'biased_scale', a positive finite number";
      }
      if (!core::int8_add_params(y_scale_, y_zero_point_, pb->params.scale, pb->params.zero_point,
                                 biased_scale_, biased_zero_point_, &transform_.bias_add)) {
        return std::string(
                   "int8 post_bias: y_scale / biased_scale and post_bias scale / "
                   "biased_scale") +
               range;
      }
      transform_.post_bias_int8 = static_cast<const int8_t*>(pb->data);
      sum_scale = biased_scale_;
      sum_zero_point = biased_zero_point_;
    }
    if (!core::int8_add_params(sum_scale, sum_zero_point, res->params.scale, res->params.zero_point,
                               transform_.int8_scale, transform_.int8_zero_point,
                               &transform_.add)) {
      return std::string("int8 residual: ") + (ts.num_inputs() == 6 ? "biased_scale" : "y_scale") +
             " / output scale and residual scale / output scale" + range;
    }
    // A ReLU after the sum (the ADD's fused activation): q >= the output's zero point.
    transform_.add.output_min = residual_relu_ ? transform_.int8_zero_point : -128;
    transform_.add.output_max = 127;
    transform_.int8_scale = y_scale_;
    transform_.int8_zero_point = y_zero_point_;
    return "";
  }

  void do_invoke(TfLiteContext* context, const NodeTensors& node) override {
    Tensors ts(context, node);
    // The residual's buffer is known only now (an arena tensor).
    const bool int8_residual = residual_ && transform_.type == core::OutputType::kInt8;
    transform_.residual =
        residual_ && !int8_residual ? static_cast<const float*>(ts.input(4)->data) : nullptr;
    transform_.residual_int8 =
        int8_residual ? static_cast<const int8_t*>(ts.input(4)->data) : nullptr;
    conv_.run(static_cast<const int32_t*>(ts.input(0)->data), transform_, ts.output(0)->data,
              threads(context));
  }

 private:
  Options options_;
  TransformOptions transform_options_;
  core::OutputTransform transform_;
  core::BConv2dShape shape_;
  core::BConv2d conv_;
  int residual_ = 0;           // 1: input 4 is added to the float output (int8: an int8 ADD)
  float y_scale_ = 0.0f;       // int8 residual: the op's own int8 result's scale
  int y_zero_point_ = 0;       // and zero point
  float biased_scale_ = 0.0f;  // int8 post-bias: the scale of y + post_bias
  int biased_zero_point_ = 0;  // and its zero point
  int residual_relu_ = 0;      // int8 residual: 1 clamps the sum at the output's zero point
};

}  // namespace

std::unique_ptr<Op> new_bconv2d() { return std::make_unique<Bconv2d>(); }

}  // namespace tflite
}  // namespace tfqnn
