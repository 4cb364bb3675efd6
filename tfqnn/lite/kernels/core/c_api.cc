// extern "C" test hooks of the core, for tests and debugging from Python
// (tfqnn/lite/_core.py, through ctypes). Not used by the TFLite ops.
//
// Each hook checks the scalar arguments it gets (sizes, options) and returns
// 0 on success, -1 for invalid arguments, -2 when out of memory. The buffers
// must have the sizes the arguments imply: the caller's job.
#include <chrono>
#include <cstdint>
#include <new>

#include "core.h"
#include "internal.h"

namespace {

using namespace tfqnn::core;

constexpr int kOk = 0, kInvalid = -1, kNoMemory = -2;

bool valid_transform(const float* multiplier, const float* bias, float clamp_min, float clamp_max,
                     int output_type, float int8_scale, int int8_zero_point) {
  return multiplier != nullptr && bias != nullptr && output_type >= 0 && output_type <= 2 &&
         !(clamp_min > clamp_max) && clamp_min == clamp_min && clamp_max == clamp_max &&
         int8_scale > 0.0f && int8_scale <= __builtin_huge_valf() && int8_zero_point >= -128 &&
         int8_zero_point <= 127;
}

OutputTransform make_transform(const float* multiplier, const float* bias, float clamp_min,
                               float clamp_max, int output_type, float int8_scale,
                               int int8_zero_point) {
  OutputTransform t;
  t.multiplier = multiplier;
  t.bias = bias;
  t.clamp_min = clamp_min;
  t.clamp_max = clamp_max;
  t.type = static_cast<OutputType>(output_type);
  t.int8_scale = int8_scale;
  t.int8_zero_point = int8_zero_point;
  return t;
}

// Runs f `repeats` times; seconds[i] (when not null) gets the i-th run's time.
template <typename F>
void timed(F&& f, int repeats, double* seconds) {
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    const auto end = std::chrono::steady_clock::now();
    if (seconds) seconds[i] = std::chrono::duration<double>(end - start).count();
  }
}

template <typename F>
int guarded(F&& f) {
  try {
    f();
    return kOk;
  } catch (const std::bad_alloc&) {
    return kNoMemory;
  } catch (...) {
    return kInvalid;
  }
}

}  // namespace

// isa: 0 scalar, 1 avx2, 2 avx512, 3 neon; -1 goes back to the ISA chosen at
// start-up. Returns 1 when set, 0 when the CPU lacks it.
TFQNN_EXPORT int tfqnn_core_set_isa(int isa) {
  if (isa == -1) {
    clear_isa_override();
    return 1;
  }
  if (isa < 0 || isa > 3) return 0;
  return set_isa_override(static_cast<Isa>(isa)) ? 1 : 0;
}

TFQNN_EXPORT int tfqnn_core_active_isa() { return static_cast<int>(active_isa()); }

TFQNN_EXPORT int tfqnn_core_isa_supported(int isa) {
  if (isa < 0 || isa > 3) return 0;
  return isa_supported(static_cast<Isa>(isa)) ? 1 : 0;
}

// The least estimated time (ns) of a thread's share of an op before the
// kernels start that thread; 0 makes num_threads > 1 always use threads
// (tests). Returns the previous value.
TFQNN_EXPORT double tfqnn_core_set_min_thread_work(double ns) { return set_min_thread_time_ns(ns); }

// How long (ns) the kernels' idle worker threads spin before they sleep, for
// benchmarks (benchmarks/thread_scaling.py). Returns the previous value.
TFQNN_EXPORT int64_t tfqnn_core_set_thread_spin_ns(int64_t ns) { return set_thread_spin_ns(ns); }

TFQNN_EXPORT int tfqnn_core_bitpack_float(const float* in, int64_t rows, int channels,
                                          int32_t* out) {
  if (rows < 0 || channels < 1) return kInvalid;
  return guarded([&] { bitpack_float(in, rows, channels, out); });
}

TFQNN_EXPORT int tfqnn_core_bitpack_int8(const int8_t* in, int64_t rows, int channels,
                                         int zero_point, int32_t* out) {
  if (rows < 0 || channels < 1 || zero_point < -128 || zero_point > 127) {
    return kInvalid;
  }
  return guarded([&] { bitpack_int8(in, rows, channels, zero_point, out); });
}

TFQNN_EXPORT int tfqnn_core_unpack_float(const int32_t* in, int64_t rows, int channels,
                                         float* out) {
  if (rows < 0 || channels < 1) return kInvalid;
  return guarded([&] { unpack_float(in, rows, channels, out); });
}

// output_type: 0 float, 1 int8, 2 bitpacked.
TFQNN_EXPORT int tfqnn_core_bdense(const int32_t* input, int64_t rows, const int32_t* weights,
                                   int out_features, int in_features, const float* multiplier,
                                   const float* bias, float clamp_min, float clamp_max,
                                   int output_type, float int8_scale, int int8_zero_point,
                                   void* output, int num_threads) {
  if (rows < 0 || out_features < 1 || in_features < 1 || num_threads < 1 ||
      !valid_transform(multiplier, bias, clamp_min, clamp_max, output_type, int8_scale,
                       int8_zero_point)) {
    return kInvalid;
  }
  const OutputTransform t = make_transform(multiplier, bias, clamp_min, clamp_max, output_type,
                                           int8_scale, int8_zero_point);
  return guarded(
      [&] { bdense(input, rows, weights, out_features, in_features, t, output, num_threads); });
}

// Prepared binary dense (BDense): _new prepares the weights and returns a
// handle (null if invalid); _run runs it `repeats` times (timings in
// `seconds`, when not null; benchmarks); _free releases it.
TFQNN_EXPORT void* tfqnn_core_bdense_new(const int32_t* weights, int out_features,
                                         int in_features) {
  if (out_features < 1 || in_features < 1) return nullptr;
  BDense* dense = new (std::nothrow) BDense;
  if (dense == nullptr) return nullptr;
  if (guarded([&] { dense->prepare(weights, out_features, in_features); }) != kOk) {
    delete dense;
    return nullptr;
  }
  return dense;
}

TFQNN_EXPORT int tfqnn_core_bdense_run(void* handle, const int32_t* input, int64_t rows,
                                       const float* multiplier, const float* bias, float clamp_min,
                                       float clamp_max, int output_type, float int8_scale,
                                       int int8_zero_point, void* output, int num_threads,
                                       int repeats, double* seconds) {
  if (handle == nullptr || rows < 0 || num_threads < 1 || repeats < 0 ||
      !valid_transform(multiplier, bias, clamp_min, clamp_max, output_type, int8_scale,
                       int8_zero_point)) {
    return kInvalid;
  }
  BDense* dense = static_cast<BDense*>(handle);
  const OutputTransform t = make_transform(multiplier, bias, clamp_min, clamp_max, output_type,
                                           int8_scale, int8_zero_point);
  return guarded(
      [&] { timed([&] { dense->run(input, rows, t, output, num_threads); }, repeats, seconds); });
}

TFQNN_EXPORT void tfqnn_core_bdense_free(void* handle) { delete static_cast<BDense*>(handle); }

// padding: 1 SAME, 2 VALID.
TFQNN_EXPORT int tfqnn_core_conv_geometry(int in_size, int kernel_size, int stride, int dilation,
                                          int padding, int* out_size, int* pad_before) {
  if (in_size < 1 || kernel_size < 1 || stride < 1 || dilation < 1 ||
      (padding != 1 && padding != 2)) {
    return kInvalid;
  }
  conv_axis_geometry(in_size, kernel_size, stride, dilation, static_cast<Padding>(padding),
                     out_size, pad_before);
  return kOk;
}

namespace {

// The checked shape of a bconv2d hook; out_height 0 when invalid.
BConv2dShape conv_shape(int batch, int in_height, int in_width, int channels_in, int groups,
                        int channels_out, int filter_height, int filter_width, int stride_height,
                        int stride_width, int dilation_height, int dilation_width, int padding,
                        int pad_values) {
  BConv2dShape s;
  if (batch < 1 || in_height < 1 || in_width < 1 || channels_in < 1 || groups < 1 ||
      channels_out < 1 || filter_height < 1 || filter_width < 1 || stride_height < 1 ||
      stride_width < 1 || dilation_height < 1 || dilation_width < 1 ||
      (padding != 1 && padding != 2) || (pad_values < -1 || pad_values > 1) ||
      channels_in % groups != 0 || channels_out % groups != 0 ||
      (groups > 1 && (channels_in / groups) % 32 != 0)) {
    return s;  // out_height = 0
  }
  s.batch = batch;
  s.in_height = in_height;
  s.in_width = in_width;
  s.channels_in = channels_in;
  s.groups = groups;
  s.channels_out = channels_out;
  s.filter_height = filter_height;
  s.filter_width = filter_width;
  s.stride_height = stride_height;
  s.stride_width = stride_width;
  s.dilation_height = dilation_height;
  s.dilation_width = dilation_width;
  s.padding = static_cast<Padding>(padding);
  s.pad_values = pad_values;
  compute_conv_geometry(&s);
  if (s.out_width < 1) s.out_height = 0;
  return s;
}

}  // namespace

TFQNN_EXPORT int tfqnn_core_bconv2d(
    const int32_t* input, const int32_t* filter, const float* multiplier, const float* bias,
    int batch, int in_height, int in_width, int channels_in, int groups, int channels_out,
    int filter_height, int filter_width, int stride_height, int stride_width, int dilation_height,
    int dilation_width, int padding, int pad_values, float clamp_min, float clamp_max,
    int output_type, float int8_scale, int int8_zero_point, void* output, int num_threads) {
  const BConv2dShape s = conv_shape(batch, in_height, in_width, channels_in, groups, channels_out,
                                    filter_height, filter_width, stride_height, stride_width,
                                    dilation_height, dilation_width, padding, pad_values);
  if (s.out_height < 1 || num_threads < 1 ||
      !valid_transform(multiplier, bias, clamp_min, clamp_max, output_type, int8_scale,
                       int8_zero_point)) {
    return kInvalid;
  }
  const OutputTransform t = make_transform(multiplier, bias, clamp_min, clamp_max, output_type,
                                           int8_scale, int8_zero_point);
  return guarded([&] {
    BConv2d conv;
    conv.prepare(s, filter);
    conv.run(input, t, output, num_threads);
  });
}

// Prepared binary conv2d, as tfqnn_core_bdense_new/_run/_free.
TFQNN_EXPORT void* tfqnn_core_bconv2d_new(const int32_t* filter, int batch, int in_height,
                                          int in_width, int channels_in, int groups,
                                          int channels_out, int filter_height, int filter_width,
                                          int stride_height, int stride_width, int dilation_height,
                                          int dilation_width, int padding, int pad_values) {
  const BConv2dShape s = conv_shape(batch, in_height, in_width, channels_in, groups, channels_out,
                                    filter_height, filter_width, stride_height, stride_width,
                                    dilation_height, dilation_width, padding, pad_values);
  if (s.out_height < 1) return nullptr;
  BConv2d* conv = new (std::nothrow) BConv2d;
  if (conv == nullptr) return nullptr;
  if (guarded([&] { conv->prepare(s, filter); }) != kOk) {
    delete conv;
    return nullptr;
  }
  return conv;
}

TFQNN_EXPORT int tfqnn_core_bconv2d_run(void* handle, const int32_t* input, const float* multiplier,
                                        const float* bias, float clamp_min, float clamp_max,
                                        int output_type, float int8_scale, int int8_zero_point,
                                        void* output, int num_threads, int repeats,
                                        double* seconds) {
  if (handle == nullptr || num_threads < 1 || repeats < 0 ||
      !valid_transform(multiplier, bias, clamp_min, clamp_max, output_type, int8_scale,
                       int8_zero_point)) {
    return kInvalid;
  }
  BConv2d* conv = static_cast<BConv2d*>(handle);
  const OutputTransform t = make_transform(multiplier, bias, clamp_min, clamp_max, output_type,
                                           int8_scale, int8_zero_point);
  return guarded(
      [&] { timed([&] { conv->run(input, t, output, num_threads); }, repeats, seconds); });
}

TFQNN_EXPORT void tfqnn_core_bconv2d_free(void* handle) { delete static_cast<BConv2d*>(handle); }

TFQNN_EXPORT int tfqnn_core_bmaxpool2d(const int32_t* input, int batch, int in_height, int in_width,
                                       int words, int filter_height, int filter_width,
                                       int stride_height, int stride_width, int padding,
                                       int32_t* output) {
  if (batch < 1 || in_height < 1 || in_width < 1 || words < 1 || filter_height < 1 ||
      filter_width < 1 || stride_height < 1 || stride_width < 1 || (padding != 1 && padding != 2)) {
    return kInvalid;
  }
  BMaxPoolShape s;
  s.batch = batch;
  s.in_height = in_height;
  s.in_width = in_width;
  s.words = words;
  s.filter_height = filter_height;
  s.filter_width = filter_width;
  s.stride_height = stride_height;
  s.stride_width = stride_width;
  s.padding = static_cast<Padding>(padding);
  compute_pool_geometry(&s);
  if (s.out_height < 1 || s.out_width < 1) return kInvalid;
  return guarded([&] { bmaxpool2d(input, s, output); });
}

// codebook_decode(): 0, 1 (an index out of range) or kInvalid.
TFQNN_EXPORT int tfqnn_core_codebook_decode(const uint8_t* packed, int64_t count, int bits,
                                            const float* codebook, int64_t codes, float* out) {
  if (packed == nullptr || codebook == nullptr || out == nullptr || count < 1 || bits < 1 ||
      bits > kMaxIndexBits || codes < 1 || codes > kMaxCodes) {
    return kInvalid;
  }
  return codebook_decode(packed, count, bits, codebook, codes, out);
}

// How many times codebook_decode() has run in this process (TfqnnCodebookDecode
// decodes once per model, not per invoke).
TFQNN_EXPORT int64_t tfqnn_core_codebook_decode_count() { return codebook_decode_count(); }
