// tests/cpp/support/counting.hpp: shared test kit for the pardict C++ tests.
//
//   * workload scaling (PARDICT_TEST_SCALE, shrunk automatically under TSan/ASan),
//   * `counted`: a value type that counts live instances, constructions and destructions, and
//     detects double destruction or use of a destroyed object; `counted_leak_check` is a fixture
//     that verifies the live count returns to its baseline,
//   * `move_only`: a value type holding a std::unique_ptr<int>,
//   * `run_threads`: starts T threads from one std::latch and joins them (exceptions are rethrown),
//   * `run_with_timeout`: turns a deadlock into a loud failure instead of a hung test binary,
//   * `mix64`: a bijective 64-bit mixer (splitmix64 finaliser) for deterministic, distinct keys.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

// -------------------------------------------------------------------------------------------------
// Workload scaling. Test sizes are divided by PARDICT_TEST_SCALE; the default is 1 in plain builds
// and larger under sanitizers (TSan is 5-15x slower, ASan 2-5x; the defaults keep each suite within
// a few seconds to tens of seconds on 2 cores). The environment variable PARDICT_TEST_SCALE
// overrides it at run time.
// -------------------------------------------------------------------------------------------------
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PARDICT_TEST_UNDER_TSAN 1
#endif
#if __has_feature(address_sanitizer)
#define PARDICT_TEST_UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) && !defined(PARDICT_TEST_UNDER_TSAN)
#define PARDICT_TEST_UNDER_TSAN 1
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(PARDICT_TEST_UNDER_ASAN)
#define PARDICT_TEST_UNDER_ASAN 1
#endif

#ifndef PARDICT_TEST_SCALE
#if defined(PARDICT_TEST_UNDER_TSAN)
#define PARDICT_TEST_SCALE 4
#elif defined(PARDICT_TEST_UNDER_ASAN)
#define PARDICT_TEST_SCALE 2
#else
#define PARDICT_TEST_SCALE 1
#endif
#endif

namespace pardict_test {

// The divisor applied to workload sizes (>= 1).
inline std::size_t scale_divisor() {
  static const std::size_t divisor = [] {
    if (const char* env = std::getenv("PARDICT_TEST_SCALE")) {
      const long v = std::strtol(env, nullptr, 10);
      if (v >= 1) return static_cast<std::size_t>(v);
    }
    return static_cast<std::size_t>(PARDICT_TEST_SCALE);
  }();
  return divisor;
}

// `n` shrunk by the scale divisor, but never below `floor`.
inline std::size_t scaled(std::size_t n, std::size_t floor = 1) {
  const std::size_t s = n / scale_divisor();
  return s < floor ? floor : s;
}

// -------------------------------------------------------------------------------------------------
// Deterministic keys: the splitmix64 finaliser is a bijection on 64-bit integers, so mix64(i) for
// distinct i gives distinct, well-spread keys.
// -------------------------------------------------------------------------------------------------
constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// -------------------------------------------------------------------------------------------------
// counted: value type with global instance accounting.
// -------------------------------------------------------------------------------------------------
struct counted_stats {
  std::atomic<long long> live{0};
  std::atomic<long long> constructions{0};
  std::atomic<long long> destructions{0};
  std::atomic<long long> copies{0};
  std::atomic<long long> moves{0};
  // Destroying an object twice, or copying from/assigning to/comparing a destroyed or
  // never-constructed object.
  std::atomic<long long> errors{0};
};

inline counted_stats& counted_counters() {
  static counted_stats stats;
  return stats;
}

class counted {
 public:
  static constexpr std::uint64_t alive_magic = 0xC0FFEE0DDF00D123ull;
  static constexpr std::uint64_t dead_magic = 0xDEADDEADDEADDEADull;

  counted() noexcept : counted(0) {}
  explicit counted(std::int64_t v) noexcept : value_(v), magic_(alive_magic) { on_construct(); }
  counted(const counted& other) noexcept : value_(other.checked().value_), magic_(alive_magic) {
    on_construct();
    counted_counters().copies.fetch_add(1, std::memory_order_relaxed);
  }
  counted(counted&& other) noexcept : value_(other.checked().value_), magic_(alive_magic) {
    on_construct();
    counted_counters().moves.fetch_add(1, std::memory_order_relaxed);
  }
  counted& operator=(const counted& other) noexcept {
    checked();
    value_ = other.checked().value_;
    return *this;
  }
  counted& operator=(counted&& other) noexcept {
    checked();
    value_ = other.checked().value_;
    return *this;
  }
  ~counted() {
    auto& c = counted_counters();
    if (magic_ != alive_magic) {
      c.errors.fetch_add(1, std::memory_order_relaxed);  // double destruction, or never constructed
      return;
    }
    magic_ = dead_magic;
    c.live.fetch_sub(1, std::memory_order_relaxed);
    c.destructions.fetch_add(1, std::memory_order_relaxed);
  }

  std::int64_t value() const noexcept { return checked().value_; }
  void set(std::int64_t v) noexcept {
    checked();
    value_ = v;
  }
  bool is_alive() const noexcept { return magic_ == alive_magic; }

  friend bool operator==(const counted& a, const counted& b) noexcept {
    return a.checked().value_ == b.checked().value_;
  }

 private:
  static void on_construct() noexcept {
    auto& c = counted_counters();
    c.live.fetch_add(1, std::memory_order_relaxed);
    c.constructions.fetch_add(1, std::memory_order_relaxed);
  }
  const counted& checked() const noexcept {
    if (magic_ != alive_magic) counted_counters().errors.fetch_add(1, std::memory_order_relaxed);
    return *this;
  }

  std::int64_t value_;
  std::uint64_t magic_;
};

// Fixture base: records the live/error counts at SetUp and requires them unchanged at TearDown,
// i.e. every `counted` created by the test body (including inside maps that the body destroyed) has
// been destroyed exactly once.
class counted_leak_check : public ::testing::Test {
 protected:
  void SetUp() override {
    live_baseline_ = counted_counters().live.load();
    errors_baseline_ = counted_counters().errors.load();
  }
  void TearDown() override {
    EXPECT_EQ(counted_counters().live.load(), live_baseline_)
        << "counted instances leaked (or destroyed too often)";
    EXPECT_EQ(counted_counters().errors.load(), errors_baseline_)
        << "a counted instance was destroyed twice or used after destruction";
  }

 private:
  long long live_baseline_ = 0;
  long long errors_baseline_ = 0;
};

// -------------------------------------------------------------------------------------------------
// move_only: a value type that can be moved but not copied.
// -------------------------------------------------------------------------------------------------
class move_only {
 public:
  move_only() = default;
  explicit move_only(int v) : p_(std::make_unique<int>(v)) {}
  move_only(move_only&&) noexcept = default;
  move_only& operator=(move_only&&) noexcept = default;
  move_only(const move_only&) = delete;
  move_only& operator=(const move_only&) = delete;

  // -1 for a default-constructed or moved-from object.
  int get() const noexcept { return p_ ? *p_ : -1; }
  friend bool operator==(const move_only& a, const move_only& b) noexcept {
    return a.get() == b.get();
  }

 private:
  std::unique_ptr<int> p_;
};

// -------------------------------------------------------------------------------------------------
// Threads.
// -------------------------------------------------------------------------------------------------

// Releases a fixed number of threads together: each calls arrive_and_wait(), and all return once
// the last one has arrived. std::latch would do, except where libstdc++ has no futex to build it
// on (mingw-w64): its GCC 12 fallback (a shared pool of condition variables) was seen under wine
// to leave one thread asleep in arrive_and_wait() after the others had passed and exited, which
// hung the suite in a different test each run. A mutex and a condition variable have no such
// pool; the latch is only ever waited on once per test, so their cost does not matter.
class start_latch {
 public:
  explicit start_latch(std::size_t count) : left_(count) {}
  void arrive_and_wait() {
    std::unique_lock<std::mutex> lk(m_);
    if (--left_ == 0) {
      lk.unlock();
      cv_.notify_all();
      return;
    }
    cv_.wait(lk, [&] { return left_ == 0; });
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::size_t left_;
};

// Runs f(thread_index) on `threads` threads that are all released together by a start_latch,
// joins them, and rethrows the first exception any of them threw.
template <class F>
void run_threads(std::size_t threads, F&& f) {
  start_latch start(threads);
  std::vector<std::exception_ptr> errors(threads);
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (std::size_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      start.arrive_and_wait();
      try {
        f(t);
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  }
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// Runs f() on a helper thread. If it has not finished after `limit`, the map is presumed
// deadlocked: the process prints `what` and aborts (a hung test would otherwise only be killed by
// the CI time limit, with no diagnosis).
template <class F>
void run_with_timeout(const char* what, F&& f,
                      std::chrono::seconds limit = std::chrono::seconds(60)) {
  std::packaged_task<void()> task(std::forward<F>(f));
  auto done = task.get_future();
  std::thread worker(std::move(task));
  if (done.wait_for(limit) != std::future_status::ready) {
    std::fprintf(
        stderr,
        "\nFATAL: '%s' did not finish within %llds: the map looks deadlocked (still locked?)\n",
        what, static_cast<long long>(limit.count()));
    std::fflush(stderr);
    std::abort();
  }
  worker.join();
  done.get();  // rethrows
}

}  // namespace pardict_test
