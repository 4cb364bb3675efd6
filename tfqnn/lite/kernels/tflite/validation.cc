#include "validation.h"

#include <cmath>
#include <cstdlib>

namespace tfqnn {
namespace tflite {

const char* type_name(int type) {
  switch (type) {
    case kTfLiteFloat32: return "float32";
    case kTfLiteInt32: return "int32";
    case kTfLiteInt8: return "int8";
    case kTfLiteUInt8: return "uint8";
    default: return "another type";
  }
}

std::string str(int64_t v) { return std::to_string(v); }

std::string Tensors::check_counts(size_t inputs, size_t outputs) const {
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

namespace {

size_t type_size(int type) { return type == kTfLiteInt8 || type == kTfLiteUInt8 ? 1 : 4; }

bool is_constant(const TfLiteTensor* t) {
  return t->allocation_type == kTfLiteMmapRo || t->allocation_type == kTfLitePersistentRo;
}

}  // namespace

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

std::string Options::parse(const uint8_t* data, size_t size, const std::set<std::string>& allowed) {
  std::string error;
  if (!map_.parse(data, size, &error)) return error;
  for (const auto& kv : map_.keys()) {
    if (!allowed.count(kv.first)) return "unknown option '" + kv.first + "'";
  }
  return "";
}

std::string Options::get_int(const char* key, int lo, int hi, int* out, bool required,
                             int fallback) const {
  int64_t v;
  if (!map_.has(key)) {
    if (required) return std::string("missing option '") + key + "'";
    *out = fallback;
    return "";
  }
  if (!map_.get_int(key, &v)) return std::string("option '") + key + "' must be an int";
  if (v < lo || v > hi) {
    return std::string("option '") + key + "' must be in [" + str(lo) + ", " + str(hi) + "], got " +
           str(v);
  }
  *out = int(v);
  return "";
}

std::string Options::get_float(const char* key, float fallback, float* out) const {
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

core::Padding padding_of(int p) { return p == 1 ? core::Padding::kSame : core::Padding::kValid; }

std::string TransformOptions::read(const Options& o) {
  TFQNN_TRY(o.get_int("output_type", 0, 2, &output_type, false, 0));
  TFQNN_TRY(o.get_float("clamp_min", clamp_min, &clamp_min));
  TFQNN_TRY(o.get_float("clamp_max", clamp_max, &clamp_max));
  if (clamp_min > clamp_max) return "option 'clamp_min' is above 'clamp_max'";
  TFQNN_TRY(o.get_int("input_bases", 1, kMaxBases, &input_bases, false, 1));
  TFQNN_TRY(o.get_int("weight_bases", 1, kMaxBases, &weight_bases, false, 1));
  TFQNN_TRY(o.get_int("output_encoding", 0, 1, &output_encoding, false, 0));
  return "";
}

std::string TransformOptions::check_multi_basis(const Tensors& ts, size_t inputs, int n) {
  std::vector<int> d;
  const int64_t terms = int64_t(input_bases) * weight_bases;
  TFQNN_TRY(check_tensor(ts.input(2), "multiplier", kTfLiteFloat32, 1, &d));
  if (d[0] != terms * n) {
    return "multiplier must have shape [" + str(terms * n) + "] (input_bases x weight_bases x " +
           str(n) + " channels), got [" + str(d[0]) + "]";
  }
  TFQNN_TRY(check_constant(ts.input(2), "multiplier", d));
  TFQNN_TRY(check_tensor(ts.input(3), "bias", kTfLiteFloat32, 1, &d));
  TFQNN_TRY(check_shape(d, {n}, "bias"));
  TFQNN_TRY(check_constant(ts.input(3), "bias", d));
  num_thresholds = 0;
  if (inputs == 5) {
    if (output_type != 2) return "output thresholds (a fifth input) need output_type 2";
    TFQNN_TRY(check_thresholds(ts.input(4), "thresholds", &num_thresholds));
    TFQNN_TRY(check_encoding(ts.input(4), "thresholds", num_thresholds, output_encoding));
  } else if (output_encoding != 0) {
    return "option 'output_encoding' needs output thresholds (a fifth input)";
  }
  return "";
}

std::string check_encoding(const TfLiteTensor* t, const char* what, int count, int encoding) {
  if (encoding == 0) return "";
  if (count != (1 << core::threshold_bases(count, core::Encoding::kBinary)) - 1) {
    return std::string(what) + " must have 2^k - 1 values for binary encoding, got " + str(count);
  }
  const float* v = static_cast<const float*>(t->data);
  for (int i = 1; i < count; ++i) {
    if (v[i] < v[i - 1]) return std::string(what) + " must not decrease for binary encoding";
  }
  return "";
}

std::string check_thresholds(const TfLiteTensor* t, const char* what, int* count) {
  std::vector<int> d;
  TFQNN_TRY(check_tensor(t, what, kTfLiteFloat32, 1, &d));
  TFQNN_TRY(check_constant(t, what, d));
  if (d[0] > kMaxBases) {
    return std::string(what) + " must have at most " + str(kMaxBases) + " values, got " + str(d[0]);
  }
  const float* v = static_cast<const float*>(t->data);
  for (int i = 0; i < d[0]; ++i) {
    if (std::isnan(v[i])) return std::string(what) + " must not be NaN";
  }
  *count = d[0];
  return "";
}

std::string TransformOptions::make(const TfLiteTensor* out, const TfLiteTensor* multiplier,
                                   const TfLiteTensor* bias, core::OutputTransform* t,
                                   const TfLiteTensor* thresholds) const {
  if (out->type != output_tflite_type()) {
    return std::string("output must be ") + type_name(output_tflite_type()) + " for output_type " +
           str(output_type) + ", got " + type_name(out->type);
  }
  t->multiplier = static_cast<const float*>(multiplier->data);
  t->bias = static_cast<const float*>(bias->data);
  t->clamp_min = clamp_min;
  t->clamp_max = clamp_max;
  t->type = static_cast<core::OutputType>(output_type);
  t->input_bases = input_bases;
  t->weight_bases = weight_bases;
  t->thresholds = thresholds ? static_cast<const float*>(thresholds->data) : nullptr;
  t->num_thresholds = thresholds ? num_thresholds : 0;
  t->encoding = static_cast<core::Encoding>(output_encoding);
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

}  // namespace tflite
}  // namespace tfqnn
