// pardict_bench: one benchmark configuration per process.
//
//   pardict_bench <map> <workload> <threads> [N] [reps]
//   pardict_bench --list
//
// Prints one JSON line per repetition to stdout and exits non-zero if any check fails
// (exit 1 = wrong result, 2 = usage error, 3 = map/workload combination not applicable or map not
// built).
//
// Maps:      pardict pardict_bulk boost boost_bulk tbb_hm tbb_um cuckoo absl_sharded std_mutex
// plain plain_touched raw_read Workloads: W1 W2 W3 W4 W5 W6 W7i W7l W8r W8s   (see bench/README.md)
//
// Environment: PARDICT_BENCH_BLOCK = keys per bulk call for pardict_bulk (default 512).
//
// Method (kept identical for every map):
// - keys are key(i) = fmix64(i + golden), a bijection of a counter, so every map sees the same
// random keys;
//   thread t handles indices i == t (mod T), also for random draws (i = r*T + t with r uniform);
// - random draws come from a per-thread splitmix64 stream with Lemire reduction, inside the timed
// loop;
// - threads are pinned to allowed CPU number (t mod ncpu), wait at a spin-then-yield start flag,
// and the time
//   runs from the flag's release to the last thread's finish (steady_clock);
// - construction, prefill and all checks are outside the timed phase;
// - peak memory = (ru_maxrss right after the timed phase - ru_maxrss before the map existed) /
// entries.

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#if !defined(PARDICT_BENCH_NO_PARDICT)
#if __has_include(<pardict/concurrent_map.hpp>)
#include <pardict/concurrent_map.hpp>
#define PARDICT_BENCH_HAVE_PARDICT 1
#endif
#endif
#if defined(PARDICT_BENCH_HAVE_TBB)
#include <oneapi/tbb/concurrent_hash_map.h>
#include <oneapi/tbb/concurrent_unordered_map.h>
#include <oneapi/tbb/version.h>
#endif
#if defined(PARDICT_BENCH_HAVE_CUCKOO)
#include <libcuckoo/cuckoohash_map.hh>
#endif
#if defined(PARDICT_BENCH_HAVE_ABSL)
#include <absl/container/flat_hash_map.h>
#endif
#if defined(PARDICT_BENCH_HAVE_BOOST)
#include <boost/unordered/concurrent_flat_map.hpp>
#include <boost/version.hpp>
#endif

namespace {

using u64 = std::uint64_t;
using i64 = std::int64_t;
using F4 = std::array<float, 4>;

// ------------------------------------------------------------------------------------------------
// Key stream: a bijective 64-bit finaliser of a counter, and its inverse (used by the checks).

constexpr u64 kGolden = 0x9E3779B97F4A7C15ull;
constexpr u64 kM1 = 0xBF58476D1CE4E5B9ull;
constexpr u64 kM2 = 0x94D049BB133111EBull;

constexpr u64 fmix(u64 z) {
  z = (z ^ (z >> 30)) * kM1;
  z = (z ^ (z >> 27)) * kM2;
  return z ^ (z >> 31);
}
constexpr u64 mul_inverse(
    u64 a) {  // a odd; Newton iteration doubles the correct low bits each step
  u64 x = a;
  for (int k = 0; k < 6; ++k) x *= 2 - a * x;
  return x;
}
constexpr u64 un_xorshift(u64 y, int s) {  // inverse of x ^ (x >> s)
  u64 x = y;
  for (int k = 0; k < 64 / s + 1; ++k) x = y ^ (x >> s);
  return x;
}
constexpr u64 unfmix(u64 z) {
  z = un_xorshift(z, 31);
  z *= mul_inverse(kM2);
  z = un_xorshift(z, 27);
  z *= mul_inverse(kM1);
  return un_xorshift(z, 30);
}
constexpr u64 key_of(u64 i) { return fmix(i + kGolden); }
constexpr u64 index_of(u64 k) { return unfmix(k) - kGolden; }
constexpr u64 kAbsentBase = u64{1} << 63;  // W4 keys: key_of(kAbsentBase + i), never inserted
static_assert(index_of(key_of(0)) == 0 && index_of(key_of(123456789)) == 123456789);
static_assert(index_of(key_of(kAbsentBase + 5)) == kAbsentBase + 5);

// Per-thread PRNG: splitmix64 stream + Lemire's multiply-shift reduction.
struct Rng {
  u64 s;
  explicit Rng(u64 seed) : s(seed) {}
  u64 next() {
    s += kGolden;
    return fmix(s);
  }
};
inline u64 lemire(u64 x, u64 n) {
  return static_cast<u64>((static_cast<unsigned __int128>(x) * n) >> 64);
}

u64 thread_seed(u64 workload_salt, int t) {
  return fmix(workload_salt * 0x1000193ull + static_cast<u64>(t) + 1);
}

// number of indices i in [0, m) with i == t (mod T)
inline u64 share(u64 m, int T, int t) { return m > static_cast<u64>(t) ? (m - t - 1) / T + 1 : 0; }

template <class V>
V val_of(u64 i);
template <>
i64 val_of<i64>(u64 i) {
  return static_cast<i64>(i) + 1;
}
template <>
F4 val_of<F4>(u64 i) {
  float f = static_cast<float>(i);
  return F4{f, f + 0.25f, -f, 1.0f};
}

// ------------------------------------------------------------------------------------------------
// Errors, timing, threads, memory.

[[noreturn]] void die(int code, const char* fmt, const char* arg = "") {
  std::fprintf(stderr, "pardict_bench: ");
  std::fprintf(stderr, fmt, arg);
  std::fprintf(stderr, "\n");
  std::exit(code);
}

struct CheckFailure {
  std::string what;
};
void check(bool ok, const std::string& what) {
  if (!ok) throw CheckFailure{what};
}

std::vector<int> g_cpus;

void init_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) g_cpus.push_back(c);
  if (g_cpus.empty()) g_cpus.push_back(0);
}

void pin_to(int t) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(g_cpus[static_cast<size_t>(t) % g_cpus.size()], &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

using Clock = std::chrono::steady_clock;

// Runs body(t) on T pinned threads released together; returns seconds from release to the last
// finish.
template <class Body>
double run_threads(int T, Body&& body) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<Clock::time_point> finish(T);
  std::vector<std::exception_ptr> errors(T);
  std::vector<std::thread> threads;
  threads.reserve(T);
  for (int t = 0; t < T; ++t) {
    threads.emplace_back([&, t] {
      pin_to(t);
      ready.fetch_add(1, std::memory_order_acq_rel);
      for (unsigned spin = 0; !go.load(std::memory_order_acquire); ++spin) {
        if (spin < 256)
          cpu_relax();
        else
          std::this_thread::yield();
      }
      try {
        body(t);
      } catch (...) {
        errors[t] = std::current_exception();
      }
      finish[t] = Clock::now();
    });
  }
  while (ready.load(std::memory_order_acquire) < T) std::this_thread::yield();
  const auto start = Clock::now();
  go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  auto last = start;
  for (auto& f : finish) last = std::max(last, f);
  return std::chrono::duration<double>(last - start).count();
}

struct Usage {
  double user = 0, sys = 0;
  long maxrss_kb = 0, minflt = 0;
};
Usage usage_now() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  Usage u;
  u.user = r.ru_utime.tv_sec + r.ru_utime.tv_usec * 1e-6;
  u.sys = r.ru_stime.tv_sec + r.ru_stime.tv_usec * 1e-6;
  u.maxrss_kb = r.ru_maxrss;
  u.minflt = r.ru_minflt;
  return u;
}

// Peak-memory probe. The peak is the kernel's RSS high-water mark. Where /proc/self/clear_refs
// accepts "5" (Linux >= 4.0) the mark is reset right before the map is built, so buffers freed
// earlier (the W6 stream's CDF, a previous repetition's map) do not hide the map's own peak:
// baseline = VmRSS after the reset, peak = VmHWM. Otherwise: baseline and peak are getrusage
// ru_maxrss (peak so far) before the map and after the phase.
bool g_hwm_reset = false;
long status_kb(const char* field) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  const size_t len = std::strlen(field);
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, field, len) == 0 && line[len] == ':') {
      v = std::strtol(line + len + 1, nullptr, 10);
      break;
    }
  std::fclose(f);
  return v;
}
long mem_baseline_kb() {  // call right before the map exists
  FILE* f = std::fopen("/proc/self/clear_refs", "w");
  bool ok = false;
  if (f) {
    ok = std::fputs("5", f) >= 0;
    ok = (std::fclose(f) == 0) && ok;
  }
  const long rss = status_kb("VmRSS"), hwm = status_kb("VmHWM");
  g_hwm_reset = ok && rss >= 0 && hwm >= 0 && hwm <= rss + 1024;
  return g_hwm_reset ? rss : usage_now().maxrss_kb;
}
long mem_peak_kb() { return g_hwm_reset ? status_kb("VmHWM") : usage_now().maxrss_kb; }

// Fresh anonymous memory, never touched here (first touch is up to the caller).
struct Mapping {
  void* p = nullptr;
  size_t bytes = 0;
  Mapping() = default;
  explicit Mapping(size_t b) : bytes(b) {
    p = mmap(nullptr, b, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die(1, "mmap of %s bytes failed", std::to_string(b).c_str());
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping(Mapping&& o) noexcept : p(std::exchange(o.p, nullptr)), bytes(o.bytes) {}
  ~Mapping() {
    if (p) munmap(p, bytes);
  }
};

u64 next_pow2(u64 x) { return x <= 1 ? 1 : u64{1} << (64 - __builtin_clzll(x - 1)); }

// ------------------------------------------------------------------------------------------------
// Configuration

enum class W { W1, W2, W3, W4, W5, W6, W7i, W7l, W8r, W8s };
struct WInfo {
  const char* name;
  W w;
};
constexpr WInfo kWorkloads[] = {{"W1", W::W1},   {"W2", W::W2},  {"W3", W::W3},   {"W4", W::W4},
                                {"W5", W::W5},   {"W6", W::W6},  {"W7i", W::W7i}, {"W7l", W::W7l},
                                {"W8r", W::W8r}, {"W8s", W::W8s}};

bool is_insert(W w) { return w == W::W1 || w == W::W2 || w == W::W7i; }
bool is_lookup(W w) { return w == W::W3 || w == W::W4 || w == W::W7l; }
// Re-insertion: N keys inserted into an empty map in another map's iteration order (W8r) or in
// that order shuffled (W8s).
bool is_reinsert(W w) { return w == W::W8r || w == W::W8s; }

constexpr u64 kZipfRanks = u64{1} << 20;

struct Config {
  std::string map;
  std::string wname;
  W w{};
  int T = 1;
  u64 n = 10'000'000;
  int reps = 1;
  size_t block = 512;
};

u64 op_count(const Config& c) {
  if (c.w == W::W6) return 2 * c.n;  // 20M increments at the default N = 10M
  return c.n;
}

struct Row {
  double seconds = 0;
  u64 ops = 0;
  u64 entries = 0;
  Usage before, after;
  long baseline_kb = 0;
  long peak_kb = 0;
};

void finish_row(Row& r) {
  r.after = usage_now();
  r.peak_kb = mem_peak_kb();
}

void print_row(const Config& c, int rep, const Row& r, const std::string& status) {
  const double mops = r.seconds > 0 ? r.ops / r.seconds / 1e6 : 0.0;
  const double peak_b = static_cast<double>(std::max(0L, r.peak_kb - r.baseline_kb)) * 1024.0;
  const double bpe = r.entries ? peak_b / static_cast<double>(r.entries) : 0.0;
  std::string esc;
  for (char ch : status) {
    if (ch == '"' || ch == '\\') esc += '\\';
    esc += ch;
  }
  std::printf("{\"map\":\"%s\",\"workload\":\"%s\",\"threads\":%d,\"n\":%" PRIu64
              ",\"rep\":%d,\"ops\":%" PRIu64 ",\"seconds\":%.6f,\"mops\":%.4f,\"entries\":%" PRIu64
              ",\"bytes_per_entry\":%.2f,\"peak_rss_mb\":%.1f,\"baseline_rss_mb\":%.1f,\"mem\":\"%"
              "s\",\"user_s\":%.3f,"
              "\"sys_s\":%.3f,\"minflt\":%ld,\"block\":%zu,\"check\":\"%s\"}\n",
              c.map.c_str(), c.wname.c_str(), c.T, c.n, rep, r.ops, r.seconds, mops, r.entries, bpe,
              r.peak_kb / 1024.0, r.baseline_kb / 1024.0, g_hwm_reset ? "vmhwm" : "maxrss",
              r.after.user - r.before.user, r.after.sys - r.before.sys,
              r.after.minflt - r.before.minflt, c.map == "pardict_bulk" ? c.block : size_t{0},
              esc.c_str());
  std::fflush(stdout);
}

// ------------------------------------------------------------------------------------------------
// W6 stream: 2N draws from Zipf(1.0) over 2^20 ranks by inverse-CDF sampling (fixed seed,
// counter-based uniforms so it can be generated in parallel), stored as 0-based rank indices. Key =
// key_of(rank).

struct ZipfStream {
  std::vector<std::uint32_t> idx;
  std::vector<i64> count;  // serial occurrence count per rank
  u64 distinct = 0;
};

ZipfStream make_zipf(u64 ops) {
  const u64 R = kZipfRanks;
  std::vector<double> cdf(R);
  double acc = 0;
  for (u64 r = 0; r < R; ++r) cdf[r] = (acc += 1.0 / static_cast<double>(r + 1));
  const double total = acc;
  constexpr u64 G = u64{1} << 16;  // guide table: first rank whose cdf exceeds c/G of the total
  std::vector<std::uint32_t> guide(G + 1);
  for (u64 c = 0; c <= G; ++c) {
    const double target = static_cast<double>(c) / G * total;
    guide[c] =
        static_cast<std::uint32_t>(std::upper_bound(cdf.begin(), cdf.end(), target) - cdf.begin());
    if (guide[c] >= R) guide[c] = R - 1;
  }
  ZipfStream z;
  z.idx.resize(ops);
  const int gen_threads = static_cast<int>(std::min<size_t>(g_cpus.size(), 8));
  run_threads(gen_threads, [&](int t) {
    for (u64 j = t; j < ops; j += gen_threads) {
      const double u =
          static_cast<double>(fmix(0x5EED2026ull * kGolden + j) >> 11) * 0x1p-53;  // [0,1)
      const double target = u * total;
      const u64 c = std::min<u64>(static_cast<u64>(u * G), G - 1);
      auto lo = cdf.begin() + guide[c];
      auto hi = cdf.begin() + std::min<u64>(guide[c + 1] + 1, R);
      auto it = std::upper_bound(lo, hi, target);
      const bool valid =
          it != cdf.end() && *it > target && (it == cdf.begin() || *(it - 1) <= target);
      if (!valid)
        it = std::upper_bound(cdf.begin(), cdf.end(), target);  // rounding at a guide boundary
      u64 r = static_cast<u64>(it - cdf.begin());
      if (r >= R) r = R - 1;
      z.idx[j] = static_cast<std::uint32_t>(r);
    }
  });
  z.count.assign(R, 0);
  for (auto r : z.idx) ++z.count[r];
  for (auto c : z.count) z.distinct += c != 0;
  return z;
}

// ------------------------------------------------------------------------------------------------
// Map adapters. Uniform interface (all but the constructor and the checks are called concurrently):
//   explicit A(u64 reserve_hint)    // 0 = default-constructed, no reserve
//   bool insert(u64 k, const V& v)  // true if newly inserted
//   bool find(u64 k, V& out)
//   void insert_or_assign(u64 k, const V& v)
//   void increment(u64 k)           // V = i64 only: insert 1 or add 1
//   size_t size()
//   template <class F> void for_each(F f)   // f(u64 key, V value), quiescent
// Bulk adapters additionally set `static constexpr bool bulk = true` and provide find_many,
// insert_many, add_many.

template <class V>
struct StdMutexMap {
  static constexpr bool bulk = false;
  std::unordered_map<u64, V> m;
  mutable std::mutex mu;
  explicit StdMutexMap(u64 reserve) {
    if (reserve) m.reserve(reserve);
  }
  bool insert(u64 k, const V& v) {
    std::lock_guard<std::mutex> g(mu);
    return m.try_emplace(k, v).second;
  }
  bool find(u64 k, V& out) const {
    std::lock_guard<std::mutex> g(mu);
    auto it = m.find(k);
    if (it == m.end()) return false;
    out = it->second;
    return true;
  }
  void insert_or_assign(u64 k, const V& v) {
    std::lock_guard<std::mutex> g(mu);
    m.insert_or_assign(k, v);
  }
  void increment(u64 k) {
    std::lock_guard<std::mutex> g(mu);
    ++m[k];
  }
  size_t size() const { return m.size(); }
  template <class F>
  void for_each(F f) const {
    for (const auto& kv : m) f(kv.first, kv.second);
  }
};

#if defined(PARDICT_BENCH_HAVE_ABSL)
template <class V>
struct AbslShardedMap {
  static constexpr bool bulk = false;
  static constexpr int kShardBits = 6;
  static constexpr size_t kShards = size_t{1} << kShardBits;
  struct alignas(64) Shard {
    mutable std::shared_mutex mu;
    absl::flat_hash_map<u64, V> m;
  };
  std::unique_ptr<Shard[]> shards{new Shard[kShards]};
  static size_t shard_of(u64 k) {
    return static_cast<size_t>((k * 0xD6E8FEB86659FD93ull) >> (64 - kShardBits));
  }
  explicit AbslShardedMap(u64 reserve) {
    if (reserve)
      for (size_t s = 0; s < kShards; ++s)
        shards[s].m.reserve(static_cast<size_t>(static_cast<double>(reserve) / kShards * 1.02) +
                            1024);
  }
  bool insert(u64 k, const V& v) {
    Shard& s = shards[shard_of(k)];
    std::unique_lock<std::shared_mutex> g(s.mu);
    return s.m.try_emplace(k, v).second;
  }
  bool find(u64 k, V& out) const {
    const Shard& s = shards[shard_of(k)];
    std::shared_lock<std::shared_mutex> g(s.mu);
    auto it = s.m.find(k);
    if (it == s.m.end()) return false;
    out = it->second;
    return true;
  }
  void insert_or_assign(u64 k, const V& v) {
    Shard& s = shards[shard_of(k)];
    std::unique_lock<std::shared_mutex> g(s.mu);
    s.m.insert_or_assign(k, v);
  }
  void increment(u64 k) {
    Shard& s = shards[shard_of(k)];
    std::unique_lock<std::shared_mutex> g(s.mu);
    ++s.m[k];
  }
  size_t size() const {
    size_t n = 0;
    for (size_t s = 0; s < kShards; ++s) n += shards[s].m.size();
    return n;
  }
  template <class F>
  void for_each(F f) const {
    for (size_t s = 0; s < kShards; ++s)
      for (const auto& kv : shards[s].m) f(kv.first, kv.second);
  }
};
#endif

#if defined(PARDICT_BENCH_HAVE_CUCKOO)
template <class V>
struct CuckooMap {
  static constexpr bool bulk = false;
  using M = libcuckoo::cuckoohash_map<u64, V>;
  std::unique_ptr<M> m;
  explicit CuckooMap(u64 reserve)
      : m(reserve ? std::make_unique<M>(reserve) : std::make_unique<M>()) {}
  bool insert(u64 k, const V& v) { return m->insert(k, v); }
  bool find(u64 k, V& out) const {
    return m->find_fn(k, [&](const V& x) { out = x; });
  }
  void insert_or_assign(u64 k, const V& v) { m->insert_or_assign(k, v); }
  void increment(u64 k) {
    m->upsert(
        k, [](V& x) { ++x; }, V(1));
  }
  size_t size() const { return m->size(); }
  template <class F>
  void for_each(F f) const {
    auto lt = m->lock_table();
    for (const auto& kv : lt) f(kv.first, kv.second);
  }
};
#endif

#if defined(PARDICT_BENCH_HAVE_TBB)
template <class V>
struct TbbHashMap {
  static constexpr bool bulk = false;
  using M = tbb::concurrent_hash_map<u64, V>;
  std::unique_ptr<M> m;
  explicit TbbHashMap(u64 reserve)
      : m(reserve ? std::make_unique<M>(reserve) : std::make_unique<M>()) {}
  bool insert(u64 k, const V& v) { return m->insert(typename M::value_type(k, v)); }
  bool find(u64 k, V& out) const {
    typename M::const_accessor a;
    if (!m->find(a, k)) return false;
    out = a->second;
    return true;
  }
  void insert_or_assign(u64 k, const V& v) {
    typename M::accessor a;
    m->insert(a, k);
    a->second = v;
  }
  void increment(u64 k) {
    typename M::accessor a;
    m->insert(a, k);  // value-initialised (0) when new
    ++a->second;
  }
  size_t size() const { return m->size(); }
  template <class F>
  void for_each(F f) const {
    for (const auto& kv : *m) f(kv.first, kv.second);
  }
};

// int64 values are std::atomic<int64_t> so that concurrent updates (W5 assign, W6 increment) are
// race-free.
template <class V>
struct TbbUnorderedMap {
  static constexpr bool bulk = false;
  static constexpr bool kAtomic = std::is_same_v<V, i64>;
  using MV = std::conditional_t<kAtomic, std::atomic<i64>, V>;
  using M = tbb::concurrent_unordered_map<u64, MV>;
  std::unique_ptr<M> m;
  explicit TbbUnorderedMap(u64 reserve)
      : m(reserve ? std::make_unique<M>(reserve) : std::make_unique<M>()) {}
  static V load(const MV& x) {
    if constexpr (kAtomic)
      return x.load(std::memory_order_relaxed);
    else
      return x;
  }
  bool insert(u64 k, const V& v) { return m->emplace(k, v).second; }
  bool find(u64 k, V& out) const {
    auto it = m->find(k);
    if (it == m->end()) return false;
    out = load(it->second);
    return true;
  }
  void insert_or_assign(u64 k, const V& v) {
    auto it = m->find(k);
    if (it == m->end()) {
      auto r = m->emplace(k, v);
      if (r.second) return;
      it = r.first;
    }
    if constexpr (kAtomic)
      it->second.store(v, std::memory_order_relaxed);
    else
      it->second = v;
  }
  void increment(u64 k) {
    if constexpr (kAtomic) {
      auto it = m->find(k);
      if (it == m->end()) it = m->emplace(k, 0).first;
      it->second.fetch_add(1, std::memory_order_relaxed);
    }
  }
  size_t size() const { return m->size(); }
  template <class F>
  void for_each(F f) const {
    for (const auto& kv : *m) f(kv.first, load(kv.second));
  }
};
#endif

#if defined(PARDICT_BENCH_HAVE_PARDICT)
template <class V, bool Bulk>
struct PardictMap {
  static constexpr bool bulk = Bulk;
  using M = pardict::concurrent_map<u64, V>;
  M m;
  explicit PardictMap(u64 reserve) {
    if (reserve) m.reserve(reserve);
  }
  bool insert(u64 k, const V& v) { return m.try_emplace(k, v); }
  bool find(u64 k, V& out) const {
    std::optional<V> o = m.find(k);
    if (!o) return false;
    out = *o;
    return true;
  }
  void insert_or_assign(u64 k, const V& v) { m.insert_or_assign(k, v); }
  void increment(u64 k) {
    m.try_emplace_or_visit(k, V(1), [](auto& kv) { ++kv.second; });
  }
  size_t size() const { return m.size(); }
  template <class F>
  void for_each(F f) const {
    m.cvisit_all([&](const auto& kv) { f(kv.first, kv.second); });
  }
  size_t find_many(std::span<const u64> ks, std::span<V> vs, std::span<bool> fs) const {
    return m.find_many(ks, vs, fs);
  }
  size_t insert_many(std::span<const u64> ks, std::span<const V> vs) {
    return m.insert_or_assign_many(ks, vs);
  }
  size_t add_many(std::span<const u64> ks, std::span<const V> vs) {
    return m.upsert_many(ks, vs, pardict::combine_op::add);
  }
};
template <class V>
using PardictSingle = PardictMap<V, false>;
template <class V>
using PardictBulk = PardictMap<V, true>;
#endif

#if defined(PARDICT_BENCH_HAVE_BOOST)
// boost::concurrent_flat_map (Boost.Unordered >= 1.83) with its default hash. It has no iterators
// and no find returning a value: everything goes through visitation. BoostBulk is the same map
// looked up with the bulk cvisit(first, last, f), which hashes and prefetches up to
// bulk_visit_size keys ahead, over the same blocks as pardict_bulk's find_many. Boost has no bulk
// insert or update, so boost_bulk applies to the lookup workloads only; and the bulk visitor is
// not told which input key it is visiting, so the runner checks it by key (visit_block below)
// instead of scattering values into an output array.
template <class V, bool Bulk>
struct BoostMap {
  static constexpr bool bulk = Bulk;
  static constexpr bool visit_bulk = Bulk;
  using M = boost::concurrent_flat_map<u64, V>;
  M m;
  explicit BoostMap(u64 reserve) {
    if (reserve) m.reserve(reserve);
  }
  bool insert(u64 k, const V& v) { return m.try_emplace(k, v); }
  bool find(u64 k, V& out) const {
    return m.cvisit(k, [&](const auto& kv) { out = kv.second; }) != 0;
  }
  void insert_or_assign(u64 k, const V& v) { m.insert_or_assign(k, v); }
  void increment(u64 k) {
    m.try_emplace_or_visit(k, V(1), [](auto& kv) { ++kv.second; });
  }
  size_t size() const { return m.size(); }
  template <class F>
  void for_each(F f) const {
    m.cvisit_all([&](const auto& kv) { f(kv.first, kv.second); });
  }
  // f(key, value) for every key of ks that is present; returns how many were.
  template <class F>
  size_t visit_block(std::span<const u64> ks, F&& f) const {
    return m.cvisit(ks.begin(), ks.end(), [&](const auto& kv) { f(kv.first, kv.second); });
  }
};
template <class V>
using BoostSingle = BoostMap<V, false>;
template <class V>
using BoostBulk = BoostMap<V, true>;
#endif

// ------------------------------------------------------------------------------------------------
// Shared pieces of the checks.

struct Bitset {
  std::vector<u64> w;
  explicit Bitset(u64 n) : w((n + 63) / 64, 0) {}
  bool test_set(u64 i) {
    const u64 b = u64{1} << (i & 63);
    const bool was = w[i >> 6] & b;
    w[i >> 6] |= b;
    return was;
  }
  bool test(u64 i) const { return w[i >> 6] & (u64{1} << (i & 63)); }
};

// Every entry must be key_of(i) -> val_of(i) with i < limit, no key twice; returns the number of
// entries.
template <class V, class ForEach>
u64 check_entries(ForEach&& for_each, u64 limit, const Bitset* must_have, u64 expect_count) {
  Bitset seen(limit);
  u64 count = 0, bad_key = 0, bad_val = 0, dup = 0, missing = 0;
  for_each([&](u64 k, const V& v) {
    ++count;
    const u64 i = index_of(k);
    if (i >= limit) {
      ++bad_key;
      return;
    }
    if (seen.test_set(i)) ++dup;
    if (!(v == val_of<V>(i))) ++bad_val;
    if (must_have && !must_have->test(i)) ++missing;  // present but should not be
  });
  check(bad_key == 0, "entries with unexpected keys: " + std::to_string(bad_key));
  check(dup == 0, "duplicate keys: " + std::to_string(dup));
  check(bad_val == 0, "entries with wrong values: " + std::to_string(bad_val));
  check(missing == 0, "entries that were never inserted: " + std::to_string(missing));
  check(count == expect_count,
        "entry count " + std::to_string(count) + " != expected " + std::to_string(expect_count));
  return count;
}

void check_zipf_counts(const ZipfStream& z, const std::vector<i64>& got, u64 entries, u64 ops) {
  i64 total = 0;
  u64 wrong = 0;
  for (u64 r = 0; r < kZipfRanks; ++r) {
    total += got[r];
    wrong += got[r] != z.count[r];
  }
  check(total == static_cast<i64>(ops),
        "W6 total " + std::to_string(total) + " != " + std::to_string(ops));
  check(wrong == 0,
        "W6 per-key counts differ from the serial count for " + std::to_string(wrong) + " keys");
  check(entries == z.distinct,
        "W6 distinct keys " + std::to_string(entries) + " != " + std::to_string(z.distinct));
}

// W5 replay: each key is only touched by one thread, so the serial replay of each thread's stream
// gives the exact number of successful finds and the final key set.
struct W5Expect {
  u64 found = 0, finds = 0, assigns = 0, final_size = 0;
  Bitset present;
  explicit W5Expect(u64 n) : present(2 * n) {}
};
W5Expect w5_replay(u64 n, int T) {
  W5Expect e(n);
  for (u64 i = 0; i < n; ++i) e.present.test_set(i);
  e.final_size = n;
  for (int t = 0; t < T; ++t) {
    Rng rng(thread_seed(5, t));
    const u64 cnt = share(n, T, t), range = share(2 * n, T, t);
    for (u64 q = 0; q < cnt; ++q) {
      const u64 i = lemire(rng.next(), range) * T + t;
      if (lemire(rng.next(), 10) == 0) {
        ++e.assigns;
        if (!e.present.test_set(i)) ++e.final_size;
      } else {
        ++e.finds;
        e.found += e.present.test(i);
      }
    }
  }
  return e;
}

// The bytes of a value as a sum of 64-bit words (boost_bulk's check, see timed_lookup).
template <class V>
u64 value_sum(const V& v) {
  static_assert(sizeof(V) % sizeof(u64) == 0 && std::is_trivially_copyable_v<V>);
  u64 w[sizeof(V) / sizeof(u64)];
  std::memcpy(w, &v, sizeof(V));
  u64 s = 0;
  for (u64 x : w) s += x;
  return s;
}

struct LookupTally {
  u64 found = 0, bad = 0;
};

// ------------------------------------------------------------------------------------------------
// Workloads on concurrent maps.

template <template <class> class A, class V>
struct Runner {
  using Map = A<V>;
  const Config& c;
  Runner(const Config& cfg) : c(cfg) {}

  static constexpr bool kBulk = Map::bulk;
  // A bulk map that can only visit (boost_bulk): lookups, nothing else.
  static constexpr bool kVisitOnly = requires { requires Map::visit_bulk; };
  // Bulk writes (insert_many, add_many); a visit-only map never reaches them (run() returns 3).
  static constexpr bool kBulkWrites = kBulk && !kVisitOnly;

  void prefill(Map& m) {  // untimed, 2 threads, single-key inserts
    std::atomic<u64> ins{0};
    const int P = 2;
    run_threads(P, [&](int t) {
      u64 local = 0;
      for (u64 i = t; i < c.n; i += P) local += m.insert(key_of(i), val_of<V>(i));
      ins.fetch_add(local);
    });
    check(ins.load() == c.n, "prefill inserted " + std::to_string(ins.load()) + " != N");
    check(m.size() == c.n, "size after prefill " + std::to_string(m.size()) + " != N");
  }

  double timed_insert(Map& m, u64& inserted) {
    std::vector<u64> per(c.T, 0);
    const size_t B = c.block;
    double s = run_threads(c.T, [&](int t) {
      u64 local = 0;
      if constexpr (kBulkWrites) {
        std::vector<u64> ks(B);
        std::vector<V> vs(B);
        u64 i = t;
        while (i < c.n) {
          size_t b = 0;
          for (; b < B && i < c.n; ++b, i += c.T) {
            ks[b] = key_of(i);
            vs[b] = val_of<V>(i);
          }
          local +=
              m.insert_many(std::span<const u64>(ks.data(), b), std::span<const V>(vs.data(), b));
        }
      } else {
        for (u64 i = t; i < c.n; i += c.T) local += m.insert(key_of(i), val_of<V>(i));
      }
      per[t] = local;
    });
    inserted = 0;
    for (auto x : per) inserted += x;
    return s;
  }

  // W8r, W8s: thread t inserts keys[j] for j == t (mod T), in order.
  double timed_insert_keys(Map& m, const std::vector<u64>& keys, u64& inserted) {
    std::vector<u64> per(c.T, 0);
    const size_t B = c.block;
    const u64 n = keys.size();
    double s = run_threads(c.T, [&](int t) {
      u64 local = 0;
      if constexpr (kBulkWrites) {
        std::vector<u64> ks(B);
        std::vector<V> vs(B);
        u64 j = t;
        while (j < n) {
          size_t b = 0;
          for (; b < B && j < n; ++b, j += c.T) {
            ks[b] = keys[j];
            vs[b] = val_of<V>(index_of(keys[j]));
          }
          local +=
              m.insert_many(std::span<const u64>(ks.data(), b), std::span<const V>(vs.data(), b));
        }
      } else {
        for (u64 j = t; j < n; j += c.T) local += m.insert(keys[j], val_of<V>(index_of(keys[j])));
      }
      per[t] = local;
    });
    inserted = 0;
    for (auto x : per) inserted += x;
    return s;
  }

  double timed_lookup(const Map& m, bool absent, LookupTally& tally) {
    std::vector<LookupTally> per(c.T);
    const size_t B = c.block;
    const u64 salt = absent ? 4 : 3;
    const u64 base = absent ? kAbsentBase : 0;
    double s = run_threads(c.T, [&](int t) {
      Rng rng(thread_seed(salt, t));
      const u64 cnt = share(c.n, c.T, t);
      LookupTally lt;
      if constexpr (kVisitOnly) {
        // The visitor is not told which input key it visits, so the values cannot be checked one
        // by one against their indices as for the other maps (inverting the key would cost the
        // visited map ~20 instructions the others do not pay). Instead the visited values are
        // summed and compared with the sum of the expected values: where every key is present
        // (W3, W7l; the found count is checked too), any wrong value changes the sum.
        std::vector<u64> ks(B);
        u64 got = 0, want = 0;
        for (u64 q = 0; q < cnt;) {
          const size_t b = static_cast<size_t>(std::min<u64>(B, cnt - q));
          for (size_t j = 0; j < b; ++j) {
            const u64 i = lemire(rng.next(), cnt) * c.T + t;
            ks[j] = key_of(base + i);
            want += value_sum(val_of<V>(i));
          }
          lt.found += m.visit_block(std::span<const u64>(ks.data(), b),
                                    [&](u64, const V& v) { got += value_sum(v); });
          q += b;
        }
        if (!absent) lt.bad += got != want;
      } else if constexpr (kBulk) {
        std::vector<u64> ks(B), idx(B);
        std::vector<V> vs(B);
        std::unique_ptr<bool[]> fs(new bool[B]);
        for (u64 q = 0; q < cnt;) {
          const size_t b = static_cast<size_t>(std::min<u64>(B, cnt - q));
          for (size_t j = 0; j < b; ++j) {
            idx[j] = lemire(rng.next(), cnt) * c.T + t;
            ks[j] = key_of(base + idx[j]);
          }
          lt.found += m.find_many(std::span<const u64>(ks.data(), b), std::span<V>(vs.data(), b),
                                  std::span<bool>(fs.get(), b));
          for (size_t j = 0; j < b; ++j)
            if (fs[j]) lt.bad += !(vs[j] == val_of<V>(idx[j]));
          q += b;
        }
      } else {
        for (u64 q = 0; q < cnt; ++q) {
          const u64 i = lemire(rng.next(), cnt) * c.T + t;
          V v;
          if (m.find(key_of(base + i), v)) {
            ++lt.found;
            lt.bad += !(v == val_of<V>(i));
          }
        }
      }
      per[t] = lt;
    });
    tally = {};
    for (auto& x : per) {
      tally.found += x.found;
      tally.bad += x.bad;
    }
    return s;
  }

  double timed_mixed(Map& m, LookupTally& tally) {  // W5
    std::vector<LookupTally> per(c.T);
    double s = run_threads(c.T, [&](int t) {
      Rng rng(thread_seed(5, t));
      const u64 cnt = share(c.n, c.T, t), range = share(2 * c.n, c.T, t);
      LookupTally lt;
      for (u64 q = 0; q < cnt; ++q) {
        const u64 i = lemire(rng.next(), range) * c.T + t;
        if (lemire(rng.next(), 10) == 0) {
          m.insert_or_assign(key_of(i), val_of<V>(i));
        } else {
          V v;
          if (m.find(key_of(i), v)) {
            ++lt.found;
            lt.bad += !(v == val_of<V>(i));
          }
        }
      }
      per[t] = lt;
    });
    tally = {};
    for (auto& x : per) {
      tally.found += x.found;
      tally.bad += x.bad;
    }
    return s;
  }

  double timed_count(Map& m, const ZipfStream& z) {  // W6
    const u64 ops = z.idx.size();
    const size_t B = c.block;
    return run_threads(c.T, [&](int t) {
      if constexpr (kBulkWrites) {
        std::vector<u64> ks(B);
        std::vector<V> ones(B, V(1));
        u64 j = t;
        while (j < ops) {
          size_t b = 0;
          for (; b < B && j < ops; ++b, j += c.T) ks[b] = key_of(z.idx[j]);
          m.add_many(std::span<const u64>(ks.data(), b), std::span<const V>(ones.data(), b));
        }
      } else {
        for (u64 j = t; j < ops; j += c.T) m.increment(key_of(z.idx[j]));
      }
    });
  }

  int run() {
    const W w = c.w;
    if constexpr (kBulk) {
      if (w == W::W5) return 3;  // no bulk form of the per-op mixed workload
    }
    if constexpr (kVisitOnly) {
      if (!is_lookup(w)) return 3;  // no bulk insert or update to compare with
    }
    if constexpr (!std::is_same_v<V, i64>) {
      if (w == W::W6) return 3;
    }
    std::optional<ZipfStream> zipf;
    if (w == W::W6) zipf.emplace(make_zipf(op_count(c)));
    std::optional<W5Expect> w5;
    if (w == W::W5) w5.emplace(w5_replay(c.n, c.T));
    long baseline_kb = 0;

    std::unique_ptr<Map> shared;  // lookup workloads build once for all reps
    int failures = 0;
    for (int rep = 0; rep < c.reps; ++rep) {
      if (!shared) baseline_kb = mem_baseline_kb();
      Row row;
      row.baseline_kb = baseline_kb;
      row.ops = op_count(c);
      std::string status = "ok";
      try {
        if (is_insert(w)) {
          Map m(w == W::W2 ? c.n : 0);
          u64 inserted = 0;
          row.before = usage_now();
          row.seconds = timed_insert(m, inserted);
          finish_row(row);
          check(inserted == c.n, "inserted " + std::to_string(inserted) + " != N");
          check(m.size() == c.n, "size " + std::to_string(m.size()) + " != N");
          row.entries = check_entries<V>([&](auto&& f) { m.for_each(f); }, c.n, nullptr, c.n);
        } else if (is_lookup(w)) {
          if (!shared) {
            shared = std::make_unique<Map>(0);
            prefill(*shared);
          }
          LookupTally tally;
          row.before = usage_now();
          row.seconds = timed_lookup(*shared, w == W::W4, tally);
          finish_row(row);
          row.entries = shared->size();
          if (w == W::W4) {
            check(tally.found == 0, "W4 found " + std::to_string(tally.found) + " absent keys");
          } else {
            check(tally.found == c.n,
                  "found " + std::to_string(tally.found) + " of N present keys");
            check(tally.bad == 0, "wrong values returned: " + std::to_string(tally.bad));
          }
          check(shared->size() == c.n, "size changed by lookups");
        } else if (is_reinsert(w)) {
          std::vector<u64> keys;
          keys.reserve(c.n);
          {
            Map source(0);
            prefill(source);
            source.for_each([&](u64 k, const V&) { keys.push_back(k); });
          }
          check(keys.size() == c.n, "source map iterated " + std::to_string(keys.size()) + " keys");
          if (w == W::W8s) {  // Fisher-Yates with a fixed seed
            Rng rng(thread_seed(8, 0));
            for (u64 i = keys.size() - 1; i > 0; --i)
              std::swap(keys[i], keys[lemire(rng.next(), i + 1)]);
          }
          row.baseline_kb = mem_baseline_kb();  // the source map is gone
          Map m(0);
          u64 inserted = 0;
          row.before = usage_now();
          row.seconds = timed_insert_keys(m, keys, inserted);
          finish_row(row);
          check(inserted == c.n, "inserted " + std::to_string(inserted) + " != N");
          check(m.size() == c.n, "size " + std::to_string(m.size()) + " != N");
          row.entries = check_entries<V>([&](auto&& f) { m.for_each(f); }, c.n, nullptr, c.n);
        } else if (w == W::W5) {
          Map m(0);
          prefill(m);
          LookupTally tally;
          row.before = usage_now();
          row.seconds = timed_mixed(m, tally);
          finish_row(row);
          check(tally.bad == 0, "W5 wrong values returned: " + std::to_string(tally.bad));
          check(tally.found == w5->found, "W5 found " + std::to_string(tally.found) +
                                              " != replay " + std::to_string(w5->found));
          check(m.size() == w5->final_size, "W5 size " + std::to_string(m.size()) + " != replay " +
                                                std::to_string(w5->final_size));
          row.entries = check_entries<V>([&](auto&& f) { m.for_each(f); }, 2 * c.n, &w5->present,
                                         w5->final_size);
        } else if (w == W::W6) {
          if constexpr (std::is_same_v<V, i64>) {
            Map m(0);
            row.before = usage_now();
            row.seconds = timed_count(m, *zipf);
            finish_row(row);
            std::vector<i64> got(kZipfRanks, 0);
            u64 entries = 0, stray = 0;
            m.for_each([&](u64 k, const i64& v) {
              ++entries;
              const u64 r = index_of(k);
              if (r < kZipfRanks)
                got[r] += v;
              else
                ++stray;
            });
            check(stray == 0, "W6 keys outside the rank range: " + std::to_string(stray));
            check(m.size() == entries, "W6 size() disagrees with visited entries");
            check_zipf_counts(*zipf, got, entries, row.ops);
            row.entries = entries;
          }
        }
      } catch (const CheckFailure& f) {
        status = "FAIL: " + f.what;
        if (row.peak_kb == 0) finish_row(row);
        ++failures;
      }
      print_row(c, rep, row, status);
    }
    return failures ? 1 : 0;
  }
};

// ------------------------------------------------------------------------------------------------
// Limits: the plain per-thread table and raw random loads.

template <class V>
struct PlainTable {  // single-threaded linear probing, key 0 = empty, 16/24-byte slots
  struct Slot {
    u64 key;
    V val;
  };
  Mapping mem;
  Slot* slots = nullptr;
  u64 mask = 0;
  int shift = 0;
  u64 count = 0;
  explicit PlainTable(u64 cap) : mem(cap * sizeof(Slot)) {
    slots = static_cast<Slot*>(mem.p);
    mask = cap - 1;
    shift = 64 - __builtin_ctzll(cap);
  }
  void touch() {
    std::memset(mem.p, 0, mem.bytes);
  }  // first touch is a write, by the owning thread
  u64 home(u64 k) const { return shift == 64 ? 0 : (k * kGolden) >> shift; }
  bool insert(u64 k, const V& v) {
    for (u64 h = home(k);; h = (h + 1) & mask) {
      Slot& s = slots[h];
      if (s.key == k) return false;
      if (s.key == 0) {
        s.key = k;
        s.val = v;
        ++count;
        return true;
      }
    }
  }
  bool find(u64 k, V& out) const {
    for (u64 h = home(k);; h = (h + 1) & mask) {
      const Slot& s = slots[h];
      if (s.key == k) {
        out = s.val;
        return true;
      }
      if (s.key == 0) return false;
    }
  }
  void insert_or_assign(u64 k, const V& v) {
    for (u64 h = home(k);; h = (h + 1) & mask) {
      Slot& s = slots[h];
      if (s.key == k) {
        s.val = v;
        return;
      }
      if (s.key == 0) {
        s.key = k;
        s.val = v;
        ++count;
        return;
      }
    }
  }
  void increment(u64 k) {
    for (u64 h = home(k);; h = (h + 1) & mask) {
      Slot& s = slots[h];
      if (s.key == k) {
        ++s.val;
        return;
      }
      if (s.key == 0) {
        s.key = k;
        s.val = 1;
        ++count;
        return;
      }
    }
  }
  template <class F>
  void for_each(F&& f) const {
    for (u64 h = 0; h <= mask; ++h)
      if (slots[h].key != 0) f(slots[h].key, slots[h].val);
  }
};

template <class V>
u64 plain_capacity(u64 keys_total, int T) {
  return next_pow2(std::max<u64>(2 * keys_total / static_cast<u64>(T), 16));
}

template <class V>
int run_plain(const Config& c, bool pretouch) {
  using Table = PlainTable<V>;
  const W w = c.w;
  if constexpr (!std::is_same_v<V, i64>) {
    if (w == W::W6) return 3;
  }
  if (is_reinsert(w)) return 3;  // per-thread tables: no other map's order to take
  std::optional<ZipfStream> zipf;
  if (w == W::W6) zipf.emplace(make_zipf(op_count(c)));
  std::optional<W5Expect> w5;
  if (w == W::W5) w5.emplace(w5_replay(c.n, c.T));
  long baseline_kb = 0;
  const u64 cap = w == W::W6 ? next_pow2(2 * kZipfRanks) : plain_capacity<V>(c.n, c.T);

  std::vector<std::unique_ptr<Table>> shared;
  auto make_tables = [&] {
    std::vector<std::unique_ptr<Table>> v;
    for (int t = 0; t < c.T; ++t) v.push_back(std::make_unique<Table>(cap));
    return v;
  };
  auto for_each_all = [](const std::vector<std::unique_ptr<Table>>& tabs) {
    return [&tabs](auto&& f) {
      for (auto& tb : tabs) tb->for_each(f);
    };
  };
  auto total_count = [](const std::vector<std::unique_ptr<Table>>& tabs) {
    u64 n = 0;
    for (auto& tb : tabs) n += tb->count;
    return n;
  };
  // untimed prefill of indices [0, N): thread t fills its own table with i == t (mod T)
  auto prefill = [&](std::vector<std::unique_ptr<Table>>& tabs) {
    run_threads(c.T, [&](int t) {
      tabs[t]->touch();
      for (u64 i = t; i < c.n; i += c.T) tabs[t]->insert(key_of(i), val_of<V>(i));
    });
    check(total_count(tabs) == c.n, "plain prefill count != N");
  };

  int failures = 0;
  for (int rep = 0; rep < c.reps; ++rep) {
    if (shared.empty()) baseline_kb = mem_baseline_kb();
    Row row;
    row.baseline_kb = baseline_kb;
    row.ops = op_count(c);
    std::string status = "ok";
    try {
      if (is_insert(w)) {
        auto tabs = make_tables();
        if (pretouch) run_threads(c.T, [&](int t) { tabs[t]->touch(); });
        std::vector<u64> per(c.T, 0);
        row.before = usage_now();
        row.seconds = run_threads(c.T, [&](int t) {
          Table& tb = *tabs[t];
          if (!pretouch) tb.touch();
          u64 local = 0;
          for (u64 i = t; i < c.n; i += c.T) local += tb.insert(key_of(i), val_of<V>(i));
          per[t] = local;
        });
        finish_row(row);
        u64 inserted = 0;
        for (auto x : per) inserted += x;
        check(inserted == c.n, "plain inserted != N");
        row.entries = check_entries<V>(for_each_all(tabs), c.n, nullptr, c.n);
      } else if (is_lookup(w)) {
        if (shared.empty()) {
          shared = make_tables();
          prefill(shared);
        }
        const bool absent = w == W::W4;
        const u64 salt = absent ? 4 : 3, base = absent ? kAbsentBase : 0;
        std::vector<LookupTally> per(c.T);
        row.before = usage_now();
        row.seconds = run_threads(c.T, [&](int t) {
          const Table& tb = *shared[t];
          Rng rng(thread_seed(salt, t));
          const u64 cnt = share(c.n, c.T, t);
          LookupTally lt;
          for (u64 q = 0; q < cnt; ++q) {
            const u64 i = lemire(rng.next(), cnt) * c.T + t;
            V v;
            if (tb.find(key_of(base + i), v)) {
              ++lt.found;
              lt.bad += !(v == val_of<V>(i));
            }
          }
          per[t] = lt;
        });
        finish_row(row);
        LookupTally tally;
        for (auto& x : per) tally.found += x.found, tally.bad += x.bad;
        row.entries = total_count(shared);
        if (absent)
          check(tally.found == 0, "plain W4 found absent keys");
        else
          check(tally.found == c.n && tally.bad == 0,
                "plain lookups: found " + std::to_string(tally.found));
      } else if (w == W::W5) {
        auto tabs = make_tables();
        prefill(tabs);
        std::vector<LookupTally> per(c.T);
        row.before = usage_now();
        row.seconds = run_threads(c.T, [&](int t) {
          Table& tb = *tabs[t];
          Rng rng(thread_seed(5, t));
          const u64 cnt = share(c.n, c.T, t), range = share(2 * c.n, c.T, t);
          LookupTally lt;
          for (u64 q = 0; q < cnt; ++q) {
            const u64 i = lemire(rng.next(), range) * c.T + t;
            if (lemire(rng.next(), 10) == 0) {
              tb.insert_or_assign(key_of(i), val_of<V>(i));
            } else {
              V v;
              if (tb.find(key_of(i), v)) {
                ++lt.found;
                lt.bad += !(v == val_of<V>(i));
              }
            }
          }
          per[t] = lt;
        });
        finish_row(row);
        LookupTally tally;
        for (auto& x : per) tally.found += x.found, tally.bad += x.bad;
        check(tally.bad == 0 && tally.found == w5->found,
              "plain W5 found " + std::to_string(tally.found) + " != replay " +
                  std::to_string(w5->found));
        row.entries = check_entries<V>(for_each_all(tabs), 2 * c.n, &w5->present, w5->final_size);
      } else if (w == W::W6) {
        if constexpr (std::is_same_v<V, i64>) {
          auto tabs = make_tables();
          if (pretouch) run_threads(c.T, [&](int t) { tabs[t]->touch(); });
          const ZipfStream& z = *zipf;
          const u64 ops = z.idx.size();
          row.before = usage_now();
          row.seconds = run_threads(c.T, [&](int t) {  // private tables, merge not done (not timed)
            Table& tb = *tabs[t];
            if (!pretouch) tb.touch();
            for (u64 j = t; j < ops; j += c.T) tb.increment(key_of(z.idx[j]));
          });
          finish_row(row);
          std::vector<i64> got(kZipfRanks, 0);
          u64 stray = 0;
          std::vector<char> seen(kZipfRanks, 0);
          for (auto& tb : tabs)
            tb->for_each([&](u64 k, const i64& v) {
              const u64 r = index_of(k);
              if (r < kZipfRanks)
                got[r] += v, seen[r] = 1;
              else
                ++stray;
            });
          check(stray == 0, "plain W6 stray keys");
          u64 distinct = 0;
          for (char s : seen) distinct += s;
          check_zipf_counts(z, got, distinct, row.ops);
          row.entries = total_count(tabs);
        }
      }
    } catch (const CheckFailure& f) {
      status = "FAIL: " + f.what;
      if (row.peak_kb == 0) finish_row(row);
      ++failures;
    }
    print_row(c, rep, row, status);
  }
  return failures ? 1 : 0;
}

// Independent random 8-byte loads over an array the size of the plain table for this workload
// (5N loads split over the threads; addresses come from the PRNG, never from loaded data; kept
// scalar).
template <class V>
int run_raw_read(const Config& c) {
  if (!is_lookup(c.w)) return 3;
  const u64 bytes =
      static_cast<u64>(c.T) * plain_capacity<V>(c.n, c.T) * sizeof(typename PlainTable<V>::Slot);
  const u64 words = bytes / 8;
  const long baseline_kb = mem_baseline_kb();
  Mapping mem(words * 8);
  u64* a = static_cast<u64*>(mem.p);
  run_threads(c.T, [&](int t) {  // untimed fill, a[j] = j
    const u64 lo = words * t / c.T, hi = words * (t + 1) / c.T;
    for (u64 j = lo; j < hi; ++j) a[j] = j;
  });
  const u64 loads = 5 * c.n;
  int failures = 0;
  for (int rep = 0; rep < c.reps; ++rep) {
    Row row;
    row.baseline_kb = baseline_kb;
    row.ops = loads;
    std::vector<u64> sums(c.T, 0);
    row.before = usage_now();
    row.seconds = run_threads(c.T, [&](int t) {
      Rng rng(thread_seed(100 + rep, t));
      const u64 cnt = share(loads, c.T, t);
      u64 sum = 0;
      for (u64 q = 0; q < cnt; ++q) {
        u64 j = lemire(rng.next(), words);
        asm volatile("" : "+r"(j));  // keeps the loop scalar (no gathers)
        sum += a[j];
      }
      sums[t] = sum;
    });
    finish_row(row);
    u64 got = 0, expect = 0;
    for (int t = 0; t < c.T; ++t) {
      got += sums[t];
      Rng rng(thread_seed(100 + rep, t));
      const u64 cnt = share(loads, c.T, t);
      for (u64 q = 0; q < cnt; ++q) expect += lemire(rng.next(), words);
    }
    row.entries = c.n;
    std::string status = got == expect ? "ok" : "FAIL: raw_read load sum mismatch";
    failures += got != expect;
    print_row(c, rep, row, status);
  }
  return failures ? 1 : 0;
}

// ------------------------------------------------------------------------------------------------

template <template <class> class A>
int dispatch(const Config& c) {
  if (c.w == W::W7i || c.w == W::W7l) return Runner<A, F4>(c).run();
  return Runner<A, i64>(c).run();
}

const char* const kAllMaps[] = {"pardict",   "pardict_bulk", "boost",         "boost_bulk",
                                "tbb_hm",    "tbb_um",       "cuckoo",        "absl_sharded",
                                "std_mutex", "plain",        "plain_touched", "raw_read"};

bool map_built(std::string_view m) {
#if !defined(PARDICT_BENCH_HAVE_PARDICT)
  if (m == "pardict" || m == "pardict_bulk") return false;
#endif
#if !defined(PARDICT_BENCH_HAVE_TBB)
  if (m == "tbb_hm" || m == "tbb_um") return false;
#endif
#if !defined(PARDICT_BENCH_HAVE_CUCKOO)
  if (m == "cuckoo") return false;
#endif
#if !defined(PARDICT_BENCH_HAVE_ABSL)
  if (m == "absl_sharded") return false;
#endif
#if !defined(PARDICT_BENCH_HAVE_BOOST)
  if (m == "boost" || m == "boost_bulk") return false;
#endif
  (void)m;
  return true;
}

int run_config(const Config& c) {
  const bool f4 = c.w == W::W7i || c.w == W::W7l;
  const std::string& m = c.map;
  if (m == "plain") return f4 ? run_plain<F4>(c, false) : run_plain<i64>(c, false);
  if (m == "plain_touched") return f4 ? run_plain<F4>(c, true) : run_plain<i64>(c, true);
  if (m == "raw_read") return f4 ? run_raw_read<F4>(c) : run_raw_read<i64>(c);
  if (m == "std_mutex") return dispatch<StdMutexMap>(c);
#if defined(PARDICT_BENCH_HAVE_PARDICT)
  if (m == "pardict") return dispatch<PardictSingle>(c);
  if (m == "pardict_bulk") return dispatch<PardictBulk>(c);
#endif
#if defined(PARDICT_BENCH_HAVE_TBB)
  if (m == "tbb_hm") return dispatch<TbbHashMap>(c);
  if (m == "tbb_um") return dispatch<TbbUnorderedMap>(c);
#endif
#if defined(PARDICT_BENCH_HAVE_CUCKOO)
  if (m == "cuckoo") return dispatch<CuckooMap>(c);
#endif
#if defined(PARDICT_BENCH_HAVE_ABSL)
  if (m == "absl_sharded") return dispatch<AbslShardedMap>(c);
#endif
#if defined(PARDICT_BENCH_HAVE_BOOST)
  if (m == "boost") return dispatch<BoostSingle>(c);
  if (m == "boost_bulk") return dispatch<BoostBulk>(c);
#endif
  return 3;
}

void usage() {
  std::fprintf(stderr,
               "usage: pardict_bench <map> <workload> <threads> [N=10000000] [reps=1]\n"
               "       pardict_bench --list      (maps built into this binary, and workloads)\n"
               "maps:");
  for (auto m : kAllMaps) std::fprintf(stderr, " %s%s", m, map_built(m) ? "" : "(not built)");
  std::fprintf(stderr, "\nworkloads:");
  for (auto& w : kWorkloads) std::fprintf(stderr, " %s", w.name);
  std::fprintf(stderr, "\n");
}

}  // namespace

int main(int argc, char** argv) {
  init_cpus();
  if (argc >= 2 && std::string_view(argv[1]) == "--list") {
    std::printf("{\"maps\":[");
    bool first = true;
    for (auto m : kAllMaps)
      if (map_built(m)) std::printf("%s\"%s\"", first ? "" : ",", m), first = false;
    std::printf("],\"workloads\":[");
    first = true;
    for (auto& w : kWorkloads) std::printf("%s\"%s\"", first ? "" : ",", w.name), first = false;
    std::printf("],\"cpus\":%zu", g_cpus.size());
#if defined(PARDICT_BENCH_HAVE_TBB)
    std::printf(",\"tbb\":\"%s\"", TBB_VERSION_STRING);
#endif
#if defined(PARDICT_BENCH_HAVE_BOOST)
    std::printf(",\"boost\":\"%d.%d.%d\"", BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000,
                BOOST_VERSION % 100);
#endif
    std::printf(",\"compiler\":\"%s\"}\n", __VERSION__);
    return 0;
  }
  if (argc < 4 || argc > 6) {
    usage();
    return 2;
  }
  Config c;
  c.map = argv[1];
  c.wname = argv[2];
  bool wok = false;
  for (auto& w : kWorkloads)
    if (c.wname == w.name) c.w = w.w, wok = true;
  if (!wok) {
    usage();
    die(2, "unknown workload '%s'", argv[2]);
  }
  bool mok = false;
  for (auto m : kAllMaps) mok |= c.map == m;
  if (!mok) {
    usage();
    die(2, "unknown map '%s'", argv[1]);
  }
  c.T = std::atoi(argv[3]);
  if (argc > 4) c.n = std::strtoull(argv[4], nullptr, 10);
  if (argc > 5) c.reps = std::atoi(argv[5]);
  if (const char* b = std::getenv("PARDICT_BENCH_BLOCK")) c.block = std::strtoull(b, nullptr, 10);
  if (c.T < 1 || c.T > 1024 || c.n < 1 || c.n >= (u64{1} << 40) || c.reps < 1 || c.block < 1) {
    usage();
    die(2, "bad threads/N/reps/block");
  }
  if (!map_built(c.map)) die(3, "map '%s' is not built into this binary", c.map.c_str());
  try {
    const int rc = run_config(c);
    if (rc == 3)
      std::fprintf(stderr, "pardict_bench: %s does not apply to %s\n", c.map.c_str(),
                   c.wname.c_str());
    return rc;
  } catch (const std::exception& e) {
    die(1, "exception: %s", e.what());
  }
}
