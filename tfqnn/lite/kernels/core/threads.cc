// Threads: num_threads > 1 cuts an op's rows (or column panels) into
// contiguous chunks. A pool of worker threads, started once and kept for the
// process, takes the chunks with the calling thread: an op of a few tens of
// microseconds is worth splitting (starting a std::thread per call costs
// ~20 us and a cold core, which kept every op of a QuickNet on one thread).
//
// Chunks are handed out one at a time (more chunks than threads where the
// caller asks for them), so a worker that starts late, because its core is
// busy, still takes what is left instead of making the caller wait. Each
// participating thread gets a slot in [0, num_threads) for its scratch.
//
// Idle workers spin on the job counter with the CPU's pause instruction
// (not sched_yield: under load a yielding thread gives its core away for a
// whole time slice, so a job never found it) for 30 us by default, longer
// than the gap between two binary ops of a partition (a bitpacking
// TfqnnQuantize in between, slower with two threads than with one: half its
// input sits in the other core's cache), then sleep on a condition variable
// and leave the core to the interpreter's own pool (XNNPACK's builtins
// between tfqnn's partitions). A shorter spin sends the worker to sleep
// between the convolutions of a partition, and each one waits for its
// wake-up ("Where QuickNet's second thread goes"); on a loaded machine a
// spinning thread uses up its share of the CPU and is preempted in the
// middle of a chunk, so shorter spins did better there ("Two threads under
// load"); set_thread_spin_ns changes it.
// wake_threads(), called as a delegate partition starts, wakes sleeping
// workers ahead of its first split op; rest_threads(), called as it ends,
// sends the spinning ones to sleep at once, so that they leave the cores to
// XNNPACK's threads for the interpreter's ops in between. One job at a time: a call that finds
// the pool busy (another interpreter's thread, or a nested call) runs its
// chunks itself. After fork() the child gets a fresh pool.
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core.h"
#include "internal.h"

namespace tfqnn {
namespace core {

namespace {
// Each thread's chunk must take at least this long (estimated from the work
// and the ISA) for useful_threads() to start it: waking a spinning worker
// costs well under a microsecond, a sleeping one tens. Tests lower it to 0.
std::atomic<double> g_min_ns_per_thread{5000.0};

// How long an idle worker spins (pausing) before it sleeps (ns; the
// benchmarks' hook set_thread_spin_ns changes it).
std::atomic<int64_t> g_spin_ns{30000};
// Pauses between two reads of the clock while spinning.
constexpr int kPausesPerClockRead = 64;
constexpr int kMaxWorkers = 255;

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

// Rough single-thread picoseconds per value bitpacked (same machine; a
// streaming pass, so it takes half the per-thread minimum: a worker inside
// a partition is spinning, ready, after the binary op before).
double picoseconds_per_packed_value(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return 30;
    case Isa::kAvx2: return 50;
    case Isa::kNeon: return 80;  // a guess: not measured on ARM hardware
    case Isa::kScalar: return 700;
  }
  return 700;
}

inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// One parallel_for call: chunks handed out by `next`, counted in `done`;
// each thread that joins takes the next slot.
struct Job {
  const std::function<void(int64_t, int64_t, int)>* fn;
  int64_t n, chunks;
  int slots;  // threads allowed to join (the caller and the workers)
  std::atomic<int64_t> next{0}, done{0};
  std::atomic<int> joined{0};
  int64_t begin(int64_t i) const { return n * i / chunks; }
  // Runs chunks until none is left.
  void work() {
    if (next.load(std::memory_order_relaxed) >= chunks) return;  // nothing left to join
    const int slot = joined.fetch_add(1, std::memory_order_relaxed);
    if (slot >= slots) return;
    for (;;) {
      const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= chunks) return;
      (*fn)(begin(i), begin(i + 1), slot);
      done.fetch_add(1, std::memory_order_acq_rel);
    }
  }
};

class Pool {
 public:
  // Runs `job` on the caller and up to `helpers` workers; false (nothing
  // run) when the pool is busy.
  bool run(Job* job, int helpers) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    while (workers_ < std::min(helpers, kMaxWorkers)) {
      try {
        std::thread(&Pool::worker, this).detach();
        ++workers_;
      } catch (...) {  // std::system_error: no more threads, fewer helpers
        break;
      }
    }
    bool asleep;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = job;
      generation_.fetch_add(1, std::memory_order_release);
      asleep = sleeping_ > 0;
    }
    if (asleep) wake_.notify_all();
    job->work();
    while (job->done.load(std::memory_order_acquire) < job->chunks) cpu_relax();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = nullptr;  // a worker that wakes up late finds no job
    }
    while (active_.load(std::memory_order_acquire) != 0) cpu_relax();
    return true;
  }

  // Sends spinning workers to sleep (those in a job finish it first).
  void rest() { rests_.fetch_add(1, std::memory_order_release); }

  // Wakes the sleeping workers (they spin again, then sleep).
  void wake() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (sleeping_ == 0) return;
      ++pokes_;
    }
    wake_.notify_all();
  }

 private:
  void worker() {
    uint64_t seen = generation_.load(std::memory_order_acquire);
    // rest() calls before the last job (or wake-up) was taken.
    uint64_t rested = rests_.load(std::memory_order_acquire);
    for (;;) {
      const auto until = std::chrono::steady_clock::now() +
                         std::chrono::nanoseconds(g_spin_ns.load(std::memory_order_relaxed));
      bool spinning = true;
      while (spinning && generation_.load(std::memory_order_acquire) == seen) {
        for (int i = 0; i < kPausesPerClockRead; ++i) cpu_relax();
        spinning = std::chrono::steady_clock::now() < until &&
                   rests_.load(std::memory_order_relaxed) == rested;
      }
      Job* job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        if (generation_.load(std::memory_order_relaxed) == seen) {
          const uint64_t pokes = pokes_;
          ++sleeping_;
          wake_.wait(lock, [&] {
            return generation_.load(std::memory_order_relaxed) != seen || pokes_ != pokes;
          });
          --sleeping_;
        }
        seen = generation_.load(std::memory_order_relaxed);
        rested = rests_.load(std::memory_order_relaxed);
        job = job_;
        if (job != nullptr) active_.fetch_add(1, std::memory_order_relaxed);
      }
      if (job == nullptr) continue;
      job->work();
      active_.fetch_sub(1, std::memory_order_release);
    }
  }

  std::mutex busy_;   // held by the caller of the job in flight
  std::mutex mutex_;  // guards job_ and the generation's changes
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> active_{0};      // workers inside a job
  std::atomic<uint64_t> rests_{0};  // rest() calls
  Job* job_ = nullptr;
  int sleeping_ = 0;    // workers waiting on wake_, under mutex_
  uint64_t pokes_ = 0;  // wake() calls that found a sleeper, under mutex_
  int workers_ = 0;     // under busy_
};

// The process's pool, made on first use and never destroyed (workers may
// still spin at exit). A forked child, which has none of the threads,
// starts a new one.
std::atomic<Pool*> g_pool{nullptr};
std::once_flag g_atfork;

Pool* pool() {
  std::call_once(g_atfork, [] {
    pthread_atfork(nullptr, nullptr, [] { g_pool.store(nullptr, std::memory_order_relaxed); });
  });
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p == nullptr) {
    Pool* fresh = new Pool();
    if (g_pool.compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) {
      p = fresh;
    } else {
      delete fresh;  // another thread made it first
    }
  }
  return p;
}
}  // namespace

int64_t set_thread_spin_ns(int64_t ns) {
  return g_spin_ns.exchange(std::min<int64_t>(std::max<int64_t>(ns, 0), 1000000000));
}

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

void wake_threads(int num_threads) {
  if (num_threads < 2) return;
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p != nullptr) p->wake();  // no pool yet: the first job starts it
}

void rest_threads() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p != nullptr) p->rest();
}

void parallel_bitpack(int64_t rows, int64_t values, int num_threads,
                      const std::function<void(int64_t, int64_t)>& pack) {
  int64_t n = std::min<int64_t>(std::max(num_threads, 1), rows);
  const double min_ns = g_min_ns_per_thread.load(std::memory_order_relaxed) / 2;
  if (min_ns > 0) {
    const double ns =
        static_cast<double>(rows) * values * picoseconds_per_packed_value(active_isa()) * 1e-3;
    n = std::min<int64_t>(n, static_cast<int64_t>(std::min(ns / min_ns, 1e9)));
  }
  if (n <= 1) {
    if (rows > 0) pack(0, rows);
    return;
  }
  // Two chunks per thread: a worker that comes late leaves its share.
  parallel_for(rows, static_cast<int>(n), 2,
               [&](int64_t begin, int64_t end, int) { pack(begin, end); });
}

void parallel_for(int64_t n, int num_threads,
                  const std::function<void(int64_t, int64_t, int)>& fn) {
  parallel_for(n, num_threads, 1, fn);
}

void parallel_for(int64_t n, int num_threads, int chunks_per_thread,
                  const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(num_threads, n)));
  if (threads == 1) {
    fn(0, n, 0);
    return;
  }
  Job job;
  job.fn = &fn;
  job.n = n;
  job.chunks = std::min<int64_t>(n, int64_t{threads} * std::max(chunks_per_thread, 1));
  job.slots = threads;
  if (!pool()->run(&job, threads - 1)) job.work();  // busy: all here
}

}  // namespace core
}  // namespace tfqnn
