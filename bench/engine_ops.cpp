// engine_ops: one single-key workload of the C++ engine (or of boost::concurrent_flat_map, when
// built with it) per run, for counting instructions per operation with callgrind: the fixed
// cost of an operation, which decides throughput once a table fits in the cache and how many
// consecutive operations' misses overlap once it does not. Each workload's counted part is one
// function, measured_<workload>, so that
//   valgrind --tool=callgrind --toggle-collect='*measured_miss*' engine_ops pardict miss
// counts exactly that part (divide the total by q). Build without -march=native: valgrind 3.19
// does not decode AVX-512.
//
//   miss       q lookups of absent keys in a map of n keys
//   hit        q lookups of present keys (cycling over the n keys in a scrambled order)
//   increment  q try_emplace_or_visit(k, 1, ++value) on present keys (bench_map's W6 operation)
//   insert     q inserts of distinct keys into a map reserved for them
//
// Usage: engine_ops <pardict|boost> <miss|hit|increment|insert> [n=100000] [q=1000000]
// Prints the wall time per operation too (of little use under valgrind).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "pardict/concurrent_map.hpp"
#if defined(PARDICT_BENCH_HAVE_BOOST)
#include <boost/unordered/concurrent_flat_map.hpp>
#endif

namespace {

using u64 = std::uint64_t;

// bench_map.cpp's keys: distinct, scrambled, no structure the hash could exploit.
u64 key_of(u64 i) {
  u64 z = i + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
constexpr u64 absent_base = u64{1} << 63;

// The two maps share these spellings of the operations.
template <class Map>
struct map_ops {
  Map m;
  void reserve(u64 n) { m.reserve(n); }
  bool insert(u64 k, u64 v) { return m.try_emplace(k, v); }
  bool find(u64 k, u64& out) const {
    return m.cvisit(k, [&](const auto& kv) { out = kv.second; }) != 0;
  }
  void increment(u64 k) {
    m.try_emplace_or_visit(k, u64{1}, [](auto& kv) { ++kv.second; });
  }
};
using pardict_ops = map_ops<pardict::concurrent_map<u64, u64>>;
#if defined(PARDICT_BENCH_HAVE_BOOST)
using boost_ops = map_ops<boost::concurrent_flat_map<u64, u64>>;
#endif

// The counted functions: not templates, so that their names are plain in callgrind's output.
template <class Ops>
struct workload {
  Ops ops;
  u64 n, q;
};

template <class Ops>
[[gnu::always_inline]] inline u64 misses(workload<Ops>& w) {
  u64 found = 0, v = 0;
  for (u64 i = 0; i < w.q; ++i) found += w.ops.find(key_of(absent_base + i), v);
  return found;
}
template <class Ops>
[[gnu::always_inline]] inline u64 hits(workload<Ops>& w) {
  u64 sum = 0, v = 0, j = 0;
  for (u64 i = 0; i < w.q; ++i) {
    j = j + 7919 < w.n ? j + 7919 : j + 7919 - w.n;  // a stride co-prime with n visits all keys
    if (w.ops.find(key_of(j), v)) sum += v;
  }
  return sum;
}
template <class Ops>
[[gnu::always_inline]] inline u64 increments(workload<Ops>& w) {
  u64 j = 0;
  for (u64 i = 0; i < w.q; ++i) {
    j = j + 7919 < w.n ? j + 7919 : j + 7919 - w.n;
    w.ops.increment(key_of(j));
  }
  return w.q;
}
template <class Ops>
[[gnu::always_inline]] inline u64 inserts(workload<Ops>& w) {
  u64 added = 0;
  for (u64 i = 0; i < w.q; ++i) added += w.ops.insert(key_of(w.n + i), i);
  return added;
}

#define PARDICT_MEASURED(OPS)                                                          \
  [[gnu::noinline]] u64 measured_miss(workload<OPS>& w) { return misses(w); }          \
  [[gnu::noinline]] u64 measured_hit(workload<OPS>& w) { return hits(w); }             \
  [[gnu::noinline]] u64 measured_increment(workload<OPS>& w) { return increments(w); } \
  [[gnu::noinline]] u64 measured_insert(workload<OPS>& w) { return inserts(w); }
PARDICT_MEASURED(pardict_ops)
#if defined(PARDICT_BENCH_HAVE_BOOST)
PARDICT_MEASURED(boost_ops)
#endif
#undef PARDICT_MEASURED

template <class Ops>
int run(const std::string& what, u64 n, u64 q) {
  auto* w = new workload<Ops>{{}, n, q};  // leaked on purpose: no teardown in the profile
  if (what == "insert") w->ops.reserve(n + q);
  for (u64 i = 0; i < n; ++i) w->ops.insert(key_of(i), i);
  const auto t0 = std::chrono::steady_clock::now();
  u64 r = 0;
  if (what == "miss") {
    r = measured_miss(*w);
  } else if (what == "hit") {
    r = measured_hit(*w);
  } else if (what == "increment") {
    r = measured_increment(*w);
  } else if (what == "insert") {
    r = measured_insert(*w);
  } else {
    std::fprintf(stderr, "unknown workload %s\n", what.c_str());
    return 2;
  }
  const double ns =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s n=%llu q=%llu: %.1f ns/op (result %llu)\n", what.c_str(),
              static_cast<unsigned long long>(n), static_cast<unsigned long long>(q),
              ns / static_cast<double>(q), static_cast<unsigned long long>(r));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: engine_ops <pardict|boost> <miss|hit|increment|insert> [n] [q]\n");
    return 2;
  }
  const std::string map = argv[1], what = argv[2];
  const u64 n = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 100000;
  const u64 q = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 1000000;
  if (n == 0) return 2;
  if (map == "pardict") return run<pardict_ops>(what, n, q);
#if defined(PARDICT_BENCH_HAVE_BOOST)
  if (map == "boost") return run<boost_ops>(what, n, q);
#endif
  std::fprintf(stderr, "map %s is not built in\n", map.c_str());
  return 3;
}
