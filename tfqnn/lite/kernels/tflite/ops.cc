#include "ops.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <set>

#include "../core/core.h"
#include "flexbuffer_map.h"

namespace tfqnn {
namespace tflite {

const char* const kOpNames[] = {"TfqnnQuantize", "TfqnnDequantize", "TfqnnBdense", "TfqnnBconv2d",
                                "TfqnnBMaxPool2d"};
const int kNumOps = sizeof(kOpNames) / sizeof(kOpNames[0]);

bool is_tfqnn_op(const char* custom_name) {
  if (custom_name == nullptr) return false;
  for (int i = 0; i < kNumOps; ++i) {
    if (std::strcmp(custom_name, kOpNames[i]) == 0) return true;
  }
  return false;
}

namespace {

// Largest tensor (in elements) the kernels accept: keeps every index and byte
// count of the core inside int32/int64 arithmetic.
constexpr int64_t kMaxElements = int64_t(1) << 31;

const char* type_name(int type) {
  switch (type) {
    case kTfLiteFloat32: return "float32";
    case kTfLiteInt32: return "int32";
    case kTfLiteInt8: return "int8";
    default: return "another type";
  }
}

std::string str(int64_t v) { return std::to_string(v); }

// Shapes and checked access to the tensors of a node.
class Tensors {
 public:
  Tensors(TfLiteContext* context, const NodeTensors& node) : context_(context), node_(node) {}

  std::string check_counts(size_t inputs, size_t outputs) const {
    if (node_.inputs.size() != inputs || node_.outputs.size() != outputs) {
      return "expects " + str(inputs) + " inputs and " + str(outputs) + " output, got " +
             str(node_.inputs.size()) + " and " + str(node_.outputs.size());
    }
    for (int i : node_.inputs) {
      if (i < 0 || size_t(i) >= context_->tensors_size) return "bad input tensor index";
    }
    for (int i : node_.outputs) {
      if (i < 0 || size_t(i) >= context_->tensors_size) return "bad output tensor index";
      // Resizing an output that is also an input would change the input's
      // shape (and buffer) under the op.
      for (int j : node_.inputs) {
        if (i == j) return "output tensor " + str(i) + " is also an input";
      }
      // A constant output (a model's tensor with a buffer) would be written
      // into the model's read-only data when its shape needs no resize.
      const int allocation = context_->tensors[i].allocation_type;
      if (allocation == kTfLiteMmapRo || allocation == kTfLitePersistentRo) {
        return "output tensor " + str(i) + " must not be a constant tensor";
      }
    }
    return "";
  }
  TfLiteTensor* input(int i) const { return &context_->tensors[node_.inputs[i]]; }
  TfLiteTensor* output(int i) const { return &context_->tensors[node_.outputs[i]]; }

 private:
  TfLiteContext* context_;
  const NodeTensors& node_;
};

std::vector<int> dims_of(const TfLiteTensor* t) {
  std::vector<int> d;
  if (t->dims == nullptr) return d;
  d.assign(t->dims->data, t->dims->data + t->dims->size);
  return d;
}

int64_t elements(const std::vector<int>& dims) {
  int64_t n = 1;
  for (int d : dims) n *= d;
  return n;
}

size_t type_size(int type) { return type == kTfLiteInt8 ? 1 : 4; }

bool is_constant(const TfLiteTensor* t) {
  return t->allocation_type == kTfLiteMmapRo || t->allocation_type == kTfLitePersistentRo;
}

// Checks type, rank (-1: at least 1) and positive dims, and that a constant
// tensor's data is there with the bytes of its shape (the runtime allocates
// the others); returns the dims.
std::string check_tensor(const TfLiteTensor* t, const char* what, int type, int rank,
                         std::vector<int>* dims) {
  if (t->type != type) {
    return std::string(what) + " must be " + type_name(type) + ", got " + type_name(t->type);
  }
  if (t->dims == nullptr || t->dims->size < 0 || t->dims->size > 8) {
    return std::string(what) + " has no valid shape";
  }
  *dims = dims_of(t);
  if (rank >= 0 && int(dims->size()) != rank) {
    return std::string(what) + " must have rank " + str(rank) + ", got " + str(dims->size());
  }
  if (rank < 0 && dims->empty()) return std::string(what) + " must have rank >= 1";
  int64_t n = 1;
  for (int d : *dims) {
    if (d <= 0) return std::string(what) + " has a dimension <= 0";
    n *= d;
    if (n > kMaxElements) return std::string(what) + " is too large";
  }
  if (is_constant(t) && (t->data == nullptr || t->bytes != size_t(n) * type_size(t->type))) {
    return std::string(what) + " is constant but has no data or the wrong number of bytes";
  }
  return "";
}

// A constant input: read-only data present and exactly as large as its shape.
std::string check_constant(const TfLiteTensor* t, const char* what, const std::vector<int>& dims) {
  if (!is_constant(t)) {
    return std::string(what) + " must be a constant tensor";
  }
  if (t->data == nullptr || t->bytes != size_t(elements(dims)) * type_size(t->type)) {
    return std::string(what) + " has no data or the wrong number of bytes";
  }
  return "";
}

std::string check_shape(const std::vector<int>& dims, const std::vector<int>& expected,
                        const char* what) {
  if (dims != expected) {
    std::string e = std::string(what) + " must have shape [";
    for (size_t i = 0; i < expected.size(); ++i) e += (i ? "," : "") + str(expected[i]);
    e += "], got [";
    for (size_t i = 0; i < dims.size(); ++i) e += (i ? "," : "") + str(dims[i]);
    return e + "]";
  }
  return "";
}

TfLiteStatus resize(TfLiteContext* context, TfLiteTensor* t, const std::vector<int>& dims) {
  if (t->dims != nullptr && dims_of(t) == dims) return kTfLiteOk;
  auto* array =
      static_cast<TfLiteIntArray*>(std::malloc(sizeof(TfLiteIntArray) + dims.size() * sizeof(int)));
  if (array == nullptr) return kTfLiteError;
  array->size = int(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) array->data[i] = dims[i];
  return context->ResizeTensor(context, t, array);  // takes ownership
}

// ---- options -------------------------------------------------------------

class Options {
 public:
  std::string parse(const uint8_t* data, size_t size, const std::set<std::string>& allowed) {
    std::string error;
    if (!map_.parse(data, size, &error)) return error;
    for (const auto& kv : map_.keys()) {
      if (!allowed.count(kv.first)) return "unknown option '" + kv.first + "'";
    }
    return "";
  }
  // Integer option in [lo, hi]; `fallback` when absent and not required.
  std::string get_int(const char* key, int lo, int hi, int* out, bool required,
                      int fallback = 0) const {
    int64_t v;
    if (!map_.has(key)) {
      if (required) return std::string("missing option '") + key + "'";
      *out = fallback;
      return "";
    }
    if (!map_.get_int(key, &v)) return std::string("option '") + key + "' must be an int";
    if (v < lo || v > hi) {
      return std::string("option '") + key + "' must be in [" + str(lo) + ", " + str(hi) +
             "], got " + str(v);
    }
    *out = int(v);
    return "";
  }
  std::string get_float(const char* key, float fallback, float* out) const {
    double v;
    if (!map_.has(key)) {
      *out = fallback;
      return "";
    }
    if (!map_.get_float(key, &v) || std::isnan(v)) {
      return std::string("option '") + key + "' must be a number";
    }
    *out = float(v);
    return "";
  }

 private:
  FlexbufferMap map_;
};

constexpr int kMaxDim = 1 << 24;
#define TFQNN_TRY(expr)         \
  do {                          \
    std::string e_ = (expr);    \
    if (!e_.empty()) return e_; \
  } while (0)

// Output transform options shared by Bdense and Bconv2d.
struct TransformOptions {
  int output_type = 0;
  float clamp_min = -std::numeric_limits<float>::infinity();
  float clamp_max = std::numeric_limits<float>::infinity();

  std::string read(const Options& o) {
    TFQNN_TRY(o.get_int("output_type", 0, 2, &output_type, false, 0));
    TFQNN_TRY(o.get_float("clamp_min", clamp_min, &clamp_min));
    TFQNN_TRY(o.get_float("clamp_max", clamp_max, &clamp_max));
    if (clamp_min > clamp_max) return "option 'clamp_min' is above 'clamp_max'";
    return "";
  }
  int output_tflite_type() const {
    return output_type == 0 ? kTfLiteFloat32 : output_type == 1 ? kTfLiteInt8 : kTfLiteInt32;
  }
  int output_channels(int n) const { return output_type == 2 ? core::packed_words(n) : n; }
  // Checks the output tensor's type (and int8 quantization) and fills the
  // core transform with multiplier and bias of `n` channels.
  std::string make(const TfLiteTensor* out, const TfLiteTensor* multiplier,
                   const TfLiteTensor* bias, core::OutputTransform* t) const {
    if (out->type != output_tflite_type()) {
      return std::string("output must be ") + type_name(output_tflite_type()) +
             " for output_type " + str(output_type) + ", got " + type_name(out->type);
    }
    t->multiplier = static_cast<const float*>(multiplier->data);
    t->bias = static_cast<const float*>(bias->data);
    t->clamp_min = clamp_min;
    t->clamp_max = clamp_max;
    t->type = static_cast<core::OutputType>(output_type);
    if (output_type == 1) {
      const float s = out->params.scale;
      const int z = out->params.zero_point;
      if (!(s > 0) || !std::isfinite(s) || z < -128 || z > 127) {
        return "int8 output needs a positive finite scale and a zero point in [-128, 127]";
      }
      t->int8_scale = s;
      t->int8_zero_point = z;
    }
    return "";
  }
};

// Multiplier and bias: constant float32 [n].
std::string check_affine(const Tensors& ts, int first, int n) {
  std::vector<int> d;
  const char* names[2] = {"multiplier", "bias"};
  for (int k = 0; k < 2; ++k) {
    TFQNN_TRY(check_tensor(ts.input(first + k), names[k], kTfLiteFloat32, 1, &d));
    TFQNN_TRY(check_shape(d, {n}, names[k]));
    TFQNN_TRY(check_constant(ts.input(first + k), names[k], d));
  }
  return "";
}

// ---- the ops -------------------------------------------------------------

class Quantize : public Op {
 public:
  std::string init(const uint8_t* data, size_t size) { return options_.parse(data, size, {}); }
  std::string do_prepare(TfLiteContext* context, const NodeTensors& node) override {
    Tensors ts(context, node);
    TFQNN_TRY(ts.check_counts(1, 1));
    const TfLiteTensor* in = ts.input(0);
    const int type = in->type == kTfLiteInt8 ? kTfLiteInt8 : kTfLiteFloat32;
    TFQNN_TRY(check_tensor(in, "input", type, -1, &in_dims_));
    // As many channels as Dequantize's option allows: packed_words() and the
    // core's channel arithmetic are int.
    if (in_dims_.back() > kMaxDim) {
      return "input's last dimension must be at most " + str(kMaxDim) + ", got " +
             str(in_dims_.back());
    }
    if (ts.output(0)->type != kTfLiteInt32) return "output must be int32";
    out_dims_ = in_dims_;
    out_dims_.back() = core::packed_words(in_dims_.back());
    if (resize(context, ts.output(0), out_dims_) != kTfLiteOk) return "cannot resize the output";
    return "";
  }
  void do_invoke(TfLiteContext* context, const NodeTensors& node) override {
    Tensors ts(context, node);
    const TfLiteTensor* in = ts.input(0);
    const int channels = in_dims_.back();
    const int64_t rows = elements(in_dims_) / channels;
    auto* out = static_cast<int32_t*>(ts.output(0)->data);
    if (in->type == kTfLiteInt8) {
      core::bitpack_int8(static_cast<const int8_t*>(in->data), rows, channels,
                         in->params.zero_point, out);
    } else {
      core::bitpack_float(static_cast<const float*>(in->data), rows, channels, out);
    }
  }

 private:
  Options options_;
  std::vector<int> in_dims_, out_dims_;
};

class Dequantize : public Op {
 public:
  std::string init(const uint8_t* data, size_t size) {
    TFQNN_TRY(options_.parse(data, size, {"channels"}));
    return options_.get_int("channels", 1, kMaxDim, &channels_, true);
  }
  std::string do_prepare(TfLiteContext* context, const NodeTensors& node) override {
    Tensors ts(context, node);
    TFQNN_TRY(ts.check_counts(1, 1));
    TFQNN_TRY(check_tensor(ts.input(0), "input", kTfLiteInt32, -1, &in_dims_));
    if (in_dims_.back() != core::packed_words(channels_)) {
      return "input's last dimension must be " + str(core::packed_words(channels_)) +
             " words for channels=" + str(channels_) + ", got " + str(in_dims_.back());
    }
    if (ts.output(0)->type != kTfLiteFloat32) return "output must be float32";
    std::vector<int> out = in_dims_;
    out.back() = channels_;
    if (elements(out) > kMaxElements) return "output is too large";
    if (resize(context, ts.output(0), out) != kTfLiteOk) return "cannot resize the output";
    return "";
  }
  void do_invoke(TfLiteContext* context, const NodeTensors& node) override {
    Tensors ts(context, node);
    const int64_t rows = elements(in_dims_) / in_dims_.back();
    core::unpack_float(static_cast<const int32_t*>(ts.input(0)->data), rows, channels_,
                       static_cast<float*>(ts.output(0)->data));
  }

 private:
  Options options_;
  int channels_ = 0;
  std::vector<int> in_dims_;
};

class Bdense : public Op {
 public:
  std::string init(const uint8_t* data, size_t size) {
    TFQNN_TRY(options_.parse(data, size, {"in_features", "output_type", "clamp_min", "clamp_max"}));
    TFQNN_TRY(options_.get_int("in_features", 1, kMaxDim, &in_features_, true));
    return transform_options_.read(options_);
  }
  std::string do_prepare(TfLiteContext* context, const NodeTensors& node) override {
    Tensors ts(context, node);
    TFQNN_TRY(ts.check_counts(4, 1));
    const int words = core::packed_words(in_features_);
    std::vector<int> w_dims;
    TFQNN_TRY(check_tensor(ts.input(0), "input", kTfLiteInt32, -1, &in_dims_));
    if (in_dims_.back() != words) {
      return "input's last dimension must be " + str(words) +
             " words for in_features=" + str(in_features_) + ", got " + str(in_dims_.back());
    }
    TFQNN_TRY(check_tensor(ts.input(1), "weights", kTfLiteInt32, 2, &w_dims));
    if (w_dims[1] != words) return "weights must have " + str(words) + " words per row";
    TFQNN_TRY(check_constant(ts.input(1), "weights", w_dims));
    out_features_ = w_dims[0];
    TFQNN_TRY(check_affine(ts, 2, out_features_));
    TFQNN_TRY(transform_options_.make(ts.output(0), ts.input(2), ts.input(3), &transform_));
    std::vector<int> out = in_dims_;
    out.back() = transform_options_.output_channels(out_features_);
    if (elements(out) > kMaxElements) return "output is too large";
    if (resize(context, ts.output(0), out) != kTfLiteOk) return "cannot resize the output";
    dense_.prepare(static_cast<const int32_t*>(ts.input(1)->data), out_features_, in_features_);
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

core::Padding padding_of(int p) { return p == 1 ? core::Padding::kSame : core::Padding::kValid; }

class Bconv2d : public Op {
 public:
  std::string init(const uint8_t* data, size_t size) {
    TFQNN_TRY(options_.parse(data, size,
                             {"channels_in", "groups", "stride_height", "stride_width",
                              "dilation_height_factor", "dilation_width_factor", "padding",
                              "pad_values", "output_type", "clamp_min", "clamp_max"}));
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
    TFQNN_TRY(o.get_int("pad_values", 0, 1, &shape_.pad_values, false, 1));
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
    TFQNN_TRY(ts.check_counts(4, 1));
    std::vector<int> in, f;
    TFQNN_TRY(check_tensor(ts.input(0), "input", kTfLiteInt32, 4, &in));
    if (in[3] != core::packed_words(shape_.channels_in)) {
      return "input must have " + str(core::packed_words(shape_.channels_in)) +
             " words per pixel for channels_in=" + str(shape_.channels_in) + ", got " + str(in[3]);
    }
    TFQNN_TRY(check_tensor(ts.input(1), "filter", kTfLiteInt32, 4, &f));
    const int group_words = core::packed_words(shape_.channels_in / shape_.groups);
    if (f[3] != group_words) {
      return "filter must have " + str(group_words) + " words per tap, got " + str(f[3]);
    }
    if (f[0] % shape_.groups != 0) return "output channels must be a multiple of groups";
    TFQNN_TRY(check_constant(ts.input(1), "filter", f));
    TFQNN_TRY(check_affine(ts, 2, f[0]));
    TFQNN_TRY(transform_options_.make(ts.output(0), ts.input(2), ts.input(3), &transform_));
    core::BConv2dShape s = shape_;
    s.batch = in[0];
    s.in_height = in[1];
    s.in_width = in[2];
    s.channels_out = f[0];
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
    const int64_t taps = int64_t(s.filter_height) * s.filter_width;
    if (taps * group_words > kMaxDim) return "the filter is too large";
    if (resize(context, ts.output(0), out) != kTfLiteOk) return "cannot resize the output";
    conv_.prepare(s, static_cast<const int32_t*>(ts.input(1)->data));
    return "";
  }
  void do_invoke(TfLiteContext* context, const NodeTensors& node) override {
    Tensors ts(context, node);
    conv_.run(static_cast<const int32_t*>(ts.input(0)->data), transform_, ts.output(0)->data,
              threads(context));
  }

 private:
  Options options_;
  TransformOptions transform_options_;
  core::OutputTransform transform_;
  core::BConv2dShape shape_;
  core::BConv2d conv_;
};

class BMaxPool2d : public Op {
 public:
  std::string init(const uint8_t* data, size_t size) {
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

template <typename T>
std::unique_ptr<Op> make(const std::string& name, const uint8_t* data, size_t size) {
  auto op = std::make_unique<T>();
  std::string error;
  try {
    error = op->init(data, size);
  } catch (const std::exception& e) {
    error = std::string("cannot read options: ") + e.what();
  }
  op->set_identity(name, error);
  return op;
}

}  // namespace

int Op::threads(const TfLiteContext* context) const {
  if (num_threads_ > 0) return num_threads_;
  return context->recommended_num_threads > 0 ? context->recommended_num_threads : 1;
}

TfLiteStatus Op::prepare(TfLiteContext* context, const NodeTensors& node) {
  prepared_ = false;
  std::string error = init_error_;
  if (error.empty()) {
    try {
      error = do_prepare(context, node);
    } catch (const std::exception& e) {
      error = std::string("failed: ") + e.what();
    }
  }
  if (!error.empty()) {
    context->ReportError(context, "%s: %s", name_.c_str(), error.c_str());
    return kTfLiteError;
  }
  prepared_ = true;
  return kTfLiteOk;
}

TfLiteStatus Op::invoke(TfLiteContext* context, const NodeTensors& node) {
  if (!prepared_) {
    context->ReportError(context, "%s: invoked before a successful prepare", name_.c_str());
    return kTfLiteError;
  }
  try {
    do_invoke(context, node);
  } catch (const std::exception& e) {
    context->ReportError(context, "%s: failed: %s", name_.c_str(), e.what());
    return kTfLiteError;
  }
  return kTfLiteOk;
}

std::unique_ptr<Op> create_op(const std::string& name, const uint8_t* options, size_t size) {
  std::unique_ptr<Op> op;
  if (name == "TfqnnQuantize")
    op = make<Quantize>(name, options, size);
  else if (name == "TfqnnDequantize")
    op = make<Dequantize>(name, options, size);
  else if (name == "TfqnnBdense")
    op = make<Bdense>(name, options, size);
  else if (name == "TfqnnBconv2d")
    op = make<Bconv2d>(name, options, size);
  else if (name == "TfqnnBMaxPool2d")
    op = make<BMaxPool2d>(name, options, size);
  return op;
}

}  // namespace tflite
}  // namespace tfqnn
