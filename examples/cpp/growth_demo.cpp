// growth_demo: concurrent inserts into an empty pardict::concurrent_map, compared with
// std::unordered_map behind one std::mutex.
//
// Usage: pardict_growth_demo [N] [T1,T2,...]    (defaults: N = 10000000, threads 1,2,8)
//
// Key i is mix64(i), a bijection of the counter, so all N keys are distinct; its value is i.
// Each thread count starts from an empty map with no reserve(), so every run includes all the
// growth. Threads are created first and released together by a std::latch; the clock covers
// only the inserts. Afterwards the map is checked: size() == N and find(mix64(i)) == i for all i.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <mutex>
#include <optional>
#include <pardict/concurrent_map.hpp>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

// splitmix64's finalizer: xor-shifts and multiplications by odd constants are each invertible,
// so the whole function is a bijection on 64-bit integers.
constexpr std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

std::int64_t key_of(std::int64_t i) {
  return static_cast<std::int64_t>(mix64(static_cast<std::uint64_t>(i)));
}

// Runs body(begin, end) on `threads` threads over [0, n), all released at once by a latch.
// Returns the seconds from release until the last thread finished.
template <class Body>
double run_parallel(int threads, std::int64_t n, Body body) {
  std::latch start(threads + 1);
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (int t = 0; t < threads; ++t) {
    const std::int64_t begin = n * t / threads;
    const std::int64_t end = n * (t + 1) / threads;
    pool.emplace_back([&start, &body, begin, end] {
      start.arrive_and_wait();
      body(begin, end);
    });
  }
  const auto t0 = std::chrono::steady_clock::now();
  start.count_down();
  for (auto& th : pool) th.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Result {
  double seconds = 0;
  bool ok = false;
};

Result run_pardict(int threads, std::int64_t n) {
  pardict::concurrent_map<std::int64_t, std::int64_t> map;  // empty: no reserve
  std::atomic<std::int64_t> rejected{0};
  Result r;
  r.seconds = run_parallel(threads, n, [&](std::int64_t begin, std::int64_t end) {
    std::int64_t local = 0;
    for (std::int64_t i = begin; i < end; ++i) local += !map.insert({key_of(i), i});
    rejected += local;
  });
  std::atomic<std::int64_t> wrong{0};
  run_parallel(threads, n, [&](std::int64_t begin, std::int64_t end) {
    std::int64_t local = 0;
    for (std::int64_t i = begin; i < end; ++i) {
      const std::optional<std::int64_t> v = map.find(key_of(i));
      local += !(v && *v == i);
    }
    wrong += local;
  });
  r.ok = rejected == 0 && wrong == 0 && map.size() == static_cast<std::size_t>(n);
  if (!r.ok) {
    std::fprintf(
        stderr,
        "pardict, %d threads: size %zu (want %lld), %lld inserts rejected, %lld keys wrong\n",
        threads, map.size(), static_cast<long long>(n), static_cast<long long>(rejected.load()),
        static_cast<long long>(wrong.load()));
  }
  return r;
}

Result run_locked_std(int threads, std::int64_t n) {
  std::unordered_map<std::int64_t, std::int64_t> map;  // empty: no reserve
  std::mutex mutex;
  std::atomic<std::int64_t> rejected{0};
  Result r;
  r.seconds = run_parallel(threads, n, [&](std::int64_t begin, std::int64_t end) {
    std::int64_t local = 0;
    for (std::int64_t i = begin; i < end; ++i) {
      std::lock_guard<std::mutex> lock(mutex);
      local += !map.emplace(key_of(i), i).second;
    }
    rejected += local;
  });
  std::int64_t wrong = 0;  // no writers left: read without the lock, on this thread
  for (std::int64_t i = 0; i < n; ++i) {
    const auto it = map.find(key_of(i));
    wrong += !(it != map.end() && it->second == i);
  }
  r.ok = rejected == 0 && wrong == 0 && map.size() == static_cast<std::size_t>(n);
  if (!r.ok) {
    std::fprintf(stderr, "std::unordered_map, %d threads: size %zu (want %lld), %lld wrong\n",
                 threads, map.size(), static_cast<long long>(n),
                 static_cast<long long>(rejected + wrong));
  }
  return r;
}

std::vector<int> parse_threads(const char* arg) {
  std::vector<int> out;
  std::string s(arg);
  std::size_t pos = 0;
  while (pos <= s.size()) {
    const std::size_t comma = std::min(s.find(',', pos), s.size());
    const int t = std::atoi(s.substr(pos, comma - pos).c_str());
    if (t > 0) out.push_back(t);
    pos = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t n = argc > 1 ? std::atoll(argv[1]) : 10'000'000;
  const std::vector<int> thread_counts =
      argc > 2 ? parse_threads(argv[2]) : std::vector<int>{1, 2, 8};
  if (n <= 0 || thread_counts.empty()) {
    std::fprintf(stderr, "usage: %s [N > 0] [T1,T2,...]\n", argv[0]);
    return 2;
  }

  std::printf(
      "growth demo: %lld distinct int64 keys into an empty map (no reserve), %u hardware "
      "threads\n\n",
      static_cast<long long>(n), std::thread::hardware_concurrency());
  std::printf("%7s | %-27s | %-27s | %s\n", "", "pardict::concurrent_map", "unordered_map + mutex",
              "speedup");
  std::printf("%7s | %8s %8s %9s | %8s %8s %9s |\n", "threads", "seconds", "Mops/s", "check",
              "seconds", "Mops/s", "check");
  std::printf("--------+-----------------------------+-----------------------------+--------\n");

  bool all_ok = true;
  for (const int threads : thread_counts) {
    const Result p = run_pardict(threads, n);
    const Result s = run_locked_std(threads, n);
    all_ok = all_ok && p.ok && s.ok;
    const double mops_p = static_cast<double>(n) / p.seconds / 1e6;
    const double mops_s = static_cast<double>(n) / s.seconds / 1e6;
    std::printf("%7d | %8.3f %8.2f %9s | %8.3f %8.2f %9s | %6.2fx\n", threads, p.seconds, mops_p,
                p.ok ? "ok" : "FAILED", s.seconds, mops_s, s.ok ? "ok" : "FAILED", mops_p / mops_s);
    std::fflush(stdout);
  }
  std::printf("\ncheck = size() == N and every key found with its value. %s\n",
              all_ok ? "All checks passed." : "SOME CHECKS FAILED.");
  return all_ok ? 0 : 1;
}
