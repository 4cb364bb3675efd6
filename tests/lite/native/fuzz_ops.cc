// Fuzz driver for tfqnn's TFLite glue (tfqnn/lite/kernels/tflite/): custom
// options parsing, Prepare's validation and, when Prepare accepts a node,
// Invoke on buffers of exactly the sizes the tensors claim. Built with the
// whole kernel library under ASan and UBSan by tests/lite/test_fuzz.py
// (objects cached in build/fuzz/), in short:
//
//   g++ -std=c++17 -O1 -g -fsanitize=address,undefined,float-cast-overflow
//       -fno-sanitize-recover=all -D_GLIBCXX_ASSERTIONS -I. -rdynamic
//       tests/lite/native/fuzz_ops.cc tfqnn/lite/kernels/**/*.cc -pthread -ldl
//   fuzz_ops --seed 1 --cases 10000      # counts on stdout, exit 0 if clean
//   fuzz_ops --seed 1 --case 1234        # replay one case, with its description
//   fuzz_ops ... --progress FILE         # FILE names the case running now
//
// A fake TfLiteContext (the structs of abi.h) holds the tensors;
// ResizeTensor replaces dims and reallocates the data to the new byte size,
// and the node's other non-constant tensors get exactly sized buffers after
// Prepare, as AllocateTensors does. Every case is derived from (seed, index)
// alone. Most cases start from a valid node of one op and perturb one thing
// (an option, a tensor's type, rank, dims, allocation or data, the node's
// tensor lists, the op name, the option bytes), so that a good share passes
// Prepare and runs; the rest perturb several things or are random. A valid
// TfqnnQuantize has, half of the time, a thresholds input (sorted, in any
// order, with a NaN, empty, too many; option `encoding` 0 or 1), counted
// apart in the summary ("quantize thresholds ..."). Each case
// drives the op through one of the three entry points of the library:
// create_op() + Op::prepare/invoke, the op registerer's TfLiteRegistration
// (through a fake MutableOpResolver::AddCustom), or the external delegate
// (through a fake GetExecutionPlan / ReplaceNodeSubsetsWithDelegateKernels),
// with the kernels' ISA (scalar, AVX2, AVX-512) and thread count varied.
//
// Besides the sanitizers, the driver checks invariants and exits 1 when one
// is broken: a failed Prepare reports an error; a successful one leaves every
// output with a shape of positive dims; Invoke never writes into a constant
// tensor (their bytes are compared before and after); Invoke without a
// successful Prepare fails.
#include <dlfcn.h>
#include <fcntl.h>
#include <sanitizer/common_interface_defs.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/lite/native/flexbuffer_writer.h"
#include "tfqnn/lite/kernels/tflite/abi.h"
#include "tfqnn/lite/kernels/tflite/ops.h"

// The library's exported C entry points (registration.cc).
extern "C" {
void TfqnnRegisterOps(void* resolver);
int TfqnnCanRegisterOps();
TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t num_options,
                                              void (*report_error)(const char*));
void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate);
}

namespace {

using fuzz::FbEntries;
using fuzz::FbValue;

// ---- random numbers ---------------------------------------------------------

uint64_t splitmix(uint64_t* s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() { return splitmix(&s); }
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
  int range(int lo, int hi) { return lo + int(below(uint64_t(int64_t(hi) - lo + 1))); }
  bool chance(double p) { return double(next() >> 11) * 0x1.0p-53 < p; }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }
  // Small sizes, mostly 1..hi, sometimes a power of two or near one.
  int dim(int hi) {
    if (chance(0.1)) return pick(std::vector<int>{1, 2, 31, 32, 33, 63, 64, 65});
    return range(1, hi);
  }
};

// ---- cases ------------------------------------------------------------------

// TfLiteType codes beyond the ones abi.h names, for wrong-type cases.
constexpr int kFloat16 = 10, kInt64 = 4, kUInt8 = 3, kBool = 6, kInt16 = 7, kString = 5,
              kFloat64 = 11, kComplex64 = 8;

size_t type_size(int type) {
  switch (type) {
    case kTfLiteFloat32:
    case kTfLiteInt32: return 4;
    case kTfLiteInt8:
    case kUInt8:
    case kBool: return 1;
    case kInt16:
    case kFloat16: return 2;
    case kInt64:
    case kFloat64:
    case kComplex64: return 8;
    default: return 1;
  }
}

const char* type_name(int type) {
  switch (type) {
    case kTfLiteFloat32: return "float32";
    case kTfLiteInt32: return "int32";
    case kTfLiteInt8: return "int8";
    case kTfLiteNoType: return "notype";
    default: return "other";
  }
}

enum DataMode { kDataExact = 0, kDataNull = 1, kDataWrongSize = 2 };

struct TensorSpec {
  int type = kTfLiteFloat32;
  bool has_dims = true;
  std::vector<int> dims;
  int alloc = kTfLiteArenaRw;
  int data_mode = kDataExact;  // constants only: arena data comes after Prepare
  int64_t byte_delta = 0;      // kDataWrongSize: bytes = exact + delta (>= 0)
  float scale = 0.0f;
  int32_t zero_point = 0;
  // Constants: 0 random bits, 1 floats, 2 special floats, 3 non-decreasing
  // floats (infinities too), 4 floats with one NaN.
  int fill = 0;
};

struct Case {
  uint64_t seed = 0;
  int op = 0;  // index into kOpNames, or -1 for a random name
  std::string name;
  FbEntries entries;  // options before serialization
  std::vector<uint8_t> options;
  bool options_null = false;  // pass a null pointer (with options.size())
  std::vector<TensorSpec> tensors;
  std::vector<int> inputs, outputs;
  int recommended_threads = 1;
  int op_threads = 0;  // direct path: Op::set_num_threads
  int isa = 0;
  bool small_thread_work = false;  // set_min_work_per_thread(0)
  int path = 0;                    // 0 create_op, 1 op registerer, 2 delegate
  bool reprepare = false;          // a second prepare + invoke after changing a dim
  std::vector<std::string> perturbations;
  std::string feature;  // counted apart in the summary (e.g. "quantize thresholds")
};

const std::vector<std::string> kKnownKeys = {"channels",
                                             "in_features",
                                             "output_type",
                                             "clamp_min",
                                             "clamp_max",
                                             "channels_in",
                                             "groups",
                                             "stride_height",
                                             "stride_width",
                                             "dilation_height_factor",
                                             "dilation_width_factor",
                                             "padding",
                                             "pad_values",
                                             "filter_height",
                                             "filter_width",
                                             "bits",
                                             "residual",
                                             "y_scale",
                                             "y_zero_point",
                                             "encoding",
                                             "output_encoding"};

const std::vector<int64_t> kSpecialInts = {0,
                                           -1,
                                           1,
                                           2,
                                           3,
                                           4,
                                           31,
                                           32,
                                           33,
                                           64,
                                           1 << 16,
                                           (1 << 24) - 1,
                                           1 << 24,
                                           (1 << 24) + 1,
                                           1 << 30,
                                           INT32_MAX,
                                           INT32_MIN,
                                           int64_t(1) << 31,
                                           int64_t(1) << 32,
                                           -(int64_t(1) << 31) - 1,
                                           INT64_MAX,
                                           INT64_MIN};

const std::vector<int> kSpecialDims = {0,       -1,        -2,        -32,   1 << 20, 1 << 24,
                                       1 << 30, INT32_MAX, INT32_MIN, 46341, 65536};

const std::vector<int> kTypes = {kTfLiteFloat32,
                                 kTfLiteInt32,
                                 kTfLiteInt8,
                                 kTfLiteNoType,
                                 kUInt8,
                                 kInt64,
                                 kBool,
                                 kInt16,
                                 kFloat16,
                                 kString,
                                 kFloat64,
                                 17,
                                 18,
                                 19,
                                 255,
                                 -1};

double special_float(Rng& r) {
  static const std::vector<double> v = {0.0,
                                        -0.0,
                                        1.0,
                                        -1.0,
                                        1e30,
                                        -1e30,
                                        1e300,
                                        -1e300,
                                        3.4028234663852886e38,
                                        std::numeric_limits<double>::infinity(),
                                        -std::numeric_limits<double>::infinity(),
                                        std::numeric_limits<double>::quiet_NaN(),
                                        1e-45,
                                        5e-324};
  return r.pick(v);
}

FbValue int_value(Rng& r, int64_t v) {
  // Mostly how the converter writes ints; sometimes uint, bool or indirect.
  const double p = r.uniform();
  if (p < 0.85) return FbValue::Int(v);
  if (p < 0.9 && v >= 0) return FbValue::UInt(uint64_t(v));
  if (p < 0.93 && (v == 0 || v == 1)) return FbValue::Bool(v != 0);
  FbValue x = FbValue::Int(v);
  x.type = (v >= 0 && r.chance(0.5)) ? fuzz::kFbIndirectUInt : fuzz::kFbIndirectInt;
  if (r.chance(0.3)) x.child_width = 8;
  return x;
}

FbValue float_value(Rng& r, double v) {
  if (r.chance(0.1)) {
    FbValue x = FbValue::Float(v);
    x.type = fuzz::kFbIndirectFloat;
    return x;
  }
  return FbValue::Float(v);
}

void set_entry(FbEntries* e, const std::string& key, FbValue v) {
  for (auto& kv : *e) {
    if (kv.first == key) {
      kv.second = v;
      return;
    }
  }
  e->emplace_back(key, v);
}

// Adds an optional key with its value, or leaves it out (the default).
void maybe_int(Rng& r, FbEntries* e, const char* key, int64_t v, int64_t fallback) {
  if (v != fallback || r.chance(0.3)) set_entry(e, key, int_value(r, v));
}

TensorSpec tensor(int type, std::vector<int> dims) {
  TensorSpec t;
  t.type = type;
  t.dims = std::move(dims);
  return t;
}

TensorSpec constant(int type, std::vector<int> dims, int fill = 0) {
  TensorSpec t = tensor(type, std::move(dims));
  t.alloc = kTfLiteMmapRo;
  t.fill = fill;
  return t;
}

int words_of(int c) { return (c + 31) / 32; }

// Leading dims with a bounded element count.
std::vector<int> lead_dims(Rng& r, int max_rank, int64_t budget) {
  std::vector<int> d;
  const int rank = r.range(0, max_rank);
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) {
    int v = r.range(1, 5);
    if (n * v > budget) v = 1;
    n *= v;
    d.push_back(v);
  }
  return d;
}

// The output tensor as the model would declare it: the right shape, or one
// that Prepare has to replace.
TensorSpec output_tensor(Rng& r, int type, std::vector<int> dims) {
  TensorSpec t = tensor(type, dims);
  const double p = r.uniform();
  if (p < 0.15) {
    t.dims = {};  // rank 0: resized
  } else if (p < 0.25) {
    t.has_dims = false;
  } else if (p < 0.35 && !t.dims.empty()) {
    t.dims.back() += 1;
  }
  return t;
}

void add_transform(Rng& r, FbEntries* e, int* output_type, TensorSpec* out_template) {
  *output_type = r.range(0, 2);
  maybe_int(r, e, "output_type", *output_type, 0);
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  if (r.chance(0.5)) lo = r.chance(0.5) ? 0.0 : -r.uniform() * 10;
  if (r.chance(0.5)) hi = r.uniform() * 50;
  if (lo > hi) std::swap(lo, hi);
  if (!std::isinf(lo) || r.chance(0.2)) set_entry(e, "clamp_min", float_value(r, lo));
  if (!std::isinf(hi) || r.chance(0.2)) set_entry(e, "clamp_max", float_value(r, hi));
  if (*output_type == 1) {
    out_template->scale = float(0.01 + r.uniform() * 2);
    out_template->zero_point = r.range(-128, 127);
  }
}

int out_tflite_type(int output_type) {
  return output_type == 0 ? kTfLiteFloat32 : output_type == 1 ? kTfLiteInt8 : kTfLiteInt32;
}

// Bases of n thresholds (core::threshold_bases): n, or with binary
// encoding the k of 2^k - 1 >= n.
int threshold_bases(int n, int encoding) {
  if (encoding == 0) return n;
  int k = 0;
  while ((1 << k) - 1 < n) ++k;
  return k;
}

// TfqnnQuantize's thresholds (multi-basis inputs), in half of the cases: a
// constant float32 [N] second input, N valid (1..kMaxBases, 2^k - 1 with
// option `encoding` 1) or not (0, too many, not 2^k - 1), its values
// non-decreasing, in any order or with a NaN; now and then option
// `encoding` 1 without thresholds. Returns the output bases.
int quantize_thresholds(Rng& r, Case* c) {
  const bool binary = r.chance(0.4);
  if (!r.chance(0.5)) {
    if (binary && r.chance(0.1)) {
      maybe_int(r, &c->entries, "encoding", 1, 0);
      c->feature = "quantize thresholds";
    }
    return 1;
  }
  c->feature = "quantize thresholds";
  const int max_bases = 32;  // validation.h's kMaxBases
  int count;
  switch (r.below(8)) {
    case 0: count = 0; break;                            // empty
    case 1: count = max_bases + r.range(1, 40); break;   // too many
    case 2: count = binary ? r.range(1, 40) : 1; break;  // binary: mostly not 2^k - 1
    default: count = binary ? (1 << r.range(1, 5)) - 1 : r.range(1, max_bases); break;
  }
  maybe_int(r, &c->entries, "encoding", binary ? 1 : 0, 0);
  const int fill = r.pick(std::vector<int>{3, 3, 3, 1, 4});  // sorted, any order, a NaN
  c->tensors.push_back(constant(kTfLiteFloat32, {count}, fill));
  return count > 0 ? threshold_bases(count, binary ? 1 : 0) : 1;
}

// A valid node of op `op` (most of the time: the sizes are random, so a
// VALID window may still not fit).
void valid_node(Rng& r, int op, Case* c) {
  c->op = op;
  c->name = tfqnn::tflite::kOpNames[op];
  FbEntries& e = c->entries;
  std::vector<TensorSpec>& t = c->tensors;
  switch (op) {
    case 0: {  // TfqnnQuantize
      std::vector<int> d = lead_dims(r, 3, 64);
      const int ch = r.dim(r.chance(0.2) ? 200 : 70);
      d.push_back(ch);
      const bool int8 = r.chance(0.3);
      TensorSpec in = tensor(int8 ? kTfLiteInt8 : kTfLiteFloat32, d);
      if (int8) {
        in.scale = float(r.uniform());
        in.zero_point = r.chance(0.2) ? int32_t(r.next()) : r.range(-128, 127);
      }
      t.push_back(in);
      const int bases = quantize_thresholds(r, c);
      d.back() = words_of(ch) * bases;
      t.push_back(output_tensor(r, kTfLiteInt32, d));
      break;
    }
    case 1: {  // TfqnnDequantize
      const int ch = r.dim(r.chance(0.2) ? 300 : 100);
      set_entry(&e, "channels", int_value(r, ch));
      std::vector<int> d = lead_dims(r, 3, 64);
      d.push_back(words_of(ch));
      t.push_back(tensor(kTfLiteInt32, d));
      d.back() = ch;
      t.push_back(output_tensor(r, kTfLiteFloat32, d));
      break;
    }
    case 2: {  // TfqnnBdense
      const int k = r.dim(r.chance(0.2) ? 700 : 130);
      const int n = r.dim(r.chance(0.2) ? 150 : 70);
      set_entry(&e, "in_features", int_value(r, k));
      int output_type;
      TensorSpec out;
      add_transform(r, &e, &output_type, &out);
      std::vector<int> d = lead_dims(r, 3, 40);
      if (r.chance(0.1)) d = {r.range(1, 300)};  // enough rows for threads and blocks
      d.push_back(words_of(k));
      t.push_back(tensor(kTfLiteInt32, d));
      t.push_back(constant(kTfLiteInt32, {n, words_of(k)}));
      t.push_back(constant(kTfLiteFloat32, {n}, r.chance(0.1) ? 2 : 1));
      t.push_back(constant(kTfLiteFloat32, {n}, r.chance(0.1) ? 2 : 1));
      d.back() = output_type == 2 ? words_of(n) : n;
      TensorSpec o = output_tensor(r, out_tflite_type(output_type), d);
      o.scale = out.scale;
      o.zero_point = out.zero_point;
      t.push_back(o);
      break;
    }
    case 3: {  // TfqnnBconv2d
      int groups = 1, cin, cout;
      if (r.chance(0.2)) {
        groups = r.range(2, 4);
        cin = groups * 32 * r.range(1, 2);
        cout = groups * r.range(1, 3);
      } else {
        cin = r.dim(r.chance(0.2) ? 130 : 70);
        cout = r.dim(40);
      }
      // Sometimes a wider geometry: big kernels, strides and dilations,
      // SAME windows larger than the input.
      const bool wide = r.chance(0.15);
      const int kh = r.range(1, wide ? 7 : 3), kw = r.range(1, wide ? 7 : 3);
      const int sh = r.range(1, wide ? 9 : 3), sw = r.range(1, wide ? 9 : 3);
      const int dh = r.chance(0.8) ? 1 : r.range(2, wide ? 5 : 3);
      const int dw = r.chance(0.8) ? 1 : r.range(2, wide ? 5 : 3);
      const int padding = r.range(1, 2);
      const int eh = (kh - 1) * dh + 1, ew = (kw - 1) * dw + 1;
      const int h = padding == 2 ? eh + r.range(0, wide ? 12 : 6) : r.range(1, wide ? 20 : 9);
      const int w = padding == 2 ? ew + r.range(0, wide ? 12 : 6) : r.range(1, wide ? 20 : 9);
      const int batch = r.range(1, wide ? 3 : 2);
      set_entry(&e, "channels_in", int_value(r, cin));
      maybe_int(r, &e, "groups", groups, 1);
      maybe_int(r, &e, "stride_height", sh, 1);
      maybe_int(r, &e, "stride_width", sw, 1);
      maybe_int(r, &e, "dilation_height_factor", dh, 1);
      maybe_int(r, &e, "dilation_width_factor", dw, 1);
      set_entry(&e, "padding", int_value(r, padding));
      maybe_int(r, &e, "pad_values", r.range(0, 1), 1);
      int output_type;
      TensorSpec out;
      add_transform(r, &e, &output_type, &out);
      t.push_back(tensor(kTfLiteInt32, {batch, h, w, words_of(cin)}));
      t.push_back(constant(kTfLiteInt32, {cout, kh, kw, words_of(cin / groups)}));
      t.push_back(constant(kTfLiteFloat32, {cout}, 1));
      t.push_back(constant(kTfLiteFloat32, {cout}, 1));
      const int ho = padding == 1 ? (h + sh - 1) / sh : (h - eh) / sh + 1;
      const int wo = padding == 1 ? (w + sw - 1) / sw : (w - ew) / sw + 1;
      if (output_type == 0 && r.chance(0.3)) {  // a fused shortcut: input 4
        set_entry(&e, "residual", int_value(r, 1));
        t.push_back(tensor(kTfLiteFloat32, {batch, ho, wo, cout}));
      } else if (output_type == 1 && r.chance(0.4)) {  // an int8 shortcut (an int8 ADD)
        set_entry(&e, "residual", int_value(r, 1));
        set_entry(&e, "y_scale", float_value(r, out.scale * std::exp2(r.uniform() * 8 - 4)));
        set_entry(&e, "y_zero_point", int_value(r, r.range(-128, 127)));
        TensorSpec res = tensor(kTfLiteInt8, {batch, ho, wo, cout});
        res.scale = float(out.scale * std::exp2(r.uniform() * 8 - 4));
        res.zero_point = r.range(-128, 127);
        t.push_back(res);
      }
      TensorSpec o = output_tensor(r, out_tflite_type(output_type),
                                   {batch, ho, wo, output_type == 2 ? words_of(cout) : cout});
      o.scale = out.scale;
      o.zero_point = out.zero_point;
      t.push_back(o);
      break;
    }
    case 4: {  // TfqnnBMaxPool2d
      const bool wide = r.chance(0.15);
      const int fh = r.range(1, wide ? 9 : 3), fw = r.range(1, wide ? 9 : 3);
      const int sh = r.range(1, wide ? 9 : 3), sw = r.range(1, wide ? 9 : 3);
      const int padding = r.range(1, 2);
      const int h = padding == 2 ? fh + r.range(0, 6) : r.range(1, wide ? 20 : 9);
      const int w = padding == 2 ? fw + r.range(0, 6) : r.range(1, wide ? 20 : 9);
      const int batch = r.range(1, 2), words = r.range(1, 4);
      set_entry(&e, "filter_height", int_value(r, fh));
      set_entry(&e, "filter_width", int_value(r, fw));
      maybe_int(r, &e, "stride_height", sh, 1);
      maybe_int(r, &e, "stride_width", sw, 1);
      set_entry(&e, "padding", int_value(r, padding));
      t.push_back(tensor(kTfLiteInt32, {batch, h, w, words}));
      const int ho = padding == 1 ? (h + sh - 1) / sh : (h - fh) / sh + 1;
      const int wo = padding == 1 ? (w + sw - 1) / sw : (w - fw) / sw + 1;
      t.push_back(output_tensor(r, kTfLiteInt32, {batch, ho, wo, words}));
      break;
    }
    default: {  // TfqnnCodebookDecode
      const int bits = r.range(1, 16);
      // Often a codebook of 2^bits entries (every index valid), else fewer
      // (random indices out of range) or, rarely, more than allowed.
      int codes = r.chance(0.5) ? (1 << bits) : r.range(1, 1 << bits);
      if (r.chance(0.03)) codes = (1 << 16) + r.range(1, 3);
      set_entry(&e, "bits", int_value(r, bits));
      std::vector<int> d = lead_dims(r, 3, 64);
      if (d.empty() || r.chance(0.2)) d.push_back(r.range(1, r.chance(0.1) ? 3000 : 40));
      int64_t n = 1;
      for (int v : d) n *= v;
      t.push_back(constant(kUInt8, {int((n * bits + 7) / 8)}));
      t.push_back(constant(kTfLiteFloat32, {codes}, 1));
      t.push_back(output_tensor(r, kTfLiteFloat32, d));
      break;
    }
  }
  const int n_in = int(t.size()) - 1;
  for (int i = 0; i < n_in; ++i) c->inputs.push_back(i);
  c->outputs.push_back(n_in);
  // Sometimes unused tensors around, and the node's tensors elsewhere.
  if (r.chance(0.2)) {
    const int extra = r.range(1, 3);
    for (int i = 0; i < extra; ++i) t.push_back(tensor(kTfLiteFloat32, {r.range(1, 4)}));
    std::vector<int> perm(t.size());
    for (size_t i = 0; i < perm.size(); ++i) perm[i] = int(i);
    for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[r.below(i)]);
    std::vector<TensorSpec> moved(t.size());
    for (size_t i = 0; i < t.size(); ++i) moved[perm[i]] = t[i];
    t = moved;
    for (int& i : c->inputs) i = perm[i];
    for (int& i : c->outputs) i = perm[i];
  }
}

std::string random_key(Rng& r) {
  const double p = r.uniform();
  if (p < 0.5) return r.pick(kKnownKeys);
  if (p < 0.6) return "";
  std::string k;
  const int n = r.range(1, p < 0.9 ? 12 : 300);
  for (int i = 0; i < n; ++i) k.push_back(char(r.range(1, 255)));
  return k;
}

FbValue random_value(Rng& r) {
  switch (r.below(9)) {
    case 0: return int_value(r, r.pick(kSpecialInts));
    case 1: return FbValue::Int(int64_t(r.next()));
    case 2: return FbValue::UInt(r.next());
    case 3: return float_value(r, special_float(r));
    case 4: return float_value(r, (r.uniform() - 0.5) * 100);
    case 5: return FbValue::Bool(r.chance(0.5));
    case 6: return FbValue::String(std::string(size_t(r.range(0, 40)), 'x'));
    case 7: return FbValue::Null();
    default: return int_value(r, r.range(-3, 40));
  }
}

void serialize_options(Rng& r, Case* c) {
  // Empty options are sent as no bytes at all, like the converter does.
  if (c->entries.empty() && r.chance(0.7)) {
    c->options.clear();
    return;
  }
  const std::vector<int> widths = {1, 1, 1, 2, 4, 8};
  c->options = fuzz::write_map(c->entries, r.pick(widths), r.pick(widths), r.pick(widths));
}

// ---- perturbations ----------------------------------------------------------

void mutate_bytes(Rng& r, Case* c) {
  std::vector<uint8_t>& b = c->options;
  switch (r.below(8)) {
    case 0: {  // flip bits
      if (b.empty()) break;
      const int n = r.range(1, 4);
      for (int i = 0; i < n; ++i) b[r.below(b.size())] ^= uint8_t(1u << r.below(8));
      c->perturbations.push_back("options: bit flips");
      return;
    }
    case 1: {  // a byte set to a value that matters to the format
      if (b.empty()) break;
      const std::vector<int> v = {0, 1, 2, 4, 8, 3, 0x24, 0x25, 0x26, 0x27, 0x7f, 0x80, 0xff};
      b[r.below(b.size())] = uint8_t(r.pick(v));
      c->perturbations.push_back("options: special byte");
      return;
    }
    case 2:  // truncate
      b.resize(r.below(b.size() + 1));
      c->perturbations.push_back("options: truncated");
      return;
    case 3: {  // bytes appended
      const int n = r.range(1, 16);
      for (int i = 0; i < n; ++i) b.push_back(uint8_t(r.next()));
      c->perturbations.push_back("options: bytes appended");
      return;
    }
    case 4: {  // bytes prepended (offsets are relative: still a valid map)
      const int n = r.range(1, 16);
      std::vector<uint8_t> p(static_cast<size_t>(n));
      for (auto& x : p) x = uint8_t(r.next());
      b.insert(b.begin(), p.begin(), p.end());
      c->perturbations.push_back("options: bytes prepended");
      return;
    }
    case 5: {  // root width / type bytes
      if (b.size() < 2) break;
      b[b.size() - 1 - r.below(2)] = uint8_t(r.next());
      c->perturbations.push_back("options: root bytes");
      return;
    }
    case 6:  // null pointer with a size
      c->options_null = true;
      if (b.empty()) b.resize(size_t(r.range(1, 8)));
      c->perturbations.push_back("options: null pointer");
      return;
    default: break;
  }
  const int n = r.range(0, 64);
  b.resize(size_t(n));
  for (auto& x : b) x = uint8_t(r.next());
  c->perturbations.push_back("options: random bytes");
}

void mutate_entries(Rng& r, Case* c) {
  FbEntries& e = c->entries;
  switch (r.below(7)) {
    case 0:
      if (!e.empty()) {
        const size_t i = r.below(e.size());
        c->perturbations.push_back("options: drop " + e[i].first);
        e.erase(e.begin() + long(i));
        return;
      }
      break;
    case 1: {
      const std::string k = random_key(r);
      c->perturbations.push_back("options: add key");
      e.emplace_back(k, random_value(r));
      return;
    }
    case 2:
      if (!e.empty()) {  // a duplicate key
        const size_t i = r.below(e.size());
        c->perturbations.push_back("options: duplicate " + e[i].first);
        e.emplace_back(e[i].first, random_value(r));
        return;
      }
      break;
    case 3:
      if (!e.empty()) {  // shuffle keys
        for (size_t i = e.size(); i > 1; --i) std::swap(e[i - 1], e[r.below(i)]);
        c->perturbations.push_back("options: key order");
        return;
      }
      break;
    case 4: {  // clamps
      const bool lo = r.chance(0.5);
      set_entry(&e, lo ? "clamp_min" : "clamp_max", float_value(r, special_float(r)));
      c->perturbations.push_back("options: clamp");
      return;
    }
    default: break;
  }
  if (e.empty()) {
    e.emplace_back(random_key(r), random_value(r));
    c->perturbations.push_back("options: add key");
    return;
  }
  const size_t i = r.below(e.size());
  e[i].second = random_value(r);
  c->perturbations.push_back("options: value of " + e[i].first);
}

// a + b with two's complement wrap-around (dims may be INT32_MAX).
int add_wrap(int a, int b) { return int(uint32_t(a) + uint32_t(b)); }

int random_dim(Rng& r) { return r.chance(0.7) ? r.pick(kSpecialDims) : int(r.next()); }

void mutate_tensor(Rng& r, Case* c) {
  std::vector<int> used = c->inputs;
  used.insert(used.end(), c->outputs.begin(), c->outputs.end());
  if (used.empty() || c->tensors.empty()) return;
  const int idx = used[r.below(used.size())];
  if (idx < 0 || size_t(idx) >= c->tensors.size()) return;
  TensorSpec& t = c->tensors[size_t(idx)];
  const std::string at = " of t" + std::to_string(idx);
  switch (r.below(12)) {
    case 0:
      t.type = r.pick(kTypes);
      c->perturbations.push_back("type" + at);
      return;
    case 1:  // rank +-1
      if (!t.dims.empty() && r.chance(0.5)) {
        t.dims.erase(t.dims.begin() + long(r.below(t.dims.size())));
      } else {
        t.dims.insert(t.dims.begin() + long(r.below(t.dims.size() + 1)), r.range(1, 3));
      }
      c->perturbations.push_back("rank" + at);
      return;
    case 2:  // a special dim
      if (t.dims.empty()) t.dims.push_back(1);
      t.dims[r.below(t.dims.size())] = random_dim(r);
      c->perturbations.push_back("dim" + at);
      return;
    case 3:  // a dim off by one
      if (t.dims.empty()) t.dims.push_back(1);
      {
        int& d = t.dims[r.below(t.dims.size())];
        d = add_wrap(d, r.chance(0.5) ? 1 : -1);
      }
      c->perturbations.push_back("dim+-1" + at);
      return;
    case 4:
      t.has_dims = false;
      c->perturbations.push_back("no dims" + at);
      return;
    case 5: {  // rank 0, or very high
      const int rank = r.chance(0.3) ? 0 : r.range(5, 12);
      t.dims.assign(size_t(rank), 1);
      c->perturbations.push_back("rank " + std::to_string(rank) + at);
      return;
    }
    case 6: {  // constant <-> not
      const std::vector<int> allocs = {
          kTfLiteMmapRo,  kTfLiteArenaRw,           kTfLitePersistentRo,
          kTfLiteDynamic, kTfLiteArenaRwPersistent, kTfLiteMemNone};
      t.alloc = r.pick(allocs);
      c->perturbations.push_back("allocation" + at);
      return;
    }
    case 7:
      t.data_mode = kDataNull;
      c->perturbations.push_back("null data" + at);
      return;
    case 8:
      t.data_mode = kDataWrongSize;
      t.byte_delta = r.pick(std::vector<int64_t>{-1, 1, -4, 4, -3, 100});
      c->perturbations.push_back("wrong byte size" + at);
      return;
    case 9: {  // quantization params
      t.scale = float(special_float(r));
      t.zero_point = r.chance(0.5) ? int32_t(r.next()) : r.range(-130, 130);
      c->perturbations.push_back("quantization" + at);
      return;
    }
    case 10: {  // the whole shape random
      const int rank = r.range(0, 6);
      t.dims.clear();
      for (int i = 0; i < rank; ++i)
        t.dims.push_back(r.chance(0.8) ? r.range(-1, 9) : random_dim(r));
      c->perturbations.push_back("random shape" + at);
      return;
    }
    default:  // constant content: specials
      t.fill = 2;
      c->perturbations.push_back("special values" + at);
      return;
  }
}

void mutate_node(Rng& r, Case* c) {
  const int n = int(c->tensors.size());
  switch (r.below(7)) {
    case 0:
      if (!c->inputs.empty()) {
        c->inputs.erase(c->inputs.begin() + long(r.below(c->inputs.size())));
        c->perturbations.push_back("node: input removed");
        return;
      }
      break;
    case 1:
      c->inputs.push_back(r.range(0, std::max(n - 1, 0)));
      c->perturbations.push_back("node: input added");
      return;
    case 2:
      if (r.chance(0.5) && !c->outputs.empty()) {
        c->outputs.clear();
      } else {
        c->outputs.push_back(r.range(0, std::max(n - 1, 0)));
      }
      c->perturbations.push_back("node: outputs changed");
      return;
    case 3: {  // an index out of range (-1 is kTfLiteOptionalTensor)
      std::vector<int>& v = r.chance(0.7) || c->outputs.empty() ? c->inputs : c->outputs;
      if (v.empty()) break;
      v[r.below(v.size())] = r.pick(std::vector<int>{-1, -2, n, n + 1, INT32_MAX, INT32_MIN});
      c->perturbations.push_back("node: index out of range");
      return;
    }
    case 4:  // output aliases an input
      if (!c->inputs.empty() && !c->outputs.empty()) {
        c->outputs[0] = c->inputs[r.below(c->inputs.size())];
        c->perturbations.push_back("node: output is an input");
        return;
      }
      break;
    case 5:  // two inputs the same tensor
      if (c->inputs.size() >= 2) {
        c->inputs[r.below(c->inputs.size())] = c->inputs[r.below(c->inputs.size())];
        c->perturbations.push_back("node: inputs aliased");
        return;
      }
      break;
    default:
      if (!c->outputs.empty() && c->outputs[0] >= 0 && c->outputs[0] < n) {
        TensorSpec& o = c->tensors[size_t(c->outputs[0])];
        o.alloc = kTfLiteMmapRo;
        c->perturbations.push_back("node: output is constant");
        return;
      }
      break;
  }
  std::swap(c->inputs, c->outputs);
  c->perturbations.push_back("node: inputs and outputs swapped");
}

void mutate_name(Rng& r, Case* c) {
  const double p = r.uniform();
  if (p < 0.3) {
    c->name = tfqnn::tflite::kOpNames[r.below(size_t(tfqnn::tflite::kNumOps))];
  } else if (p < 0.5) {
    c->name = "tfqnn" + c->name.substr(std::min<size_t>(5, c->name.size()));
  } else if (p < 0.6) {
    c->name = "";
  } else if (p < 0.8) {
    c->name += r.chance(0.5) ? " " : "2";
  } else {
    std::string s;
    const int n = r.range(1, 20);
    for (int i = 0; i < n; ++i) s.push_back(char(r.range(1, 255)));
    c->name = s;
  }
  c->perturbations.push_back("name");
}

// A node with nothing valid about it but the op name (mostly).
void random_node(Rng& r, Case* c) {
  c->op = int(r.below(size_t(tfqnn::tflite::kNumOps)));
  c->name = tfqnn::tflite::kOpNames[c->op];
  const int n = r.range(0, 8);
  for (int i = 0; i < n; ++i) {
    TensorSpec t;
    t.type = r.pick(kTypes);
    const int rank = r.range(0, 6);
    for (int k = 0; k < rank; ++k) t.dims.push_back(r.chance(0.85) ? r.range(0, 6) : random_dim(r));
    t.alloc = r.chance(0.4) ? kTfLiteMmapRo : kTfLiteArenaRw;
    t.scale = float(r.chance(0.5) ? r.uniform() : special_float(r));
    t.zero_point = r.range(-200, 200);
    t.fill = int(r.below(3));
    c->tensors.push_back(t);
  }
  const int ni = r.range(0, 5), no = r.range(0, 2);
  for (int i = 0; i < ni; ++i) c->inputs.push_back(r.range(-1, n));
  for (int i = 0; i < no; ++i) c->outputs.push_back(r.range(-1, n));
  const int keys = r.range(0, 6);
  for (int i = 0; i < keys; ++i) c->entries.emplace_back(random_key(r), random_value(r));
  c->perturbations.push_back("random node");
}

Case make_case(uint64_t seed, uint64_t index) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + index;
  Case c;
  c.seed = splitmix(&s);
  Rng r(c.seed);
  const double kind = r.uniform();
  bool bytes_mutation = false;
  if (kind < 0.9) {
    valid_node(r, int(r.below(size_t(tfqnn::tflite::kNumOps))), &c);
    // 0 perturbations: 40%; 1: 40%; 2-4: 10%.
    int count = kind < 0.4 ? 0 : kind < 0.8 ? 1 : r.range(2, 4);
    for (int i = 0; i < count; ++i) {
      const double p = r.uniform();
      if (p < 0.3)
        mutate_entries(r, &c);
      else if (p < 0.45)
        bytes_mutation = true;
      else if (p < 0.8)
        mutate_tensor(r, &c);
      else if (p < 0.95)
        mutate_node(r, &c);
      else
        mutate_name(r, &c);
    }
  } else {
    random_node(r, &c);
    if (r.chance(0.3)) mutate_name(r, &c);
  }
  serialize_options(r, &c);
  if (bytes_mutation) mutate_bytes(r, &c);
  c.recommended_threads = r.pick(std::vector<int>{1, 1, 1, 2, 3, 4, 0, -1});
  c.op_threads = r.chance(0.8) ? 0 : r.range(1, 4);
  c.small_thread_work = r.chance(0.15);
  c.isa = int(r.below(3));
  c.path = r.chance(0.6) ? 0 : r.chance(0.5) ? 1 : 2;
  c.reprepare = r.chance(0.1);
  return c;
}

// ---- the fake runtime ---------------------------------------------------------

// Tensors bigger than this are not allocated (their cases stop after Prepare).
constexpr int64_t kMaxAllocBytes = int64_t(64) << 20;

// Bytes of a tensor of these dims, or -1 when a dim is negative or the size
// is beyond kMaxAllocBytes.
int64_t bytes_for(int type, const TfLiteIntArray* dims) {
  if (dims == nullptr) return -1;
  int64_t n = int64_t(type_size(type));
  for (int i = 0; i < dims->size; ++i) {
    if (dims->data[i] < 0) return -1;
    if (dims->data[i] == 0) return 0;
  }
  for (int i = 0; i < dims->size; ++i) {
    n *= dims->data[i];
    if (n > kMaxAllocBytes) return -1;
  }
  return n;
}

bool is_constant(int alloc) { return alloc == kTfLiteMmapRo || alloc == kTfLitePersistentRo; }

struct Runtime;
Runtime* g_runtime = nullptr;  // for the callbacks

struct Stats {
  uint64_t cases = 0, unknown_op = 0, prepare_ok = 0, prepare_failed = 0;
  uint64_t invoke_ran = 0, invoke_ok = 0, invoke_failed = 0, too_large = 0;
  uint64_t reprepared = 0, reinvoked = 0, delegate_refused = 0, unclaimed = 0;
  uint64_t violations = 0;
  uint64_t paths[3] = {0, 0, 0};
  uint64_t isa[3] = {0, 0, 0};
  std::map<std::string, uint64_t> op_cases, op_prepare_ok, op_invoked;
  std::map<std::string, uint64_t> categories;
  // Cases with a feature (Case::feature), and their errors' categories.
  std::map<std::string, uint64_t> feature_cases, feature_prepare_ok, feature_invoked;
  std::map<std::string, std::map<std::string, uint64_t>> feature_categories;
};

struct Runtime {
  TfLiteContext context;
  std::vector<TfLiteTensor> tensors;
  std::vector<std::vector<uint8_t>> constant_snapshot;
  std::vector<std::string> errors;
  std::vector<std::string> violations;
  Rng fill_rng{1};
  // Delegate path state.
  TfLiteNode graph_node;
  TfLiteRegistration graph_registration;
  TfLiteIntArray* plan = nullptr;
  bool replaced = false;
  TfLiteRegistration kernel;
  void* kernel_data = nullptr;
  bool verbose = false;

  Runtime() {
    std::memset(&context, 0, sizeof(context));
    std::memset(&graph_node, 0, sizeof(graph_node));
    std::memset(&graph_registration, 0, sizeof(graph_registration));
    std::memset(&kernel, 0, sizeof(kernel));
  }
  ~Runtime() { release(); }

  void violation(const std::string& what) { violations.push_back(what); }

  void release() {
    for (TfLiteTensor& t : tensors) {
      std::free(t.dims);
      std::free(t.data);
    }
    tensors.clear();
    std::free(plan);
    plan = nullptr;
  }

  void fill(TfLiteTensor* t, int mode) {
    if (t->data == nullptr) return;
    auto* p = static_cast<uint8_t*>(t->data);
    if (t->type == kTfLiteFloat32 && mode != 0) {
      const size_t n = t->bytes / 4;
      std::vector<float> v(n);
      for (float& f : v) {
        f = mode >= 2 && fill_rng.chance(0.3) ? float(special_float(fill_rng))
                                              : float((fill_rng.uniform() - 0.5) * 8);
        if (mode == 3 && std::isnan(f)) f = fill_rng.chance(0.5) ? -0.0f : 1.0f;
        if (mode == 3 && fill_rng.chance(0.1) && &f != v.data()) f = (&f)[-1];  // a tie
      }
      if (mode == 3) std::sort(v.begin(), v.end());
      if (mode == 4 && n > 0) v[fill_rng.below(n)] = std::numeric_limits<float>::quiet_NaN();
      if (n > 0) std::memcpy(p, v.data(), 4 * n);
      for (size_t i = n * 4; i < t->bytes; ++i) p[i] = uint8_t(fill_rng.next());
      return;
    }
    for (size_t i = 0; i < t->bytes; ++i) p[i] = uint8_t(fill_rng.next());
  }

  void build(const Case& c) {
    release();
    errors.clear();
    violations.clear();
    fill_rng = Rng(c.seed ^ 0x5bd1e995);
    tensors.assign(c.tensors.size(), TfLiteTensor{});
    for (size_t i = 0; i < c.tensors.size(); ++i) {
      const TensorSpec& s = c.tensors[i];
      TfLiteTensor& t = tensors[i];
      std::memset(&t, 0, sizeof(t));
      t.type = static_cast<TfLiteType>(s.type);
      if (s.has_dims) {
        t.dims = static_cast<TfLiteIntArray*>(
            std::malloc(sizeof(TfLiteIntArray) + s.dims.size() * sizeof(int)));
        t.dims->size = int(s.dims.size());
        for (size_t k = 0; k < s.dims.size(); ++k) t.dims->data[k] = s.dims[k];
      }
      t.params.scale = s.scale;
      t.params.zero_point = s.zero_point;
      t.allocation_type = static_cast<TfLiteAllocationType>(s.alloc);
      t.name = "fuzz";
      const int64_t exact = bytes_for(s.type, t.dims);
      if (is_constant(s.alloc)) {
        // A constant's data is there before Prepare (and, from a model, of
        // the size of its buffer, which is what the glue must check).
        int64_t bytes = exact < 0 ? 16 : exact;
        if (s.data_mode == kDataWrongSize) bytes = std::max<int64_t>(0, bytes + s.byte_delta);
        if (s.data_mode != kDataNull) {
          t.data = std::malloc(size_t(std::max<int64_t>(bytes, 1)));
          t.bytes = size_t(bytes);
          fill(&t, s.fill);
        } else {
          t.bytes = size_t(bytes);
        }
      } else {
        // Arena tensors get their memory after Prepare (allocate()).
        t.bytes = exact < 0 ? 0 : size_t(exact);
      }
    }
    context.tensors_size = tensors.size();
    context.tensors = tensors.data();
    context.ResizeTensor = &Runtime::resize_tensor;
    context.ReportError = &Runtime::report_error;
    context.GetExecutionPlan = &Runtime::get_execution_plan;
    context.GetNodeAndRegistration = &Runtime::get_node_and_registration;
    context.ReplaceNodeSubsetsWithDelegateKernels = &Runtime::replace_nodes;
    context.recommended_num_threads = c.recommended_threads;
  }

  TfLiteTensor* tensor_of(int i) {
    return i >= 0 && size_t(i) < tensors.size() ? &tensors[size_t(i)] : nullptr;
  }

  // After a successful Prepare: what AllocateTensors does, memory for every
  // non-constant tensor of the node of exactly its size. False when a tensor
  // is too large (or has no valid shape) to allocate.
  bool allocate(const std::vector<int>& inputs, const std::vector<int>& outputs) {
    std::vector<int> all = inputs;
    all.insert(all.end(), outputs.begin(), outputs.end());
    for (int i : all) {
      TfLiteTensor* t = tensor_of(i);
      if (t == nullptr || is_constant(t->allocation_type)) continue;
      const int64_t bytes = bytes_for(t->type, t->dims);
      if (bytes < 0) return false;
      if (t->data != nullptr && t->bytes == size_t(bytes)) continue;
      std::free(t->data);
      t->data = std::malloc(size_t(std::max<int64_t>(bytes, 1)));
      t->bytes = size_t(bytes);
    }
    for (int i : inputs) {
      TfLiteTensor* t = tensor_of(i);
      if (t != nullptr && !is_constant(t->allocation_type)) fill(t, 2);
    }
    return true;
  }

  void snapshot_constants() {
    constant_snapshot.assign(tensors.size(), {});
    for (size_t i = 0; i < tensors.size(); ++i) {
      const TfLiteTensor& t = tensors[i];
      if (is_constant(t.allocation_type) && t.data != nullptr) {
        const auto* p = static_cast<const uint8_t*>(t.data);
        constant_snapshot[i].assign(p, p + t.bytes);
      }
    }
  }
  void check_constants() {
    for (size_t i = 0; i < tensors.size(); ++i) {
      const TfLiteTensor& t = tensors[i];
      if (!is_constant(t.allocation_type) || t.data == nullptr) continue;
      if (constant_snapshot[i].size() != t.bytes ||
          (t.bytes && std::memcmp(constant_snapshot[i].data(), t.data, t.bytes) != 0)) {
        violation("invoke wrote into constant tensor t" + std::to_string(i));
      }
    }
  }

  // After a successful Prepare: the outputs have valid shapes and sizes.
  void check_outputs(const std::vector<int>& outputs) {
    for (int i : outputs) {
      TfLiteTensor* t = tensor_of(i);
      if (t == nullptr) {
        violation("prepare accepted output index " + std::to_string(i));
        continue;
      }
      if (t->dims == nullptr || t->dims->size < 1) {
        violation("prepare left output t" + std::to_string(i) + " without a shape");
        continue;
      }
      for (int k = 0; k < t->dims->size; ++k) {
        if (t->dims->data[k] <= 0) {
          violation("prepare left output t" + std::to_string(i) + " with a dim <= 0");
        }
      }
    }
  }

  static TfLiteStatus resize_tensor(TfLiteContext* context, TfLiteTensor* tensor,
                                    TfLiteIntArray* new_size) {
    Runtime* rt = g_runtime;
    if (context != &rt->context || tensor < rt->tensors.data() ||
        tensor >= rt->tensors.data() + rt->tensors.size()) {
      rt->violation("ResizeTensor on a tensor outside the context");
      std::free(new_size);
      return kTfLiteError;
    }
    if (new_size == nullptr || new_size->size < 0 || new_size->size > 16) {
      rt->violation("ResizeTensor with a bad shape array");
      std::free(new_size);
      return kTfLiteError;
    }
    for (int k = 0; k < new_size->size; ++k) {
      if (new_size->data[k] < 0) rt->violation("ResizeTensor to a negative dim");
    }
    if (tensor->allocation_type == kTfLiteMmapRo || tensor->allocation_type == kTfLiteMemNone) {
      // As the runtime: read-only tensors keep their shape.
      std::free(new_size);
      context->ReportError(context, "Attempting to resize a fixed-size tensor.");
      return kTfLiteError;
    }
    std::free(tensor->dims);
    tensor->dims = new_size;
    const int64_t bytes = bytes_for(tensor->type, new_size);
    std::free(tensor->data);
    tensor->data = nullptr;
    tensor->bytes = bytes < 0 ? 0 : size_t(bytes);
    if (bytes >= 0) tensor->data = std::malloc(size_t(std::max<int64_t>(bytes, 1)));
    return kTfLiteOk;
  }

  static void report_error(TfLiteContext*, const char* format, ...) {
    char buffer[4096];
    va_list args;
    va_start(args, format);
    std::vsnprintf(buffer, sizeof(buffer), format, args);
    va_end(args);
    g_runtime->errors.emplace_back(buffer);
    if (g_runtime->verbose) std::printf("  ReportError: %s\n", buffer);
  }

  static TfLiteStatus get_execution_plan(TfLiteContext*, TfLiteIntArray** plan) {
    *plan = g_runtime->plan;
    return kTfLiteOk;
  }

  static TfLiteStatus get_node_and_registration(TfLiteContext*, int index, TfLiteNode** node,
                                                TfLiteRegistration** registration) {
    if (index != 0) return kTfLiteError;
    *node = &g_runtime->graph_node;
    *registration = &g_runtime->graph_registration;
    return kTfLiteOk;
  }

  static TfLiteStatus replace_nodes(TfLiteContext* context, TfLiteRegistration registration,
                                    const TfLiteIntArray* nodes, TfLiteDelegate* delegate) {
    Runtime* rt = g_runtime;
    if (nodes == nullptr || nodes->size != 1 || nodes->data[0] != 0) {
      rt->violation("delegate replaced an unexpected node set");
      return kTfLiteError;
    }
    rt->replaced = true;
    rt->kernel = registration;
    TfLiteDelegateParams params;
    params.delegate = delegate;
    params.nodes_to_replace = const_cast<TfLiteIntArray*>(nodes);
    params.input_tensors = rt->graph_node.inputs;
    params.output_tensors = rt->graph_node.outputs;
    rt->kernel_data = registration.init(context, reinterpret_cast<const char*>(&params), 0);
    return kTfLiteOk;
  }
};

TfLiteIntArray* int_array(const std::vector<int>& v) {
  auto* a =
      static_cast<TfLiteIntArray*>(std::malloc(sizeof(TfLiteIntArray) + v.size() * sizeof(int)));
  a->size = int(v.size());
  for (size_t i = 0; i < v.size(); ++i) a->data[i] = v[i];
  return a;
}

// The op registerer's registrations, captured by the fake AddCustom.
std::map<std::string, const TfLiteRegistration*> g_registered;

}  // namespace

// MutableOpResolver::AddCustom as TfqnnRegisterOps finds it with dlsym
// (the executable is linked with -rdynamic).
extern "C" void fuzz_add_custom(
    void* resolver, const char* name, const TfLiteRegistration* registration,
    int version) __asm__("_ZN6tflite17MutableOpResolver9AddCustomEPKcPK18TfLiteRegistrationi")
    __attribute__((visibility("default"), used));
extern "C" void fuzz_add_custom(void* resolver, const char* name,
                                const TfLiteRegistration* registration, int version) {
  (void)resolver;
  (void)version;
  g_registered[name] = registration;
}

namespace {

std::string hex(const std::vector<uint8_t>& b) {
  std::string s;
  char buf[4];
  for (uint8_t x : b) {
    std::snprintf(buf, sizeof(buf), "%02x", x);
    s += buf;
  }
  return s;
}

std::string dims_string(const TensorSpec& t) {
  if (!t.has_dims) return "null";
  std::string s = "[";
  for (size_t i = 0; i < t.dims.size(); ++i) s += (i ? "," : "") + std::to_string(t.dims[i]);
  return s + "]";
}

void describe(const Case& c) {
  std::printf("case seed=%016" PRIx64 " op=%s path=%d isa=%d threads=%d/%d%s%s\n", c.seed,
              c.name.c_str(), c.path, c.isa, c.recommended_threads, c.op_threads,
              c.small_thread_work ? " small-work" : "", c.reprepare ? " reprepare" : "");
  std::printf("  perturbations:");
  for (const auto& p : c.perturbations) std::printf(" [%s]", p.c_str());
  std::printf("\n  options (%zu bytes%s): %s\n", c.options.size(),
              c.options_null ? ", null pointer" : "", hex(c.options).c_str());
  for (size_t i = 0; i < c.tensors.size(); ++i) {
    const TensorSpec& t = c.tensors[i];
    std::printf("  t%zu: type=%d (%s) dims=%s alloc=%d data=%d%+" PRId64
                " scale=%g zp=%d fill=%d\n",
                i, t.type, type_name(t.type), dims_string(t).c_str(), t.alloc, t.data_mode,
                t.byte_delta, double(t.scale), t.zero_point, t.fill);
  }
  std::printf("  inputs:");
  for (int i : c.inputs) std::printf(" %d", i);
  std::printf("  outputs:");
  for (int i : c.outputs) std::printf(" %d", i);
  std::printf("\n");
}

// The error's category: the message without the op name, with numbers and
// quoted names replaced.
std::string category(const std::string& message) {
  std::string m = message;
  const size_t colon = m.find(": ");
  if (colon != std::string::npos && m.compare(0, 5, "Tfqnn") == 0) m = m.substr(colon + 2);
  // Messages that end with a key from the options (any bytes, quotes too).
  for (const char* prefix : {"unknown option '", "custom options: malformed value of '"}) {
    const size_t n = std::strlen(prefix);
    if (m.compare(0, n, prefix) == 0 && m.size() > n && m.back() == '\'') {
      const std::string key = m.substr(n, m.size() - n - 1);
      const bool known = std::find(kKnownKeys.begin(), kKnownKeys.end(), key) != kKnownKeys.end();
      return std::string(prefix) + (known && prefix[0] == 'c' ? key : "K") + "'";
    }
  }
  std::string out;
  for (size_t i = 0; i < m.size(); ++i) {
    const char ch = m[i];
    if (ch == '\'') {  // a quoted key: kept when it is one of the ops' keys
      const size_t end = m.find('\'', i + 1);
      if (end != std::string::npos) {
        const std::string key = m.substr(i + 1, end - i - 1);
        const bool known = std::find(kKnownKeys.begin(), kKnownKeys.end(), key) != kKnownKeys.end();
        out += known && m.compare(0, 14, "unknown option") != 0 ? "'" + key + "'" : "'K'";
        i = end;
        continue;
      }
    }
    if ((ch >= '0' && ch <= '9') ||
        (ch == '-' && i + 1 < m.size() && m[i + 1] >= '0' && m[i + 1] <= '9' &&
         (out.empty() || out.back() == ' ' || out.back() == '[' || out.back() == ','))) {
      size_t j = i + 1;
      while (j < m.size() && m[j] >= '0' && m[j] <= '9') ++j;
      out += 'N';
      i = j - 1;
      continue;
    }
    out += (static_cast<unsigned char>(ch) < 32 || static_cast<unsigned char>(ch) > 126) ? '?' : ch;
  }
  if (out.size() > 110) out = out.substr(0, 110) + "...";
  return out;
}

// One case through the entry point it names: prepare, invoke when prepare
// accepted, the checks, and the counts.
struct Driver {
  Runtime& rt;
  Stats& stats;
  const Case& c;

  const uint8_t* options() const {
    return c.options_null ? nullptr : (c.options.empty() ? nullptr : c.options.data());
  }

  // Prepare, check, allocate, invoke, check. The callables do the entry
  // point's work.
  template <typename Prepare, typename Invoke>
  void run(Prepare prepare, Invoke invoke) {
    const size_t errors_before = rt.errors.size();
    const TfLiteStatus status = prepare();
    if (status != kTfLiteOk) {
      ++stats.prepare_failed;
      if (rt.errors.size() == errors_before) rt.violation("prepare failed without an error");
      // Invoke after a failed prepare must fail too (the interpreter would
      // not call it; the op must not run on unchecked tensors).
      if (c.path == 0 || c.path == 1) {
        const size_t before = rt.errors.size();
        if (invoke() == kTfLiteOk) rt.violation("invoke succeeded after a failed prepare");
        if (rt.errors.size() == before) rt.violation("invoke failed without an error");
        rt.errors.resize(before);  // not counted among the categories
      }
      return;
    }
    ++stats.prepare_ok;
    ++stats.op_prepare_ok[c.name];
    if (!c.feature.empty()) ++stats.feature_prepare_ok[c.feature];
    rt.check_outputs(c.outputs);
    if (!rt.allocate(c.inputs, c.outputs)) {
      ++stats.too_large;
      return;
    }
    rt.snapshot_constants();
    ++stats.invoke_ran;
    ++stats.op_invoked[c.name];
    if (!c.feature.empty()) ++stats.feature_invoked[c.feature];
    if (invoke() == kTfLiteOk)
      ++stats.invoke_ok;
    else
      ++stats.invoke_failed;
    rt.check_constants();
    // The interpreter resizing an input and preparing again: a dim changes.
    if (c.reprepare && !c.inputs.empty()) {
      TfLiteTensor* t = rt.tensor_of(c.inputs[0]);
      if (t != nullptr && t->dims != nullptr && t->dims->size > 0 &&
          !is_constant(t->allocation_type)) {
        Rng r(c.seed + 7);
        int& d = t->dims->data[r.below(size_t(t->dims->size))];
        d = r.chance(0.7) ? std::max(1, add_wrap(d, r.range(-1, 2))) : r.range(-1, 3);
        std::free(t->data);
        t->data = nullptr;
        const int64_t b = bytes_for(t->type, t->dims);
        t->bytes = b < 0 ? 0 : size_t(b);
        ++stats.reprepared;
        const size_t before = rt.errors.size();
        if (prepare() == kTfLiteOk) {
          rt.check_outputs(c.outputs);
          if (rt.allocate(c.inputs, c.outputs)) {
            rt.snapshot_constants();
            ++stats.reinvoked;
            invoke();
            rt.check_constants();
          }
        } else {
          if (rt.errors.size() == before) rt.violation("re-prepare failed without an error");
          if (c.path == 0 || c.path == 1) {
            const size_t errors = rt.errors.size();
            if (invoke() == kTfLiteOk) rt.violation("invoke succeeded after a failed re-prepare");
            rt.errors.resize(errors);
          }
        }
      }
    }
  }

  void direct() {
    auto op = tfqnn::tflite::create_op(c.name, options(), c.options.size());
    if (!op) {
      ++stats.unknown_op;
      if (tfqnn::tflite::is_tfqnn_op(c.name.c_str()))
        rt.violation("create_op returned null for a known op");
      return;
    }
    if (c.op_threads) op->set_num_threads(c.op_threads);
    tfqnn::tflite::NodeTensors node{c.inputs, c.outputs};
    run([&] { return op->prepare(&rt.context, node); },
        [&] { return op->invoke(&rt.context, node); });
  }

  void registered() {
    auto it = g_registered.find(c.name);
    if (it == g_registered.end()) {
      direct();
      return;
    }
    const TfLiteRegistration* reg = it->second;
    TfLiteNode node;
    std::memset(&node, 0, sizeof(node));
    node.inputs = int_array(c.inputs);
    node.outputs = int_array(c.outputs);
    node.custom_initial_data = options();
    node.custom_initial_data_size = int(c.options.size());
    node.user_data = reg->init(&rt.context, static_cast<const char*>(node.custom_initial_data),
                               c.options.size());
    run([&] { return reg->prepare(&rt.context, &node); },
        [&] { return reg->invoke(&rt.context, &node); });
    reg->free(&rt.context, node.user_data);
    std::free(node.inputs);
    std::free(node.outputs);
  }

  void delegate() {
    char key[] = "num_threads";
    char value[16];
    std::snprintf(value, sizeof(value), "%d", c.op_threads ? c.op_threads : 2);
    char* keys[] = {key};
    char* values[] = {value};
    TfLiteDelegate* d = tflite_plugin_create_delegate(keys, values, c.op_threads ? 1 : 0, nullptr);
    if (d == nullptr) {
      ++stats.delegate_refused;
      return;
    }
    rt.plan = int_array({0});
    rt.replaced = false;
    rt.kernel_data = nullptr;
    TfLiteNode& node = rt.graph_node;
    std::memset(&node, 0, sizeof(node));
    node.inputs = int_array(c.inputs);
    node.outputs = int_array(c.outputs);
    node.custom_initial_data = options();
    node.custom_initial_data_size = int(c.options.size());
    TfLiteRegistration& reg = rt.graph_registration;
    std::memset(&reg, 0, sizeof(reg));
    reg.builtin_code = tfqnn::tflite::kBuiltinCustom;
    reg.custom_name = c.name.c_str();
    reg.version = 1;
    if (d->Prepare(&rt.context, d) != kTfLiteOk) {
      rt.violation("delegate Prepare failed");
    } else if (!rt.replaced) {
      ++stats.unclaimed;
      if (tfqnn::tflite::is_tfqnn_op(c.name.c_str()))
        rt.violation("delegate did not claim a tfqnn op");
    } else {
      TfLiteNode kernel_node;
      std::memset(&kernel_node, 0, sizeof(kernel_node));
      kernel_node.inputs = int_array(c.inputs);
      kernel_node.outputs = int_array(c.outputs);
      kernel_node.temporaries = int_array({});
      kernel_node.user_data = rt.kernel_data;
      kernel_node.delegate = d;
      run([&] { return rt.kernel.prepare(&rt.context, &kernel_node); },
          [&] { return rt.kernel.invoke(&rt.context, &kernel_node); });
      rt.kernel.free(&rt.context, kernel_node.user_data);
      // An op that the delegate computed when it claimed the node
      // (TfqnnCodebookDecode) made its output a constant in the delegate's
      // memory, which the delegate frees: not the driver's to free.
      for (size_t i = 0; i < rt.tensors.size() && i < c.tensors.size(); ++i) {
        TfLiteTensor& t = rt.tensors[i];
        if (t.allocation_type == kTfLiteMmapRo && !is_constant(c.tensors[i].alloc)) {
          t.data = nullptr;
        }
      }
      std::free(kernel_node.inputs);
      std::free(kernel_node.outputs);
      std::free(kernel_node.temporaries);
    }
    std::free(node.inputs);
    std::free(node.outputs);
    node.inputs = node.outputs = nullptr;
    tflite_plugin_destroy_delegate(d);
  }
};

uint64_t g_seed = 0, g_index = 0;
bool g_in_case = false;
int g_progress_fd = -1;

// The case about to run, in the --progress file: UBSan exits without the
// death callback, so that file is what names the case then.
void write_progress(uint64_t index) {
  if (g_progress_fd < 0) return;
  char buf[64];
  const int n = std::snprintf(buf, sizeof(buf), "%" PRIu64 " %" PRIu64 "\n", g_seed, index);
  if (ftruncate(g_progress_fd, 0) != 0 || pwrite(g_progress_fd, buf, size_t(n), 0) != n) {
    g_progress_fd = -1;
  }
}

void on_death() {
  if (g_in_case) {
    std::fprintf(stderr,
                 "\nfuzz_ops: died in case %" PRIu64 " of seed %" PRIu64
                 "; replay with: fuzz_ops --seed %" PRIu64 " --case %" PRIu64 "\n",
                 g_index, g_seed, g_seed, g_index);
  }
}

// The core's test hooks (core/c_api.cc, as tfqnn/lite/_core.py uses them),
// looked up at run time so that the driver does not depend on the core's
// internals: the ISA of the kernels (0 scalar, 1 avx2, 2 avx512; -1 back to
// the default) and the least work per thread (0: threads even for tiny ops).
int (*g_set_isa)(int) = nullptr;
double (*g_set_min_thread_work)(double) = nullptr;
double g_default_thread_work = 0;

void find_core_hooks() {
  g_set_isa = reinterpret_cast<int (*)(int)>(dlsym(RTLD_DEFAULT, "tfqnn_core_set_isa"));
  g_set_min_thread_work =
      reinterpret_cast<double (*)(double)>(dlsym(RTLD_DEFAULT, "tfqnn_core_set_min_thread_work"));
  if (g_set_min_thread_work) {
    g_default_thread_work = g_set_min_thread_work(0);
    g_set_min_thread_work(g_default_thread_work);
  }
  if (!g_set_isa || !g_set_min_thread_work) {
    std::printf("fuzz_ops: note: core test hooks missing (isa %s, threads %s)\n",
                g_set_isa ? "ok" : "missing", g_set_min_thread_work ? "ok" : "missing");
  }
}

void run_case(const Case& c, Runtime& rt, Stats& stats) {
  ++stats.cases;
  ++stats.paths[c.path];
  ++stats.op_cases[c.name.size() > 40 ? "(random name)" : c.name];
  // The best supported ISA at or below the case's.
  if (g_set_isa) {
    int isa = c.isa;
    while (isa > 0 && !g_set_isa(isa)) --isa;
    if (isa == 0) g_set_isa(0);
    ++stats.isa[isa];
  }
  if (g_set_min_thread_work) {
    g_set_min_thread_work(c.small_thread_work ? 0 : g_default_thread_work);
  }
  rt.build(c);
  Driver d{rt, stats, c};
  if (c.path == 1)
    d.registered();
  else if (c.path == 2)
    d.delegate();
  else
    d.direct();
  for (const std::string& e : rt.errors) ++stats.categories[category(e)];
  if (!c.feature.empty()) {
    ++stats.feature_cases[c.feature];
    for (const std::string& e : rt.errors) ++stats.feature_categories[c.feature][category(e)];
  }
}

void print_stats(const Stats& s, int top) {
  std::printf("total cases: %" PRIu64 "\n", s.cases);
  std::printf("paths: create_op=%" PRIu64 " registerer=%" PRIu64 " delegate=%" PRIu64 "\n",
              s.paths[0], s.paths[1], s.paths[2]);
  std::printf("isa: scalar=%" PRIu64 " avx2=%" PRIu64 " avx512=%" PRIu64 "\n", s.isa[0], s.isa[1],
              s.isa[2]);
  std::printf("unknown op (no kernel): %" PRIu64 "\n", s.unknown_op + s.unclaimed);
  std::printf("delegate refused options: %" PRIu64 "\n", s.delegate_refused);
  std::printf("prepare failed: %" PRIu64 "\n", s.prepare_failed);
  std::printf("prepare ok: %" PRIu64 "\n", s.prepare_ok);
  std::printf("too large to allocate: %" PRIu64 "\n", s.too_large);
  std::printf("invoke ran: %" PRIu64 " (ok %" PRIu64 ", failed %" PRIu64 ")\n", s.invoke_ran,
              s.invoke_ok, s.invoke_failed);
  std::printf("re-prepared: %" PRIu64 " (re-invoked %" PRIu64 ")\n", s.reprepared, s.reinvoked);
  std::printf("by op (cases / prepare ok / invoke ran):\n");
  for (const auto& kv : s.op_cases) {
    auto get = [](const std::map<std::string, uint64_t>& m, const std::string& k) {
      auto it = m.find(k);
      return it == m.end() ? uint64_t(0) : it->second;
    };
    if (kv.first.compare(0, 5, "Tfqnn") != 0 || !tfqnn::tflite::is_tfqnn_op(kv.first.c_str()))
      continue;
    std::printf("  %-16s %7" PRIu64 " %7" PRIu64 " %7" PRIu64 "\n", kv.first.c_str(), kv.second,
                get(s.op_prepare_ok, kv.first), get(s.op_invoked, kv.first));
  }
  std::vector<std::pair<uint64_t, std::string>> cats;
  for (const auto& kv : s.categories) cats.emplace_back(kv.second, kv.first);
  std::sort(cats.rbegin(), cats.rend());
  std::printf("error categories: %zu (top %d)\n", cats.size(), top);
  for (int i = 0; i < top && size_t(i) < cats.size(); ++i) {
    std::printf("  %7" PRIu64 "  %s\n", cats[size_t(i)].first, cats[size_t(i)].second.c_str());
  }
  // "<feature> cases: N", "... prepare ok: N", "... invoke ran: N", then
  // every error category of its cases.
  for (const auto& kv : s.feature_cases) {
    auto get = [&kv](const std::map<std::string, uint64_t>& m) {
      auto it = m.find(kv.first);
      return it == m.end() ? uint64_t(0) : it->second;
    };
    const char* f = kv.first.c_str();
    std::printf("%s cases: %" PRIu64 "\n", f, kv.second);
    std::printf("%s prepare ok: %" PRIu64 "\n", f, get(s.feature_prepare_ok));
    std::printf("%s invoke ran: %" PRIu64 "\n", f, get(s.feature_invoked));
    std::printf("%s errors:\n", f);
    auto it = s.feature_categories.find(kv.first);
    if (it == s.feature_categories.end()) continue;
    for (const auto& cat : it->second) {
      std::printf("  %7" PRIu64 "  %s\n", cat.second, cat.first.c_str());
    }
  }
  std::printf("violations: %" PRIu64 "\n", s.violations);
}

int usage() {
  std::fprintf(stderr,
               "usage: fuzz_ops [--seed S] [--cases N] [--first I] [--case I] [--top K] "
               "[--progress FILE] [--verbose]\n");
  return 2;
}

}  // namespace

// Leaks would be real bugs (the glue owns dims arrays and op objects); the
// test may still turn detection off where LeakSanitizer cannot run.
extern "C" const char* __asan_default_options() { return "detect_leaks=1"; }

int main(int argc, char** argv) {
  uint64_t seed = 1, cases = 10000, first = 0;
  int64_t single = -1;
  int top = 30;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--seed" && (v = value()))
      seed = std::strtoull(v, nullptr, 10);
    else if (a == "--cases" && (v = value()))
      cases = std::strtoull(v, nullptr, 10);
    else if (a == "--first" && (v = value()))
      first = std::strtoull(v, nullptr, 10);
    else if (a == "--case" && (v = value()))
      single = std::strtoll(v, nullptr, 10);
    else if (a == "--top" && (v = value()))
      top = std::atoi(v);
    else if (a == "--progress" && (v = value())) {
      g_progress_fd = open(v, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (g_progress_fd < 0) return usage();
    } else if (a == "--verbose")
      verbose = true;
    else
      return usage();
  }
  __sanitizer_set_death_callback(on_death);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (!TfqnnCanRegisterOps()) {
    std::fprintf(stderr,
                 "fuzz_ops: the fake MutableOpResolver::AddCustom is not visible "
                 "(link with -rdynamic)\n");
    return 2;
  }
  TfqnnRegisterOps(reinterpret_cast<void*>(&g_registered));
  if (g_registered.size() != size_t(tfqnn::tflite::kNumOps)) {
    std::fprintf(stderr, "fuzz_ops: TfqnnRegisterOps registered %zu ops\n", g_registered.size());
    return 2;
  }
  find_core_hooks();
  Stats stats;
  Runtime rt;
  g_runtime = &rt;
  g_seed = seed;
  if (single >= 0) {
    first = uint64_t(single);
    cases = 1;
    verbose = true;
  }
  rt.verbose = verbose;
  std::printf("fuzz_ops: seed=%" PRIu64 " first=%" PRIu64 " cases=%" PRIu64 "\n", seed, first,
              cases);
  for (uint64_t i = first; i < first + cases; ++i) {
    const Case c = make_case(seed, i);
    g_index = i;
    g_in_case = true;
    write_progress(i);
    if (verbose) describe(c);
    run_case(c, rt, stats);
    g_in_case = false;
    if (!rt.violations.empty()) {
      ++stats.violations;
      if (stats.violations <= 20) {
        std::printf("VIOLATION in case %" PRIu64 ":", i);
        for (const auto& v : rt.violations) std::printf(" [%s]", v.c_str());
        std::printf("\n");
        if (!verbose) describe(c);
      }
    }
  }
  rt.release();
  if (g_set_isa) g_set_isa(-1);
  if (g_progress_fd >= 0) {
    write_progress(first + cases);
    close(g_progress_fd);
  }
  print_stats(stats, top);
  return stats.violations ? 1 : 0;
}
