// layout_study — what a denser metadata layout would buy pardict's lookups (issue 21), measured
// before the engine is rewritten for it.
//
// Single-threaded, lock-free models of three table layouts, each filled the way the engine fills
// its tables (the same hash, tag, overflow-class and preferred-half bits) to the same load, then
// timed on N lookups of present keys (W3) and N of absent keys (W4), in random order, as
// bench_map.cpp times them. The models keep the reader protocol's memory accesses (the version
// word is loaded before and after the copy) but no atomics, epochs or shards: they bound what a
// layout can give, they are not a map. pardict_bench measures the real maps in the same session.
//
//   P  : today's engine. 16-byte metadata per 8-slot group (seq, overflow word, 8 tag bytes), 2 B
//        per slot; the lookup prefetches the key's preferred half of the group's slots while the
//        metadata is on its way, so a hit costs one round trip.
//   D  : dense. 16-byte tag groups of 15 tags + 1 overflow byte (1.07 B per slot, matched with one
//        SSE2 compare), the version words in a separate array (4 B per group), 16-slot blocks (15
//        used, so that a block's 4-slot quarters are cache lines). The lookup reads the tags
//        first; only a matching tag loads the version word and the slot (boost's order): a miss
//        touches one dense line, a hit two dependent round trips.
//   Ds : D with the speculative prefetch of the key's preferred quarter of the block (inserts
//        prefer it), as P does for its half.
//
// Usage: layout_study [N=10000000] [load=0.78] [reps=3]; prints one JSON line per layout and rep.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace {

using u64 = std::uint64_t;
using u32 = std::uint32_t;

// The engine's hash for integral keys (include/pardict/hash.hpp) and bench_map.cpp's keys.
constexpr u64 mix64(u64 x) {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ULL;
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ULL;
  x ^= x >> 32;
  return x;
}
constexpr u64 kGolden = 0x9e3779b97f4a7c15ULL;
constexpr u64 fmix(u64 z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
constexpr u64 key_of(u64 i) { return fmix(i + kGolden); }
inline u64 lemire(u64 x, u64 n) {
  return static_cast<u64>((static_cast<unsigned __int128>(x) * n) >> 64);
}

// The engine's bits: home position from the low 32 bits, tag from bits 32..39 (never 0), overflow
// class from bits 40..42, preferred part from bits 43.. .
inline std::size_t home(u64 h, std::size_t ngroups) {
  return static_cast<std::size_t>((static_cast<u64>(static_cast<u32>(h) * 0x9e3779b1u) * ngroups) >>
                                  32);
}
inline std::uint8_t tag_of(u64 h) {
  const auto t = static_cast<std::uint8_t>(h >> 32);
  return t != 0 ? t : 1;
}
inline unsigned oclass(u64 h) { return (h >> 40) & 7; }

struct Slot {
  u64 key;
  u64 value;
};

inline void prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }

// Keeps the compiler from proving loads dead and from merging the two version loads.
inline void compiler_barrier() { asm volatile("" ::: "memory"); }

// ---- P: today's layout ---------------------------------------------------------------------

struct alignas(16) PMeta {
  u32 seq;
  u32 overflow;
  u64 tags;
};

constexpr u64 kLsb = 0x0101010101010101ULL, kLow7 = 0x7f7f7f7f7f7f7f7fULL;
inline u64 zero_bytes(u64 x) { return ~(((x & kLow7) + kLow7) | x | kLow7); }
inline unsigned first_slot(u64 m) { return static_cast<unsigned>(__builtin_ctzll(m)) >> 3; }

struct LayoutP {
  static constexpr const char* name = "P";
  std::size_t ngroups;
  std::unique_ptr<PMeta[]> meta;
  struct Free {
    void operator()(Slot* p) const { std::free(p); }
  };
  std::unique_ptr<Slot[], Free> slots;  // 8 per group, 128 B: the halves are lines
  explicit LayoutP(std::size_t slots_wanted)
      : ngroups((slots_wanted + 7) / 8),
        meta(new PMeta[ngroups]()),
        slots(alloc_slots(ngroups * 8)) {}
  static Slot* alloc_slots(std::size_t n) {
    void* p = std::aligned_alloc(64, n * sizeof(Slot));
    std::memset(p, 0, n * sizeof(Slot));
    return static_cast<Slot*>(p);
  }
  double metadata_bytes_per_slot() const { return 2.0; }
  void insert(u64 k, u64 v) {
    const u64 h = mix64(k);
    std::size_t g = home(h, ngroups);
    for (;;) {
      PMeta& m = meta[g];
      const u64 empties = zero_bytes(m.tags);
      if (empties != 0) {
        const u64 pref = empties & ((h >> 43) & 1 ? 0x8080808000000000ULL : 0x0000000080808080ULL);
        const unsigned s = first_slot(pref != 0 ? pref : empties);
        m.tags |= u64{tag_of(h)} << (s * 8);
        slots[g * 8 + s] = {k, v};
        return;
      }
      m.overflow |= 1u << oclass(h);
      g = g + 1 == ngroups ? 0 : g + 1;
    }
  }
  bool find(u64 k, u64& v) const {
    const u64 h = mix64(k);
    std::size_t g = home(h, ngroups);
    prefetch(&slots[g * 8 + ((h >> 43) & 1 ? 4 : 0)]);
    for (;;) {
      const PMeta& m = meta[g];
      const u32 s1 = m.seq;
      for (u64 x = zero_bytes(m.tags ^ (kLsb * tag_of(h))); x; x &= x - 1) {
        const Slot& e = slots[g * 8 + first_slot(x)];
        if (e.key == k) {
          v = e.value;
          compiler_barrier();
          if (m.seq == s1) return true;
        }
      }
      compiler_barrier();
      if (m.seq != s1) continue;
      if ((m.overflow & (1u << oclass(h))) == 0) return false;
      g = g + 1 == ngroups ? 0 : g + 1;
    }
  }
};

// ---- T and Tn: today's 8-slot groups, the metadata split in three arrays -----------------------

// The tag words alone (1 B per slot), the overflow bytes beside them in an array of their own (1/8
// B per slot, 1.6 MB at 10M keys) and the version words in a third (4 B per group, read by hits
// only). A miss reads a tag word and an overflow byte, both from arrays that fit in L3 together.
template <bool Speculate>
struct LayoutT {
  static constexpr const char* name = Speculate ? "T" : "Tn";
  std::size_t ngroups;
  std::unique_ptr<u64[]> tags;
  std::unique_ptr<std::uint8_t[]> overflow;
  std::unique_ptr<u32[]> seq;
  std::unique_ptr<Slot[], LayoutP::Free> slots;
  explicit LayoutT(std::size_t slots_wanted)
      : ngroups((slots_wanted + 7) / 8),
        tags(new u64[ngroups]()),
        overflow(new std::uint8_t[ngroups]()),
        seq(new u32[ngroups]()),
        slots(LayoutP::alloc_slots(ngroups * 8)) {}
  double metadata_bytes_per_slot() const { return (8.0 + 1.0 + 4.0) / 8.0; }
  void insert(u64 k, u64 v) {
    const u64 h = mix64(k);
    std::size_t g = home(h, ngroups);
    for (;;) {
      const u64 empties = zero_bytes(tags[g]);
      if (empties != 0) {
        const u64 pref = empties & ((h >> 43) & 1 ? 0x8080808000000000ULL : 0x0000000080808080ULL);
        const unsigned s = first_slot(pref != 0 ? pref : empties);
        tags[g] |= u64{tag_of(h)} << (s * 8);
        slots[g * 8 + s] = {k, v};
        return;
      }
      overflow[g] |= static_cast<std::uint8_t>(1u << oclass(h));
      g = g + 1 == ngroups ? 0 : g + 1;
    }
  }
  bool find(u64 k, u64& v) const {
    const u64 h = mix64(k);
    std::size_t g = home(h, ngroups);
    if constexpr (Speculate) prefetch(&slots[g * 8 + ((h >> 43) & 1 ? 4 : 0)]);
    for (;;) {
      const u64 m = zero_bytes(tags[g] ^ (kLsb * tag_of(h)));
      if (m != 0) {
        const u32 s1 = seq[g];
        compiler_barrier();
        for (u64 x = zero_bytes(tags[g] ^ (kLsb * tag_of(h))); x; x &= x - 1) {
          const Slot& e = slots[g * 8 + first_slot(x)];
          if (e.key == k) {
            v = e.value;
            compiler_barrier();
            if (seq[g] == s1) return true;
          }
        }
      }
      if ((overflow[g] & (1u << oclass(h))) == 0) return false;
      g = g + 1 == ngroups ? 0 : g + 1;
    }
  }
};

// ---- D and Ds: dense tags ----------------------------------------------------------------------

struct alignas(16) DTags {
  std::uint8_t b[16];  // b[0..14] tags, b[15] overflow bits
};

inline unsigned match15(const DTags& t, std::uint8_t tag) {
#if defined(__SSE2__)
  const __m128i x = _mm_load_si128(reinterpret_cast<const __m128i*>(t.b));
  return static_cast<unsigned>(
             _mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(static_cast<char>(tag))))) &
         0x7fffu;
#else
  unsigned m = 0;
  for (unsigned i = 0; i < 15; ++i) m |= unsigned{t.b[i] == tag} << i;
  return m;
#endif
}
inline unsigned empty15(const DTags& t) { return match15(t, 0); }

template <bool Speculate>
struct LayoutD {
  static constexpr const char* name = Speculate ? "Ds" : "D";
  std::size_t ngroups;
  std::unique_ptr<DTags[]> tags;
  std::unique_ptr<u32[]> seq;
  std::unique_ptr<Slot[], LayoutP::Free> slots;  // 16 per group (15 used): quarters are lines
  explicit LayoutD(std::size_t slots_wanted)
      : ngroups((slots_wanted + 14) / 15),
        tags(new DTags[ngroups]()),
        seq(new u32[ngroups]()),
        slots(LayoutP::alloc_slots(ngroups * 16)) {}
  double metadata_bytes_per_slot() const { return 20.0 / 15.0; }
  static unsigned quarter(u64 h) { return (h >> 43) & 3; }
  void insert(u64 k, u64 v) {
    const u64 h = mix64(k);
    std::size_t g = home(h, ngroups);
    for (;;) {
      DTags& t = tags[g];
      const unsigned empties = empty15(t);
      if (empties != 0) {
        const unsigned pref = empties & (0xfu << (4 * quarter(h)));
        const unsigned s = static_cast<unsigned>(__builtin_ctz(pref != 0 ? pref : empties));
        t.b[s] = tag_of(h);
        slots[g * 16 + s] = {k, v};
        return;
      }
      t.b[15] |= static_cast<std::uint8_t>(1u << oclass(h));
      g = g + 1 == ngroups ? 0 : g + 1;
    }
  }
  bool find(u64 k, u64& v) const {
    const u64 h = mix64(k);
    std::size_t g = home(h, ngroups);
    if constexpr (Speculate) prefetch(&slots[g * 16 + 4 * quarter(h)]);
    for (;;) {
      const DTags& t = tags[g];
      const unsigned m = match15(t, tag_of(h));
      if (m != 0) {
        // The reader protocol: the version, then the tags again (the copy it may trust), the slot,
        // the version again.
        const u32 s1 = seq[g];
        compiler_barrier();
        for (unsigned x = m & match15(t, tag_of(h)); x; x &= x - 1) {
          const Slot& e = slots[g * 16 + static_cast<unsigned>(__builtin_ctz(x))];
          if (e.key == k) {
            v = e.value;
            compiler_barrier();
            if (seq[g] == s1) return true;
          }
        }
      }
      if ((t.b[15] & (1u << oclass(h))) == 0) return false;
      g = g + 1 == ngroups ? 0 : g + 1;
    }
  }
};

// ---- driver --------------------------------------------------------------------------------

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class L>
void run(std::size_t n, double load, int reps) {
  const std::size_t slots_wanted = static_cast<std::size_t>(static_cast<double>(n) / load);
  L table(slots_wanted);
  // Insert in a random order (a permutation of 0..n-1), as the bench's prefill threads do.
  std::vector<u64> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  u64 s = 12345;
  for (std::size_t i = n; i > 1; --i) {
    s += kGolden;
    std::swap(order[i - 1], order[lemire(fmix(s), i)]);
  }
  for (u64 i : order) table.insert(key_of(i), i);
  order = {};
  for (int r = 0; r < reps; ++r) {
    for (int absent = 0; absent < 2; ++absent) {
      u64 rng = absent ? 4 : 3, found = 0, bad = 0;
      const auto t0 = std::chrono::steady_clock::now();
      for (std::size_t q = 0; q < n; ++q) {
        rng += kGolden;
        const u64 i = lemire(fmix(rng), n) + (absent ? u64{1} << 63 : 0);
        u64 v = 0;
        if (table.find(key_of(i), v)) {
          ++found;
          bad += v != i;
        }
      }
      const double sec = seconds_since(t0);
      const bool ok = bad == 0 && found == (absent ? 0 : n);
      std::printf(
          "{\"layout\":\"%s\",\"workload\":\"%s\",\"n\":%zu,\"load\":%.3f,\"rep\":%d,"
          "\"mops\":%.2f,\"metadata_bytes_per_slot\":%.3f,\"check\":\"%s\"}\n",
          L::name, absent ? "W4" : "W3", n, load, r, static_cast<double>(n) / sec / 1e6,
          table.metadata_bytes_per_slot(), ok ? "ok" : "FAIL");
      std::fflush(stdout);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 10'000'000;
  const double load = argc > 2 ? std::strtod(argv[2], nullptr) : 0.78;
  const int reps = argc > 3 ? std::atoi(argv[3]) : 3;
  const char* only = argc > 4 ? argv[4] : "";
  if (n == 0 || load <= 0 || load > 0.95 || reps <= 0) {
    std::fprintf(stderr, "usage: layout_study [N] [load in (0, 0.95]] [reps] [P|D|Ds|T|Tn]\n");
    return 2;
  }
  if (!*only || !std::strcmp(only, "P")) run<LayoutP>(n, load, reps);
  if (!*only || !std::strcmp(only, "D")) run<LayoutD<false>>(n, load, reps);
  if (!*only || !std::strcmp(only, "Ds")) run<LayoutD<true>>(n, load, reps);
  if (!*only || !std::strcmp(only, "T")) run<LayoutT<true>>(n, load, reps);
  if (!*only || !std::strcmp(only, "Tn")) run<LayoutT<false>>(n, load, reps);
  return 0;
}
