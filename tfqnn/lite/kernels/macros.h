// The build macros of the kernel library, each defined once, here.
#ifndef TFQNN_LITE_KERNELS_MACROS_H_
#define TFQNN_LITE_KERNELS_MACROS_H_

// An extern "C" entry point of libtfqnn_ops.so. The library is compiled with
// -fvisibility=hidden: these are its only exported symbols (the core's test
// hooks in core/c_api.cc, the op registerer and the delegate in
// tflite/registration.cc).
#define TFQNN_EXPORT extern "C" __attribute__((visibility("default")))

// x86-64 kernels for an instruction set beyond the compiler's baseline are
// compiled for it with a function attribute, so that one build runs on every
// x86-64 CPU; core/dispatch.cc calls them only where the CPU has the set.
#if defined(__x86_64__)
#define TFQNN_AVX2 __attribute__((target("avx2,popcnt")))
#define TFQNN_AVX512 __attribute__((target("avx512f,avx512vpopcntdq,avx512vl,avx512bw,avx512dq")))
#endif

// NEON kernels: on aarch64, where NEON is part of the base ISA (ARMv8-A).
#if defined(__aarch64__) && defined(__ARM_NEON)
#define TFQNN_NEON 1
#else
#define TFQNN_NEON 0
#endif

#endif  // TFQNN_LITE_KERNELS_MACROS_H_
