// Threads: num_threads > 1 cuts the rows (or column panels) of an op into
// contiguous chunks, one std::thread each; the calling thread runs the
// first chunk. Threads are started per call, so small problems stay on one.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "core.h"
#include "internal.h"

namespace tfqnn {
namespace core {

namespace {
// A thread is started (and joined) per call, which costs ~20 us on a
// typical Linux machine, plus cold caches on its core: each thread's chunk
// must take at least this long (estimated from the work and the ISA).
// Tests lower it to 0.
std::atomic<double> g_min_ns_per_thread{100000.0};

// Rough single-thread picoseconds per word pair (32 bits XOR-counted),
// measured on an AMD EPYC (Zen 5) for 3x3 convolutions.
double picoseconds_per_pair(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return 13;
    case Isa::kAvx2: return 45;
    case Isa::kNeon: return 65;  // a guess: not measured on ARM hardware
    case Isa::kScalar: return 200;
  }
  return 200;
}
}  // namespace

double set_min_thread_time_ns(double ns) { return g_min_ns_per_thread.exchange(ns < 0 ? 0 : ns); }

int useful_threads(int num_threads, double work, int64_t max_chunks) {
  int64_t n = num_threads < 1 ? 1 : num_threads;
  const double min_ns = g_min_ns_per_thread.load(std::memory_order_relaxed);
  if (min_ns > 0) {
    const double ns = work * picoseconds_per_pair(active_isa()) * 1e-3;
    n = std::min<int64_t>(n, static_cast<int64_t>(std::min(ns / min_ns, 1e9)));
  }
  n = std::min<int64_t>(n, max_chunks);
  return static_cast<int>(std::max<int64_t>(n, 1));
}

void parallel_for(int64_t n, int num_threads,
                  const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(num_threads, n));
  if (chunks == 1) {
    fn(0, n, 0);
    return;
  }
  auto begin = [n, chunks](int64_t i) { return n * i / chunks; };
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(chunks - 1));
  int64_t started = 1;
  for (int64_t i = 1; i < chunks; ++i) {
    try {
      threads.emplace_back(fn, begin(i), begin(i + 1), static_cast<int>(i));
      ++started;
    } catch (...) {  // std::system_error, std::bad_alloc
      break;         // no more threads: the caller runs the rest
    }
  }
  fn(begin(0), begin(1), 0);
  for (int64_t i = started; i < chunks; ++i) {
    fn(begin(i), begin(i + 1), static_cast<int>(i));
  }
  for (auto& t : threads) t.join();
}

}  // namespace core
}  // namespace tfqnn
