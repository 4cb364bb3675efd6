// CPU dispatch: which instruction set the kernels use in this process.
//
// An ISA is a row of kernels (internal.h: Kernels). Adding one: a file per op,
// <op>_<isa>.cc, defines its Kernels entries behind a preprocessor guard (the
// x86 ones behind __x86_64__, NEON behind TFQNN_NEON, i.e. aarch64),
// cpu_has() answers for it, and active_kernels() returns its table. The
// core's entry points that are one kernel of the table (bitpacking) are here
// too.
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core.h"
#include "internal.h"

namespace tfqnn {
namespace core {
namespace {

bool cpu_has(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return true;
#if defined(__x86_64__)
    case Isa::kAvx2:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
    case Isa::kAvx512:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq");
#endif
#if TFQNN_NEON
    case Isa::kNeon: return true;  // NEON is mandatory on ARMv8-A
#endif
    default: return false;
  }
}

// The best supported ISA at or below `wanted` (the order scalar < avx2 <
// avx512; neon's only fallback is scalar).
Isa best_at_or_below(Isa wanted) {
  if (wanted == Isa::kNeon) return cpu_has(Isa::kNeon) ? Isa::kNeon : Isa::kScalar;
  for (int i = static_cast<int>(wanted); i > 0; --i) {
    if (cpu_has(static_cast<Isa>(i))) return static_cast<Isa>(i);
  }
  return Isa::kScalar;
}

Isa startup_isa() {
  static const Isa isa = [] {
    Isa best = cpu_has(Isa::kNeon) ? Isa::kNeon : best_at_or_below(Isa::kAvx512);
    const char* env = std::getenv("TFQNN_ISA");
    if (env == nullptr || *env == '\0') return best;
    for (int i = 0; i <= 3; ++i) {
      if (std::strcmp(env, isa_name(static_cast<Isa>(i))) == 0) {
        return best_at_or_below(static_cast<Isa>(i));
      }
    }
    return best;  // an unknown name: ignored
  }();
  return isa;
}

std::atomic<int> g_override{-1};

const Kernels kScalarKernels = {gemm_panel_scalar,   output_transform_scalar, bitpack_float_scalar,
                                bitpack_int8_scalar, unpack_float_scalar,     accumulate_scalar,
                                bias_clamp_scalar,   quantize_int8_scalar};
#if defined(__x86_64__)
const Kernels kAvx2Kernels = {gemm_panel_avx2,   output_transform_avx2, bitpack_float_avx2,
                              bitpack_int8_avx2, unpack_float_avx2,     accumulate_avx2,
                              bias_clamp_avx2,   quantize_int8_avx2};
const Kernels kAvx512Kernels = {gemm_panel_avx512,   output_transform_avx512, bitpack_float_avx512,
                                bitpack_int8_avx512, unpack_float_avx512,     accumulate_avx512,
                                bias_clamp_avx512,   quantize_int8_avx512};
#endif
#if TFQNN_NEON
const Kernels kNeonKernels = {gemm_panel_neon,   output_transform_neon, bitpack_float_neon,
                              bitpack_int8_neon, unpack_float_neon,     accumulate_neon,
                              bias_clamp_neon,   quantize_int8_neon};
#endif

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kNeon: return "neon";
  }
  return "unknown";
}

bool isa_supported(Isa isa) { return cpu_has(isa); }

Isa active_isa() {
  const int o = g_override.load(std::memory_order_relaxed);
  return o >= 0 ? static_cast<Isa>(o) : startup_isa();
}

bool set_isa_override(Isa isa) {
  const int i = static_cast<int>(isa);
  if (i < 0 || i > 3 || !cpu_has(isa)) return false;
  g_override.store(i, std::memory_order_relaxed);
  return true;
}

void clear_isa_override() { g_override.store(-1, std::memory_order_relaxed); }

const Kernels& active_kernels() {
  switch (active_isa()) {
#if defined(__x86_64__)
    case Isa::kAvx512: return kAvx512Kernels;
    case Isa::kAvx2: return kAvx2Kernels;
#endif
#if TFQNN_NEON
    case Isa::kNeon: return kNeonKernels;
#endif
    default: return kScalarKernels;
  }
}

// ---- entry points of one kernel ----------------------------------------------

void bitpack_float(const float* in, int64_t rows, int channels, int32_t* out) {
  active_kernels().bitpack_float(in, rows, channels, 0.0f, out);
}

void bitpack_int8(const int8_t* in, int64_t rows, int channels, int32_t zero_point, int32_t* out) {
  active_kernels().bitpack_int8(in, rows, channels, zero_point, out);
}

void unpack_float(const int32_t* in, int64_t rows, int channels, float* out) {
  active_kernels().unpack_float(in, rows, channels, out);
}

}  // namespace core
}  // namespace tfqnn
