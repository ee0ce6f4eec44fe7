// Worker threads for the bulk calls (pardict_*_many, pardict_group_indices): how many, and running
// them. Internal.
//
// A bulk call splits its rows into chunks and runs them on threads it starts itself, never on
// numba's threading layer: a call may come from inside a prange body or from several interpreter
// threads at once, which numba's workqueue layer forbids for its own kernels.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>
#if defined(__linux__)
#include <sched.h>
#endif

namespace pardict::capi {

// CPUs this process may run on (its affinity mask, so `taskset` and container CPU sets count).
inline std::int64_t usable_cpus() noexcept {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

// How many workers for n rows: `threads` (clamped to 1..256), but at least min_rows rows each
// (starting a thread costs ~20 us) and no more than the CPUs this process may run on: more
// workers than CPUs only time-slice one another, and every chunk is the same kind of work.
inline std::size_t worker_count(std::int64_t n, std::int32_t threads,
                                std::int64_t min_rows) noexcept {
  std::int64_t t = std::clamp<std::int64_t>(threads, 1, 256);
  t = std::min<std::int64_t>(t, std::max<std::int64_t>(1, n / min_rows));
  if (t > 1) t = std::min<std::int64_t>(t, usable_cpus());
  return static_cast<std::size_t>(t);
}

// Runs work(i) for every i < t, work(0) on the calling thread and the others on threads started
// here; the calling thread also runs the work of any thread that cannot be started. work must not
// throw (callers record failures themselves).
template <class Work>
void on_workers(std::size_t t, Work&& work) noexcept {
  std::vector<std::thread> others;
  std::size_t started = 1;
  try {
    others.reserve(t);
    for (; started < t; ++started) others.emplace_back([&work, started] { work(started); });
  } catch (...) {  // no memory or no thread to spare
  }
  for (std::size_t i = started; i < t; ++i) work(i);
  work(0);
  for (auto& w : others) w.join();
}

}  // namespace pardict::capi
