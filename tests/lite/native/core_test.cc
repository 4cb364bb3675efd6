// Standalone test of tfqnn's C++ core (no Python, no TFLite): every ISA the
// CPU supports (scalar, AVX2, AVX-512, NEON), switched with the core's
// set_isa_override(), against a naive reference written here from the
// definitions of docs/lite_ops.md (dot products over unpacked +-1 values,
// padding taps as +1 or nothing, y = float(dot) * m + b rounded twice,
// clamps, int8 rounding half away from zero, bitpacked outputs, the int8
// ADD of an int8 residual), bit for bit, on many random shapes, and each
// ISA's int8 ADD kernel on every int8 pair. Outputs are compared as bytes (so -0.0 differs from
// +0.0), and a canary after each output buffer catches writes past its end.
//
// Built by tests/lite/test_aarch64.py, natively and for aarch64 (run under
// qemu-user), from the repository root:
//   g++ -O2 -std=c++17 -pthread -ffp-contract=off -I. tfqnn/lite/kernels/core/*.cc
//       tests/lite/native/core_test.cc -o core_test
// Usage: core_test [--seed N] [--scale F] [--bench]   (F multiplies the case
// counts; --bench only times a dense and a conv layer per ISA)
// Prints "core_test: N cases, isas: scalar ..., OK" and exits 0, or lists
// the mismatches and exits 1.
#include "tfqnn/lite/kernels/core/core.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "tfqnn/lite/kernels/core/internal.h"

namespace {

using namespace tfqnn::core;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr uint8_t kCanary = 0xA5;
constexpr size_t kCanaryBytes = 64;

// ---- random numbers ------------------------------------------------------------

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x1234567ull) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int uniform(int lo, int hi) {  // [lo, hi]
    return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool coin(double p) { return unit() < p; }
  float normal() {
    const double u = unit() + 1e-300, v = unit();
    return static_cast<float>(std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v));
  }
  template <typename T>
  T pick(std::initializer_list<T> values) {
    return values.begin()[next() % values.size()];
  }
};

inline void set_bit(int32_t* words, int c) {
  words[c / 32] |= static_cast<int32_t>(1u << (c % 32));
}

// Packed words of `rows` x `channels` with bit density p; padding bits 0.
std::vector<int32_t> random_packed(Rng& rng, int64_t rows, int channels, double p) {
  const int words = packed_words(channels);
  std::vector<int32_t> out(static_cast<size_t>(rows * words), 0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int c = 0; c < channels; ++c) {
      if (rng.coin(p)) set_bit(out.data() + r * words, c);
    }
  }
  return out;
}

// ---- the reference ---------------------------------------------------------------

// +-1 value of channel c of a packed vector.
inline int value(const int32_t* words, int c) {
  return (static_cast<uint32_t>(words[c / 32]) >> (c % 32)) & 1u ? -1 : 1;
}

// rows x channels packed -> rows x channels of +-1.
std::vector<int8_t> unpack_ref(const int32_t* packed, int64_t rows, int channels) {
  const int words = packed_words(channels);
  std::vector<int8_t> out(static_cast<size_t>(rows * channels));
  for (int64_t r = 0; r < rows; ++r) {
    for (int c = 0; c < channels; ++c) {
      out[r * channels + c] = static_cast<int8_t>(value(packed + r * words, c));
    }
  }
  return out;
}

struct Transform {
  std::vector<float> mult, bias;
  float lo = -kInf, hi = kInf;
  OutputType type = OutputType::kFloat;
  float scale = 1.0f;
  int32_t zp = 0;
  // int8 output with an int8 residual (and an int8 post-bias): the ADDs'
  // parameters as the core computes them (int8_add_params).
  std::vector<int8_t> residual, post_bias;
  Int8Add add, bias_add;
  OutputTransform core() const {
    OutputTransform t;
    t.multiplier = mult.data();
    t.bias = bias.data();
    t.clamp_min = lo;
    t.clamp_max = hi;
    t.type = type;
    t.int8_scale = scale;
    t.int8_zero_point = zp;
    if (!residual.empty()) {
      t.residual_int8 = residual.data();
      t.add = add;
      t.post_bias_int8 = post_bias.empty() ? nullptr : post_bias.data();
      t.bias_add = bias_add;
    }
    return t;
  }
};

// y = float32(dot) * m + b, two float32 roundings (the volatile stores make
// them regardless of FMA contraction), then the clamps.
float affine_ref(int32_t dot, float m, float b, float lo, float hi) {
  volatile float product = static_cast<float>(dot) * m;
  volatile float y = product + b;
  float v = y;
  if (v < lo) v = lo;
  if (v > hi) v = hi;
  return v;
}

int8_t int8_ref(float y, float scale, int32_t zp) {
  volatile float quotient = y / scale;  // rounded to float32
  const double v = quotient;
  const double r = v < 0 ? -std::floor(-v + 0.5) : std::floor(v + 0.5);
  double q = r + zp;
  if (q < -128) q = -128;
  if (q > 127) q = 127;
  return static_cast<int8_t>(q);
}

// The int8 ADD of docs/lite_ops.md (XNNPACK's) written from its definition
// in double and int64 arithmetic, independently of core.h's Int8Add: ratios
// ra = float32(sa / so), rb = float32(sb / so), e = the binary exponent of
// max(ra, rb), shift = 20 - e, multipliers rint(r 2^shift) (ties to even),
// out = clamp(floor((2^(shift-1) + ma (a - za) + mb (b - zb)) / 2^shift) + zo,
// lo, 127), lo = zo with a fused ReLU, else -128.
struct AddRef {
  float sa = 1.0f, sb = 1.0f, so = 1.0f;
  int32_t za = 0, zb = 0, zo = 0;
  bool relu = false;
};

// False when a ratio lies outside [2^-10, 2^8) (the op refuses such scales).
bool add_ref_params(const AddRef& r, int64_t* ma, int64_t* mb, int* shift) {
  const volatile float ra = r.sa / r.so, rb = r.sb / r.so;  // float32 ratios
  for (double x : {static_cast<double>(ra), static_cast<double>(rb)}) {
    if (!(x >= 1.0 / 1024.0 && x < 256.0)) return false;
  }
  int e = 0;
  std::frexp(std::max<double>(ra, rb), &e);  // max = m 2^e, m in [0.5, 1)
  *shift = 20 - (e - 1);
  *ma = static_cast<int64_t>(std::nearbyint(std::ldexp(static_cast<double>(ra), *shift)));
  *mb = static_cast<int64_t>(std::nearbyint(std::ldexp(static_cast<double>(rb), *shift)));
  return true;
}

int8_t add_ref(int a, int b, const AddRef& r, int64_t ma, int64_t mb, int shift) {
  const int64_t den = int64_t{1} << shift;
  const int64_t num = den / 2 + ma * (a - r.za) + mb * (b - r.zb);
  const int64_t floor_div = num >= 0 ? num / den : -((-num + den - 1) / den);
  int64_t q = floor_div + r.zo;
  q = std::max<int64_t>(q, r.relu ? r.zo : -128);
  q = std::min<int64_t>(q, 127);
  return static_cast<int8_t>(q);
}

size_t row_bytes(OutputType type, int n) {
  switch (type) {
    case OutputType::kFloat: return 4 * static_cast<size_t>(n);
    case OutputType::kInt8: return static_cast<size_t>(n);
    case OutputType::kBitpacked: return 4 * static_cast<size_t>(packed_words(n));
  }
  return 0;
}

// The output rows of the dot products `dots` (rows x n).
std::vector<uint8_t> output_ref(const std::vector<int32_t>& dots, int64_t rows, int n,
                                const Transform& t) {
  const size_t rb = row_bytes(t.type, n);
  std::vector<uint8_t> out(rb * static_cast<size_t>(rows), 0);
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* row = out.data() + rb * r;
    for (int o = 0; o < n; ++o) {
      const float y = affine_ref(dots[r * n + o], t.mult[o], t.bias[o], t.lo, t.hi);
      switch (t.type) {
        case OutputType::kFloat: std::memcpy(row + 4 * o, &y, 4); break;
        case OutputType::kInt8: {
          const int8_t q = int8_ref(y, t.scale, t.zp);
          std::memcpy(row + o, &q, 1);
          break;
        }
        case OutputType::kBitpacked:
          if (y < 0.0f) row[4 * (o / 32) + (o % 32) / 8] |= static_cast<uint8_t>(1u << (o % 8));
          break;
      }
    }
  }
  return out;
}

// TensorFlow's SAME / VALID along one axis (docs/lite_ops.md).
void geometry_ref(int in, int k, int stride, int dilation, Padding padding, int* out, int* pad) {
  const int eff = (k - 1) * dilation + 1;
  if (padding == Padding::kSame) {
    *out = (in + stride - 1) / stride;
    const int total = (*out - 1) * stride + eff - in;
    *pad = total > 0 ? total / 2 : 0;
  } else {
    *out = in >= eff ? (in - eff) / stride + 1 : 0;
    *pad = 0;
  }
}

// ---- random transforms -----------------------------------------------------------

// Multipliers and biases of one of several kinds, clamps, output type.
Transform random_transform(Rng& rng, int n, int k, OutputType type, std::string* what) {
  Transform t;
  t.type = type;
  t.mult.resize(n);
  t.bias.resize(n);
  const int kind = rng.uniform(0, 9);
  if (kind <= 4) {  // of the size of the dot products
    const float spread = 1.0f / std::sqrt(static_cast<float>(k > 0 ? k : 1));
    for (int o = 0; o < n; ++o) {
      t.mult[o] = rng.normal() * spread;
      t.bias[o] = rng.normal();
    }
    t.scale = static_cast<float>(std::exp(rng.normal() * 2.0f) * 0.05);
    *what = "normal";
  } else if (kind <= 6) {  // exact halves after the scale: rounding ties
    for (int o = 0; o < n; ++o) {
      t.mult[o] = rng.pick({-2.0f, -1.0f, -0.5f, -0.25f, 0.25f, 0.5f, 1.0f, 2.0f});
      t.bias[o] = 0.25f * rng.uniform(-8, 8);
    }
    t.scale = rng.pick({0.25f, 0.5f, 1.0f, 2.0f});
    *what = "ties";
  } else if (kind == 7) {  // overflow to +-inf
    for (int o = 0; o < n; ++o) {
      t.mult[o] = rng.pick({-3e38f, -1e38f, 1e38f, 3e38f, 1.0f});
      t.bias[o] = rng.pick({0.0f, -1e38f, 1e38f});
    }
    t.scale = rng.pick({0.01f, 1.0f, 3e38f});
    *what = "overflow";
  } else {  // signed zeros (-0.0 must stay -0.0), tiny values
    for (int o = 0; o < n; ++o) {
      t.mult[o] = rng.pick({0.0f, -0.0f, 1.0f, -1.0f, 1e-38f, -1e-45f});
      t.bias[o] = rng.pick({0.0f, -0.0f, 0.5f, -0.5f, 1e-40f});
    }
    t.scale = rng.pick({1.0f, 1e-30f, 0.5f});
    *what = "zeros";
  }
  switch (rng.uniform(0, 5)) {
    case 0:
    case 1: break;               // no clamp
    case 2: t.lo = 0.0f; break;  // ReLU
    case 3:
      t.lo = -rng.unit() * 3;
      t.hi = rng.unit() * 3;
      break;
    case 4: t.hi = static_cast<float>(rng.normal()); break;
    case 5: t.lo = t.hi = rng.pick({0.0f, -0.0f, 1.5f}); break;
  }
  t.zp = rng.coin(0.3) ? 0 : rng.uniform(-128, 127);
  return t;
}

OutputType random_type(Rng& rng) { return static_cast<OutputType>(rng.uniform(0, 2)); }

const char* type_name(OutputType t) {
  return t == OutputType::kFloat ? "float" : (t == OutputType::kInt8 ? "int8" : "bitpacked");
}

// ---- the harness -----------------------------------------------------------------

struct Harness {
  std::vector<Isa> isas;
  int64_t cases = 0, checks = 0, failures = 0;

  // Runs `run(Isa, out)` on every ISA with an output buffer of expected.size()
  // bytes (plus a canary) and compares.
  template <typename Run>
  void check(const std::string& what, const std::vector<uint8_t>& expected, Run&& run) {
    ++cases;
    for (Isa isa : isas) {
      if (!set_isa_override(isa) || active_isa() != isa) {
        fail(what, isa, "set_isa_override failed");
        continue;
      }
      std::vector<uint8_t> out(expected.size() + kCanaryBytes, kCanary);
      run(out.data());
      ++checks;
      for (size_t i = 0; i < expected.size(); ++i) {
        if (out[i] != expected[i]) {
          char buf[160];
          std::snprintf(buf, sizeof buf,
                        "first difference at byte %zu of %zu: expected 0x%02x, got 0x%02x", i,
                        expected.size(), expected[i], out[i]);
          fail(what, isa, buf);
          break;
        }
      }
      for (size_t i = expected.size(); i < out.size(); ++i) {
        if (out[i] != kCanary) {
          fail(what, isa, "wrote past the end of the output");
          break;
        }
      }
    }
    clear_isa_override();
  }

  void fail(const std::string& what, Isa isa, const std::string& why) {
    if (++failures <= 20) {
      std::fprintf(stderr, "MISMATCH [%s] %s: %s\n", isa_name(isa), what.c_str(), why.c_str());
    }
  }
};

template <typename T>
std::vector<uint8_t> as_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// ---- the cases -------------------------------------------------------------------

// The core's parameters of the ADD `r` against add_ref_params(): both refuse
// the same scales and agree on the multipliers and the shift otherwise.
bool int8_add_params_checked(Harness& h, const AddRef& r, Int8Add* p) {
  int64_t ma = 0, mb = 0;
  int shift = 0;
  const bool ok = add_ref_params(r, &ma, &mb, &shift);
  const bool core_ok = int8_add_params(r.sa, r.za, r.sb, r.zb, r.so, r.zo, p);
  char why[200];
  std::snprintf(why, sizeof why, "scales %g, %g -> %g: reference %s, core %s", r.sa, r.sb, r.so,
                ok ? "accepts" : "refuses", core_ok ? "accepts" : "refuses");
  if (ok != core_ok) {
    h.fail("int8_add_params", Isa::kScalar, why);
    return false;
  }
  if (ok && (p->a_multiplier != ma || p->b_multiplier != mb || p->shift != shift)) {
    h.fail("int8_add_params", Isa::kScalar, std::string(why) + ": other multipliers or shift");
    return false;
  }
  p->output_min = r.relu ? r.zo : -128;
  p->output_max = 127;
  return ok;
}

// The element-wise int8 ADD kernel of `isa` (internal.h).
AddResidualInt8Fn add_residual_int8_of(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return add_residual_int8_scalar;
#if defined(__x86_64__)
    case Isa::kAvx2: return add_residual_int8_avx2;
    case Isa::kAvx512: return add_residual_int8_avx512;
#endif
#if TFQNN_NEON
    case Isa::kNeon: return add_residual_int8_neon;
#endif
    default: return nullptr;
  }
}

// The ADD `r` of every int8 pair (a, b), 65,536 of them, by each ISA's
// add_residual_int8 against add_ref(), whole and as an odd-length slice at
// an odd offset (the vector loops' tails); add_ref() itself lies within one
// step of the exact sum round(ra (a - za) + rb (b - zb)) + zo, clamped.
void int8_add_case(Harness& h, const AddRef& r, int index) {
  Int8Add p;
  int64_t ma = 0, mb = 0;
  int shift = 0;
  if (!int8_add_params_checked(h, r, &p) || !add_ref_params(r, &ma, &mb, &shift)) {
    h.fail("int8 add case", Isa::kScalar, "scales out of the ADD's range");
    return;
  }
  constexpr int kPairs = 65536;
  std::vector<int8_t> a(kPairs), b(kPairs), expected(kPairs);
  const double ra = static_cast<double>(r.sa) / r.so, rb = static_cast<double>(r.sb) / r.so;
  int far = 0;
  for (int i = 0; i < kPairs; ++i) {
    a[i] = static_cast<int8_t>((i & 255) - 128);
    b[i] = static_cast<int8_t>((i >> 8) - 128);
    expected[i] = add_ref(a[i], b[i], r, ma, mb, shift);
    const double exact = std::nearbyint(ra * (a[i] - r.za) + rb * (b[i] - r.zb)) + r.zo;
    const double clamped = std::min(127.0, std::max(exact, r.relu ? r.zo : -128.0));
    if (std::fabs(clamped - expected[i]) > 1.0) ++far;
  }
  char what[200];
  std::snprintf(what, sizeof what,
                "int8 add #%d: (%g, %d) + (%g, %d) -> (%g, %d)%s, multipliers %lld, %lld, shift %d",
                index, r.sa, r.za, r.sb, r.zb, r.so, r.zo, r.relu ? " relu" : "",
                static_cast<long long>(ma), static_cast<long long>(mb), shift);
  if (far > 0) h.fail(what, Isa::kScalar, std::to_string(far) + " sums off the exact by > 1");
  for (const int begin : {0, 5}) {
    const int n = begin == 0 ? kPairs : kPairs - 2 * begin - 32;
    const std::vector<int8_t> want(expected.begin() + begin, expected.begin() + begin + n);
    h.check(std::string(what) + (begin == 0 ? "" : ", slice"), as_bytes(want), [&](uint8_t* out) {
      std::memcpy(out, a.data() + begin, static_cast<size_t>(n));
      const AddResidualInt8Fn add = add_residual_int8_of(active_isa());
      if (add == nullptr) return;  // the mismatch is reported
      add(reinterpret_cast<int8_t*>(out), b.data() + begin, n, p);
    });
  }
}

void int8_add_cases(Harness& h) {
  const float tiny = 0x1.0p-10f;
  int index = 0;
  for (AddRef r : {
           AddRef{0.05f, 0.1f, 0.12f, 3, -7, 2, false},           // a generic ADD
           AddRef{0.5f, 0.8f, 1.0f, 0, 0, 0, false},              // ratios 1/2, 4/5: many ties
           AddRef{255.0f, tiny, 1.0f, -128, 127, -128, false},    // the range's ends
           AddRef{tiny, 1.0f, 1.0f, 127, -128, 127, false},       // the other way round
           AddRef{0.02f, 0.03f, 0.04f, -5, 10, -20, true},        // a fused ReLU
           AddRef{1.0f / 3, 1.0f / 3, 1.0f / 3, 1, -1, -1, true}  // ratios of 1
       }) {
    int8_add_case(h, r, index++);
  }
}

// Gives the int8 transform `t` of rows x n outputs an int8 residual, in one
// case of three after an int8 post-bias, with random scales and zero points,
// and applies the ADDs (add_ref) to its expected bytes. Returns what it drew
// ("no residual" when the scales fall outside the ADD's range).
std::string int8_residual(Harness& h, Rng& rng, int64_t rows, int n, Transform* t,
                          std::vector<uint8_t>* expected) {
  const auto ratio = [&rng] { return rng.pick({1.0f, 0.5f, 1.25f, 3.0f, 0.01f, 40.0f}); };
  const auto int8 = [&rng] {
    return static_cast<int8_t>(rng.coin(0.1) ? rng.pick({-128, 127}) : rng.uniform(-128, 127));
  };
  const bool with_bias = rng.coin(1.0 / 3);
  AddRef biased{t->scale, t->scale * ratio(),     t->scale * ratio(),
                t->zp,    rng.uniform(-128, 127), rng.uniform(-128, 127),
                false};
  const float sum_scale = with_bias ? biased.so : t->scale;
  AddRef add{sum_scale,
             sum_scale * ratio(),
             sum_scale * ratio(),
             with_bias ? biased.zo : t->zp,
             rng.uniform(-128, 127),
             rng.uniform(-128, 127),
             rng.coin(0.3)};
  std::vector<int8_t> post_bias(static_cast<size_t>(n)), residual(static_cast<size_t>(rows * n));
  for (int8_t& v : post_bias) v = int8();
  for (int8_t& v : residual) v = int8();
  if (with_bias && !int8_add_params_checked(h, biased, &t->bias_add)) return "no residual";
  if (!int8_add_params_checked(h, add, &t->add)) return "no residual";
  int64_t ma = 0, mb = 0, mc = 0, md = 0;
  int shift = 0, bias_shift = 0;
  add_ref_params(add, &ma, &mb, &shift);
  if (with_bias) add_ref_params(biased, &mc, &md, &bias_shift);
  for (int64_t r = 0; r < rows; ++r) {
    for (int o = 0; o < n; ++o) {
      uint8_t& byte = (*expected)[static_cast<size_t>(r * n + o)];
      int8_t q = static_cast<int8_t>(byte);
      if (with_bias) q = add_ref(q, post_bias[o], biased, mc, md, bias_shift);
      q = add_ref(q, residual[r * n + o], add, ma, mb, shift);
      byte = static_cast<uint8_t>(q);
    }
  }
  t->residual = std::move(residual);
  if (with_bias) t->post_bias = std::move(post_bias);
  char what[160];
  std::snprintf(what, sizeof what, "int8 residual %s(%g, %d) -> (%g, %d)%s",
                with_bias ? "after a post-bias " : "", add.sb, add.zb, add.so, add.zo,
                add.relu ? " relu" : "");
  return what;
}

int random_channels(Rng& rng) {
  switch (rng.uniform(0, 5)) {
    case 0: return rng.pick({1, 31, 32, 33, 63, 64, 65, 96, 128, 200});
    case 1: return 32 * rng.uniform(1, 6);
    default: return rng.uniform(1, 200);
  }
}

void dense_case(Harness& h, Rng& rng, int index) {
  const int in_features =
      rng.coin(0.15) ? rng.uniform(900, 2100) : random_channels(rng);  // > 31 words: flushes
  const int n = rng.coin(0.2) ? rng.pick({1, 15, 16, 17, 31, 32, 33, 64, 65}) : rng.uniform(1, 130);
  const int kw = packed_words(in_features);
  // Densities 0 and 1 too: x XOR w all ones gives the largest counts.
  const double p = rng.pick({0.5, 0.5, 0.05, 0.95, 0.0, 1.0});
  const std::vector<int32_t> w = random_packed(rng, n, in_features, p);
  const std::vector<int8_t> wv = unpack_ref(w.data(), n, in_features);
  const bool prepared = rng.coin(0.5);
  BDense dense;  // one per ISA would do too: prepare() depends on no ISA
  if (prepared) dense.prepare(w.data(), n, in_features);
  // A prepared BDense runs twice: other rows, another transform.
  for (int run = 0; run < (prepared ? 2 : 1); ++run) {
    const int64_t rows = rng.coin(0.05) ? 0 : rng.uniform(1, in_features > 800 ? 20 : 70);
    const int threads = rng.pick({1, 3});
    const std::vector<int32_t> x =
        random_packed(rng, rows, in_features, rng.pick({0.5, 0.9, 0.0, 1.0}));
    const std::vector<int8_t> xv = unpack_ref(x.data(), rows, in_features);
    std::vector<int32_t> dots(static_cast<size_t>(rows * n));
    for (int64_t r = 0; r < rows; ++r) {
      for (int o = 0; o < n; ++o) {
        int32_t d = 0;
        const int8_t* xr = xv.data() + r * in_features;
        const int8_t* wr = wv.data() + int64_t{o} * in_features;
        for (int c = 0; c < in_features; ++c) d += xr[c] * wr[c];
        dots[r * n + o] = d;
      }
    }
    std::string kind;
    const Transform t = random_transform(rng, n, in_features, random_type(rng), &kind);
    const OutputTransform ct = t.core();
    char what[200];
    std::snprintf(what, sizeof what,
                  "dense #%d%s: rows %lld, in %d (%d words), out %d, %s, %s, clamp [%g, %g], "
                  "threads %d",
                  index, prepared ? " (BDense)" : "", static_cast<long long>(rows), in_features, kw,
                  n, type_name(t.type), kind.c_str(), t.lo, t.hi, threads);
    h.check(what, output_ref(dots, rows, n, t), [&](uint8_t* out) {
      if (prepared) {
        dense.run(x.data(), rows, ct, out, threads);
      } else {
        bdense(x.data(), rows, w.data(), n, in_features, ct, out, threads);
      }
    });
  }
}

void conv_case(Harness& h, Rng& rng, int index) {
  BConv2dShape s;
  s.groups = rng.coin(0.25) ? rng.pick({2, 2, 4}) : 1;
  const int cg = s.groups > 1 ? 32 * rng.uniform(1, 3) : random_channels(rng);
  s.channels_in = cg * s.groups;
  int og = rng.coin(0.2) ? rng.pick({1, 16, 17, 32, 33}) : rng.uniform(1, 40);
  // 3 or 4 gemm panels of 32 in one group: threads split the columns of small outputs.
  if (s.groups == 1 && rng.coin(0.05)) og = rng.pick({70, 97});
  s.channels_out = og * s.groups;
  s.batch = rng.uniform(1, 2);
  s.in_height = rng.uniform(1, 9);
  s.in_width = rng.uniform(1, 9);
  s.filter_height = rng.pick({1, 1, 2, 3, 3, 3, 5});
  s.filter_width = rng.coin(0.7) ? s.filter_height : rng.uniform(1, 4);
  s.stride_height = rng.uniform(1, 2);
  s.stride_width = rng.coin(0.8) ? s.stride_height : rng.uniform(1, 2);
  s.dilation_height = rng.coin(0.25) ? 2 : 1;
  s.dilation_width = rng.coin(0.8) ? s.dilation_height : rng.uniform(1, 2);
  s.padding = rng.coin(0.6) ? Padding::kSame : Padding::kValid;
  s.pad_values = rng.uniform(-1, 1);
  if (rng.coin(0.1)) {  // 1x1, stride 1: the kernel reads the input rows as they are
    s.filter_height = s.filter_width = 1;
    s.stride_height = s.stride_width = 1;
  }
  if (s.padding == Padding::kValid) {  // mostly a non-empty output
    s.in_height = std::max(s.in_height, (s.filter_height - 1) * s.dilation_height + 1);
    s.in_width = std::max(s.in_width, (s.filter_width - 1) * s.dilation_width + 1);
  }
  compute_conv_geometry(&s);
  int ho, wo, pt, pl;
  geometry_ref(s.in_height, s.filter_height, s.stride_height, s.dilation_height, s.padding, &ho,
               &pt);
  geometry_ref(s.in_width, s.filter_width, s.stride_width, s.dilation_width, s.padding, &wo, &pl);
  if (ho != s.out_height || wo != s.out_width || pt != s.pad_top || pl != s.pad_left) {
    h.fail("conv geometry", Isa::kScalar, "compute_conv_geometry differs from the definition");
    return;
  }

  const int B = s.batch, H = s.in_height, W = s.in_width, C = s.channels_in;
  const int O = s.channels_out, KH = s.filter_height, KW = s.filter_width;
  const std::vector<int32_t> x =
      random_packed(rng, int64_t{B} * H * W, C, rng.pick({0.5, 0.5, 0.1, 1.0}));
  // OHWI, packed along I: O * KH * KW rows of cg channels.
  const std::vector<int32_t> f =
      random_packed(rng, int64_t{O} * KH * KW, cg, rng.pick({0.5, 0.5, 0.9, 0.0}));
  const std::vector<int8_t> xv = unpack_ref(x.data(), int64_t{B} * H * W, C);
  const std::vector<int8_t> fv = unpack_ref(f.data(), int64_t{O} * KH * KW, cg);

  const int64_t rows = int64_t{B} * ho * wo;
  std::vector<int32_t> dots(static_cast<size_t>(rows * O));
  for (int b = 0; b < B; ++b) {
    for (int oy = 0; oy < ho; ++oy) {
      for (int ox = 0; ox < wo; ++ox) {
        for (int o = 0; o < O; ++o) {
          const int g = o / og;
          int32_t d = 0;
          for (int ky = 0; ky < KH; ++ky) {
            const int iy = oy * s.stride_height - pt + ky * s.dilation_height;
            for (int kx = 0; kx < KW; ++kx) {
              const int ix = ox * s.stride_width - pl + kx * s.dilation_width;
              const int8_t* wt = fv.data() + ((int64_t{o} * KH + ky) * KW + kx) * cg;
              if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
                const int8_t* px = xv.data() + ((int64_t{b} * H + iy) * W + ix) * C + g * cg;
                for (int c = 0; c < cg; ++c) d += px[c] * wt[c];
              } else if (s.pad_values != 0) {  // a padding pixel of +1 or -1
                for (int c = 0; c < cg; ++c) d += s.pad_values * wt[c];
              }  // pad_values 0: a zero pixel adds nothing
            }
          }
          dots[((int64_t{b} * ho + oy) * wo + ox) * O + o] = d;
        }
      }
    }
  }
  std::string kind;
  Transform t = random_transform(rng, O, KH * KW * cg, random_type(rng), &kind);
  std::vector<uint8_t> expected = output_ref(dots, rows, O, t);
  std::string residual = "no residual";
  if (t.type == OutputType::kInt8 && rng.coin(0.5)) {
    residual = int8_residual(h, rng, rows, O, &t, &expected);
  }
  const OutputTransform ct = t.core();
  const int threads = rng.pick({1, 3});
  char what[400];
  std::snprintf(what, sizeof what,
                "conv #%d: %dx%dx%dx%d -> %dx%dx%d, filter %dx%d, stride %dx%d, dilation "
                "%dx%d, %s, pad_values %d, groups %d, %s, %s, clamp [%g, %g], %s, threads %d",
                index, B, H, W, C, ho, wo, O, KH, KW, s.stride_height, s.stride_width,
                s.dilation_height, s.dilation_width, s.padding == Padding::kSame ? "same" : "valid",
                s.pad_values, s.groups, type_name(t.type), kind.c_str(), t.lo, t.hi,
                residual.c_str(), threads);
  BConv2d conv;  // prepare() depends on no ISA: one for all of them
  conv.prepare(s, f.data());
  h.check(what, expected, [&](uint8_t* out) { conv.run(x.data(), ct, out, threads); });
}

void pool_case(Harness& h, Rng& rng, int index) {
  BMaxPoolShape s;
  s.batch = rng.uniform(1, 2);
  s.in_height = rng.uniform(1, 9);
  s.in_width = rng.uniform(1, 9);
  s.words = rng.uniform(1, 4);
  s.filter_height = rng.uniform(1, 4);
  s.filter_width = rng.uniform(1, 4);
  s.stride_height = rng.uniform(1, 3);
  s.stride_width = rng.uniform(1, 3);
  s.padding = rng.coin(0.5) ? Padding::kSame : Padding::kValid;
  if (s.padding == Padding::kValid) {
    s.in_height = std::max(s.in_height, s.filter_height);
    s.in_width = std::max(s.in_width, s.filter_width);
  }
  compute_pool_geometry(&s);
  int ho, wo, pt, pl;
  geometry_ref(s.in_height, s.filter_height, s.stride_height, 1, s.padding, &ho, &pt);
  geometry_ref(s.in_width, s.filter_width, s.stride_width, 1, s.padding, &wo, &pl);
  if (ho != s.out_height || wo != s.out_width || pt != s.pad_top || pl != s.pad_left) {
    h.fail("pool geometry", Isa::kScalar, "compute_pool_geometry differs from the definition");
    return;
  }
  const int C = 32 * s.words;
  // Mostly -1 (bits set), so that the max keeps some -1.
  const std::vector<int32_t> x =
      random_packed(rng, int64_t{s.batch} * s.in_height * s.in_width, C, 0.8);
  const std::vector<int8_t> xv =
      unpack_ref(x.data(), int64_t{s.batch} * s.in_height * s.in_width, C);
  std::vector<int32_t> expected(static_cast<size_t>(s.batch) * ho * wo * s.words, 0);
  for (int b = 0; b < s.batch; ++b) {
    for (int oy = 0; oy < ho; ++oy) {
      for (int ox = 0; ox < wo; ++ox) {
        for (int c = 0; c < C; ++c) {
          int m = -1;  // the max of the +-1 values in the window, padding ignored
          for (int ky = 0; ky < s.filter_height; ++ky) {
            for (int kx = 0; kx < s.filter_width; ++kx) {
              const int iy = oy * s.stride_height - pt + ky;
              const int ix = ox * s.stride_width - pl + kx;
              if (iy < 0 || iy >= s.in_height || ix < 0 || ix >= s.in_width) continue;
              const int v = xv[((int64_t{b} * s.in_height + iy) * s.in_width + ix) * C + c];
              m = v > m ? v : m;
            }
          }
          if (m < 0) set_bit(expected.data() + ((int64_t{b} * ho + oy) * wo + ox) * s.words, c);
        }
      }
    }
  }
  char what[200];
  std::snprintf(what, sizeof what, "maxpool #%d: %dx%dx%dx%d words, pool %dx%d, stride %dx%d, %s",
                index, s.batch, s.in_height, s.in_width, s.words, s.filter_height, s.filter_width,
                s.stride_height, s.stride_width, s.padding == Padding::kSame ? "same" : "valid");
  h.check(what, as_bytes(expected),
          [&](uint8_t* out) { bmaxpool2d(x.data(), s, reinterpret_cast<int32_t*>(out)); });
}

void pack_case(Harness& h, Rng& rng, int index) {
  const int64_t rows = rng.uniform(0, 6);
  const int channels = rng.coin(0.1) ? rng.uniform(201, 700) : random_channels(rng);
  const int words = packed_words(channels);
  const size_t n = static_cast<size_t>(rows * channels);
  char what[160];

  // float: bit where x < 0 (-0.0 and NaN give 0).
  std::vector<float> xf(n);
  for (float& v : xf) {
    v = rng.coin(0.2) ? rng.pick({0.0f, -0.0f, kInf, -kInf, std::nanf(""), -std::nanf(""), 1e-45f,
                                  -1e-45f, -1e-40f})
                      : rng.normal();
  }
  std::vector<int32_t> expected(static_cast<size_t>(rows * words), 0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int c = 0; c < channels; ++c) {
      if (xf[r * channels + c] < 0.0f) set_bit(expected.data() + r * words, c);
    }
  }
  std::snprintf(what, sizeof what, "bitpack float #%d: rows %lld, channels %d", index,
                static_cast<long long>(rows), channels);
  h.check(what, as_bytes(expected), [&](uint8_t* out) {
    bitpack_float(xf.data(), rows, channels, reinterpret_cast<int32_t*>(out));
  });

  // int8: bit where q < zero_point (also a zero point beyond the int8 range).
  const int32_t zp = rng.coin(0.1) ? rng.pick({-129, 128, -1000}) : rng.uniform(-128, 127);
  std::vector<int8_t> xq(n);
  for (int8_t& v : xq) {
    v = static_cast<int8_t>(rng.coin(0.2) ? rng.pick({-128, 127, zp, zp - 1, zp + 1})
                                          : rng.uniform(-128, 127));
  }
  std::fill(expected.begin(), expected.end(), 0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int c = 0; c < channels; ++c) {
      if (xq[r * channels + c] < zp) set_bit(expected.data() + r * words, c);
    }
  }
  std::snprintf(what, sizeof what, "bitpack int8 #%d: rows %lld, channels %d, zero point %d", index,
                static_cast<long long>(rows), channels, zp);
  h.check(what, as_bytes(expected), [&](uint8_t* out) {
    bitpack_int8(xq.data(), rows, channels, zp, reinterpret_cast<int32_t*>(out));
  });

  // unpack: +-1.0 per channel; the padding bits (random here) are ignored.
  std::vector<int32_t> packed(static_cast<size_t>(rows * words));
  for (int32_t& v : packed) v = static_cast<int32_t>(rng.next());
  std::vector<float> unpacked(n);
  for (int64_t r = 0; r < rows; ++r) {
    for (int c = 0; c < channels; ++c) {
      unpacked[r * channels + c] = static_cast<float>(value(packed.data() + r * words, c));
    }
  }
  std::snprintf(what, sizeof what, "unpack #%d: rows %lld, channels %d", index,
                static_cast<long long>(rows), channels);
  h.check(what, as_bytes(unpacked), [&](uint8_t* out) {
    unpack_float(packed.data(), rows, channels, reinterpret_cast<float*>(out));
  });
}

// The last steps of the multi-basis transform, the kernel table's
// bias_clamp (y + b rounded, then the clamps; NaN passes them) and
// quantize_int8 (int8_ref; NaN -128: the kernels take it to -512 before the
// zero point, which is in [-128, 127]): ties (exact for the scales 0.25 to
// 3), their neighbours, NaN, infinities, huge and tiny values and scales,
// lengths around the vector widths.
void finish_case(Harness& h, Rng& rng, int index) {
  const int n = rng.coin(0.3) ? rng.uniform(0, 40) : rng.uniform(41, 300);
  const float scale = rng.pick({0.25f, 0.5f, 1.0f, 3.0f, 0.1f, 1e-30f, 1e30f, 1e-45f});
  const int32_t zp = rng.coin(0.3) ? 0 : rng.uniform(-128, 127);
  const auto special = [&rng] {
    return rng.pick(
        {kInf, -kInf, std::nanf(""), -std::nanf(""), 0.0f, -0.0f, 3e38f, -3e38f, 1e-45f, -1e-45f});
  };
  std::vector<float> y(n), bias(n);
  for (int j = 0; j < n; ++j) {
    const float tie = (static_cast<float>(rng.uniform(-300, 300)) + 0.5f) * scale;
    switch (rng.uniform(0, 9)) {
      case 0: y[j] = special(); break;
      case 1: y[j] = std::nextafter(tie, rng.coin(0.5) ? kInf : -kInf); break;
      case 2:
      case 3:
      case 4: y[j] = tie; break;
      default: y[j] = rng.normal() * 100.0f * scale;
    }
    bias[j] = rng.coin(0.1) ? special() : rng.normal();
  }
  std::vector<int8_t> q(n);
  for (int j = 0; j < n; ++j) q[j] = std::isnan(y[j]) ? int8_t{-128} : int8_ref(y[j], scale, zp);
  char what[160];
  std::snprintf(what, sizeof what, "quantize_int8 #%d: n %d, scale %g, zero point %d", index, n,
                static_cast<double>(scale), zp);
  h.check(what, as_bytes(q), [&](uint8_t* out) {
    active_kernels().quantize_int8(y.data(), n, scale, zp, reinterpret_cast<int8_t*>(out));
  });

  const float lo = rng.pick({-kInf, -1.5f, 0.0f, -0.0f});
  const float hi = rng.pick({kInf, 2.0f, 0.0f});
  std::vector<float> clamped(n);
  for (int j = 0; j < n; ++j) {
    volatile float v = y[j] + bias[j];
    float c = v;
    if (c < lo) c = lo;
    if (c > hi) c = hi;
    clamped[j] = std::isnan(c) ? kNan : c;
  }
  std::snprintf(what, sizeof what, "bias_clamp #%d: n %d, clamps [%g, %g]", index, n,
                static_cast<double>(lo), static_cast<double>(hi));
  h.check(what, as_bytes(clamped), [&](uint8_t* out) {
    float* o = reinterpret_cast<float*>(out);
    std::memcpy(o, y.data(), sizeof(float) * n);
    active_kernels().bias_clamp(o, bias.data(), n, lo, hi);
    // The sum of two NaNs is either one (the operands' order, the compiler's
    // choice): NaN is checked as NaN, not its sign or payload.
    for (int j = 0; j < n; ++j) o[j] = std::isnan(o[j]) ? kNan : o[j];
  });
}

// parallel_for's contract: [0, n) cut into contiguous chunks, each index run
// exactly once, at most num_threads * chunks_per_thread chunks, each running
// thread in a slot of [0, min(num_threads, n)) that no other thread holds at
// the same time; from several calling threads at once (a busy pool runs the
// call on its caller) and with wake_threads() and rest_threads() in between.
void threads_case(Harness& h, Rng& rng, int index) {
  const int64_t n = rng.pick({1, 2, 3, 7, 8, 64, 190, 1000});
  const int threads = rng.uniform(1, 5);
  const int per_thread = rng.uniform(1, 4);
  const int callers = rng.pick({1, 1, 3});
  const int64_t slots = std::min<int64_t>(threads, n);
  std::atomic<int> errors{0};
  auto call = [&] {
    std::vector<std::atomic<int>> runs(static_cast<size_t>(n));
    for (auto& r : runs) r.store(0);
    std::vector<std::atomic<int>> held(static_cast<size_t>(slots));
    for (auto& s : held) s.store(0);
    std::atomic<int64_t> chunks{0};
    for (int rep = 0; rep < 20; ++rep) {
      if (rep % 7 == 3) wake_threads(threads);
      if (rep % 4 == 1) rest_threads();  // spinning workers sleep at once
      for (auto& r : runs) r.store(0);
      chunks.store(0);
      parallel_for(n, threads, per_thread, [&](int64_t b, int64_t e, int slot) {
        chunks.fetch_add(1);
        if (b < 0 || e > n || b >= e || slot < 0 || slot >= slots) {
          errors.fetch_add(1);
          return;
        }
        if (held[static_cast<size_t>(slot)].fetch_add(1) != 0) errors.fetch_add(1);
        for (int64_t i = b; i < e; ++i) runs[static_cast<size_t>(i)].fetch_add(1);
        if (rep % 5 == 0) std::this_thread::sleep_for(std::chrono::microseconds(20));
        held[static_cast<size_t>(slot)].fetch_sub(1);
      });
      for (auto& r : runs) {
        if (r.load() != 1) errors.fetch_add(1);
      }
      const int64_t c = chunks.load();
      if (c < 1 || c > std::min<int64_t>(n, int64_t{threads} * per_thread)) errors.fetch_add(1);
    }
  };
  // Every third case with workers that sleep as soon as they are idle, so
  // that each job wakes them (the condition variable's path).
  const int64_t spin = set_thread_spin_ns(index % 3 == 0 ? 0 : 5000);
  if (spin != 30000) errors.fetch_add(1);  // the default, restored below
  // Once per ISA, as the harness counts checks (parallel_for has no ISA).
  ++h.cases;
  for (Isa isa : h.isas) {
    set_isa_override(isa);
    std::vector<std::thread> others;
    for (int c = 1; c < callers; ++c) others.emplace_back(call);
    call();
    for (auto& t : others) t.join();
    ++h.checks;
  }
  clear_isa_override();
  if (set_thread_spin_ns(spin) != (index % 3 == 0 ? 0 : 5000)) errors.fetch_add(1);
  if (errors.load() != 0) {
    char what[160];
    std::snprintf(what, sizeof what,
                  "threads #%d: n %lld, num_threads %d, chunks per thread %d, callers %d: %d "
                  "errors",
                  index, static_cast<long long>(n), threads, per_thread, callers, errors.load());
    h.fail(what, active_isa(), "parallel_for broke its contract");
  }
}

// --bench: single-thread times of a dense and a convolution layer per ISA
// (under qemu-user these say nothing about real hardware).
void bench(const std::vector<Isa>& isas) {
  using Clock = std::chrono::steady_clock;
  Rng rng(7);
  const int in = 1024, out = 1024, rows = 16;
  const std::vector<int32_t> w = random_packed(rng, out, in, 0.5);
  const std::vector<int32_t> x = random_packed(rng, rows, in, 0.5);
  BConv2dShape s;
  s.batch = 1;
  s.in_height = s.in_width = 28;
  s.channels_in = s.channels_out = 128;
  s.filter_height = s.filter_width = 3;
  s.padding = Padding::kSame;
  compute_conv_geometry(&s);
  const std::vector<int32_t> f = random_packed(rng, int64_t{128} * 9, 128, 0.5);
  const std::vector<int32_t> img = random_packed(rng, 28 * 28, 128, 0.5);
  std::vector<float> ones(1024, 1.0f), zeros(1024, 0.0f);
  OutputTransform t;
  t.multiplier = ones.data();
  t.bias = zeros.data();
  std::vector<float> y(static_cast<size_t>(28 * 28 * 128));
  BDense dense;
  dense.prepare(w.data(), out, in);
  BConv2d conv;
  conv.prepare(s, f.data());
  for (Isa isa : isas) {
    set_isa_override(isa);
    double best[2] = {1e30, 1e30};
    for (int rep = 0; rep < 5; ++rep) {
      auto t0 = Clock::now();
      dense.run(x.data(), rows, t, y.data(), 1);
      auto t1 = Clock::now();
      conv.run(img.data(), t, y.data(), 1);
      auto t2 = Clock::now();
      best[0] = std::min(best[0], std::chrono::duration<double, std::milli>(t1 - t0).count());
      best[1] = std::min(best[1], std::chrono::duration<double, std::milli>(t2 - t1).count());
    }
    std::printf("bench [%s]: bdense 16x1024x1024 %.3f ms, bconv2d 28x28x128->128 3x3 %.3f ms\n",
                isa_name(isa), best[0], best[1]);
  }
  clear_isa_override();
}

// The documented dispatch: the ISAs the CPU supports, the override.
bool check_dispatch(Harness& h) {
  bool ok = true;
  for (int i = 0; i <= 3; ++i) {
    const Isa isa = static_cast<Isa>(i);
    const bool supported = isa_supported(isa);
    if (set_isa_override(isa) != supported) {
      std::fprintf(stderr, "set_isa_override(%s) disagrees with isa_supported\n", isa_name(isa));
      ok = false;
    }
    if (supported) h.isas.push_back(isa);
    clear_isa_override();
  }
#if defined(__aarch64__)
  const bool neon_expected = true;
#else
  const bool neon_expected = false;
#endif
  if (isa_supported(Isa::kNeon) != neon_expected || !isa_supported(Isa::kScalar)) {
    std::fprintf(stderr, "isa_supported: neon %d, scalar %d\n", isa_supported(Isa::kNeon),
                 isa_supported(Isa::kScalar));
    ok = false;
  }
  const char* env = std::getenv("TFQNN_ISA");
  if (env == nullptr || *env == '\0') {
    // Without TFQNN_ISA the best supported ISA (the last of h.isas).
    if (active_isa() != h.isas.back()) {
      std::fprintf(stderr, "default ISA %s, expected %s\n", isa_name(active_isa()),
                   isa_name(h.isas.back()));
      ok = false;
    }
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t seed = 1;
  double scale = 1.0;
  bool run_bench = false;
  for (int i = 1; i < argc; i += 2) {
    if (std::strcmp(argv[i], "--bench") == 0) {
      run_bench = true;
      --i;
    } else if (i + 1 >= argc) {
      std::fprintf(stderr, "usage: %s [--seed N] [--scale F] [--bench]\n", argv[0]);
      return 2;
    } else if (std::strcmp(argv[i], "--seed") == 0) {
      seed = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (std::strcmp(argv[i], "--scale") == 0) {
      scale = std::strtod(argv[i + 1], nullptr);
    } else {
      std::fprintf(stderr, "usage: %s [--seed N] [--scale F] [--bench]\n", argv[0]);
      return 2;
    }
  }
  Harness h;
  const bool dispatch_ok = check_dispatch(h);
  if (run_bench) {
    bench(h.isas);
    return 0;
  }
  set_min_thread_time_ns(0);  // num_threads > 1 starts threads even for tiny ops
  Rng rng(seed);
  const auto count = [scale](int n) { return std::max(1, static_cast<int>(n * scale)); };
  for (int i = 0, n = count(400); i < n; ++i) dense_case(h, rng, i);
  for (int i = 0, n = count(400); i < n; ++i) conv_case(h, rng, i);
  for (int i = 0, n = count(150); i < n; ++i) pool_case(h, rng, i);
  for (int i = 0, n = count(150); i < n; ++i) pack_case(h, rng, i);
  for (int i = 0, n = count(150); i < n; ++i) finish_case(h, rng, i);
  for (int i = 0, n = count(60); i < n; ++i) threads_case(h, rng, i);
  int8_add_cases(h);

  std::string names;
  for (Isa isa : h.isas) names += std::string(names.empty() ? "" : " ") + isa_name(isa);
  const bool ok = dispatch_ok && h.failures == 0;
  std::printf("core_test: %lld cases, %lld checks, isas: %s, default %s, %s\n",
              static_cast<long long>(h.cases), static_cast<long long>(h.checks), names.c_str(),
              isa_name(active_isa()), ok ? "OK" : "FAILED");
  if (h.failures > 0) std::printf("%lld mismatches\n", static_cast<long long>(h.failures));
  return ok ? 0 : 1;
}
