// pardict_capi_ops: one C-ABI workload per run, for counting instructions per operation with
// callgrind (see README.md, "Measurements behind the design"). Each workload's timed part is one
// function, measured_<workload>, so that
//   valgrind --tool=callgrind --toggle-collect=measured_set pardict_capi_ops set
// counts exactly that part; the program also prints its wall time per operation.
//
//   set, insert, get  n distinct u64 -> u64 keys into a table presized for n (get: looks up the
//                     n keys after inserting them untimed); pardict_set / _insert / _get
//   add_skewed        pardict_combine_many(add) of n rows of i64 over ~n/20 distinct keys with a
//                     power-law skew (the bulk path's hot-key cache pays), one thread
//   add_uniform       the same over n distinct keys (the cache gives up)
//   add_ucs4          pardict_combine_many_ucs4(add) of n NumPy-style U8 words with a power-law
//                     skew into a str-keyed dictionary that already holds every word
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "blob.hpp"  // the C ABI's internal blob helpers (capi/)
#include "pardict_capi.h"

namespace {

std::uint64_t mix(std::uint64_t i) {
  std::uint64_t z = i + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// A rank in [1, n) drawn with density ~ 1/rank, from the i-th draw.
std::uint64_t skewed_rank(std::uint64_t i, std::uint64_t n) {
  const double u = static_cast<double>(mix(i) >> 11) * (1.0 / 9007199254740992.0);
  return static_cast<std::uint64_t>(std::exp(u * std::log(static_cast<double>(n))));
}

struct workload {
  std::int64_t n = 0;
  pardict_dict* d = nullptr;
  std::vector<std::uint64_t> keys;
  std::vector<std::int64_t> values;
  std::vector<std::uint32_t> chars;  // add_ucs4: n words of `width` code points
  std::vector<std::int64_t> miss_rows, miss_values;
};

constexpr std::int64_t width = 8;
constexpr std::int32_t i64_field[2] = {0, PARDICT_KIND_I64};

}  // namespace

// The measured parts. extern "C" and not inlined, so callgrind can find them by name.
extern "C" {
[[gnu::noinline]] std::int64_t measured_set(workload& w) {
  std::int64_t r = 0;
  std::uint64_t old;
  for (std::int64_t i = 0; i < w.n; ++i) {
    const std::uint64_t v = static_cast<std::uint64_t>(i);
    r += pardict_set(w.d, &w.keys[i], &v, &old);
  }
  return r;
}
[[gnu::noinline]] std::int64_t measured_insert(workload& w) {
  std::int64_t r = 0;
  for (std::int64_t i = 0; i < w.n; ++i) {
    const std::uint64_t v = static_cast<std::uint64_t>(i);
    r += pardict_insert(w.d, &w.keys[i], &v);
  }
  return r;
}
[[gnu::noinline]] std::int64_t measured_get(workload& w) {
  std::int64_t r = 0;
  std::uint64_t out = 0;
  for (std::int64_t i = 0; i < w.n; ++i) r += pardict_get(w.d, &w.keys[i], &out) + (out & 1);
  return r;
}
[[gnu::noinline]] std::int64_t measured_add_skewed(workload& w) {
  std::int64_t inserted = 0;
  pardict_combine_many(w.d, w.keys.data(), w.values.data(), w.n, PARDICT_OP_ADD, i64_field, 1, 1,
                       &inserted);
  return inserted;
}
[[gnu::noinline]] std::int64_t measured_add_uniform(workload& w) { return measured_add_skewed(w); }
[[gnu::noinline]] std::int64_t measured_add_ucs4(workload& w) {
  std::int64_t n_miss = 0;
  pardict_combine_many_ucs4(w.d, w.chars.data(), width, w.n, w.values.data(), sizeof(std::int64_t),
                            PARDICT_OP_ADD, i64_field, 1, 1, w.miss_rows.data(),
                            w.miss_values.data(), &n_miss);
  return n_miss;
}
}

namespace {

// Key blobs of the string dictionary: a numba unicode struct, zero-padded to the key class.
constexpr std::size_t str_key_words = pardict::capi::max_key_class / pardict::capi::word_bytes;

// A borrowed view (numba's unicode struct, no MemInfo) of word i: the dictionary may keep it,
// since this program's buffer outlives the dictionary.
void ucs4_key(const workload& w, std::int64_t i, std::uint64_t (&key)[str_key_words]) {
  const std::uint32_t* p = w.chars.data() + i * width;
  std::int64_t len = width;
  while (len > 0 && p[len - 1] == 0) --len;
  std::memset(key, 0, sizeof key);
  pardict::capi::write_borrowed_ucs4(key, p, len);
}

using measured_fn = std::int64_t (*)(workload&);

// Builds the workload's input (untimed) and returns its measured part.
measured_fn prepare(const std::string& what, workload& w) {
  std::int32_t status = 0;
  if (what == "set" || what == "insert" || what == "get") {
    for (std::int64_t i = 0; i < w.n; ++i) w.keys.push_back(mix(static_cast<std::uint64_t>(i)));
    w.d = pardict_new(8, 8, 0, 0, 0, w.n, &status);
    if (what == "set") return measured_set;
    if (what == "insert") return measured_insert;
    measured_insert(w);
    return measured_get;
  }
  w.values.assign(static_cast<std::size_t>(w.n), 1);
  if (what == "add_skewed" || what == "add_uniform") {
    const bool skewed = what == "add_skewed";
    for (std::int64_t i = 0; i < w.n; ++i) {
      const auto u = static_cast<std::uint64_t>(i);
      w.keys.push_back(skewed ? mix(skewed_rank(u, static_cast<std::uint64_t>(w.n) / 20)) : mix(u));
    }
    w.d = pardict_new(8, 8, 0, 0, 0, 0, &status);
    return skewed ? measured_add_skewed : measured_add_uniform;
  }
  if (what == "add_ucs4") {
    w.chars.assign(static_cast<std::size_t>(w.n * width), 0);
    for (std::int64_t i = 0; i < w.n; ++i) {
      const std::uint64_t word = skewed_rank(static_cast<std::uint64_t>(i), 50000);
      const std::int64_t len = 1 + static_cast<std::int64_t>(word % (width - 1));
      for (std::int64_t j = 0; j < len; ++j)
        w.chars[static_cast<std::size_t>(i * width + j)] =
            static_cast<std::uint32_t>('a' + (word >> (3 * j)) % 26);
    }
    w.d = pardict_new(PARDICT_NB_UNICODE_SIZE, 8, 0, 1, 0, 0, &status);
    if (pardict_key_class(PARDICT_NB_UNICODE_SIZE) > sizeof(std::uint64_t) * str_key_words)
      std::abort();
    // Every word once, so that the measured call finds them all.
    for (std::int64_t i = 0; i < w.n; ++i) {
      std::uint64_t key[str_key_words];
      ucs4_key(w, i, key);
      pardict_combine(w.d, key, &w.values[0], PARDICT_OP_ADD, i64_field, 1, nullptr);
    }
    w.miss_rows.resize(static_cast<std::size_t>(w.n));
    w.miss_values.resize(static_cast<std::size_t>(w.n));
    return measured_add_ucs4;
  }
  std::fprintf(stderr, "unknown workload %s\n", what.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: pardict_capi_ops set|insert|get|add_skewed|add_uniform|add_ucs4 [n]\n");
    return 2;
  }
  workload w;
  w.n = argc > 2 ? std::atoll(argv[2]) : std::int64_t{1} << 20;
  const measured_fn measured = prepare(argv[1], w);
  const auto t0 = std::chrono::steady_clock::now();
  const std::int64_t r = measured(w);
  const auto t1 = std::chrono::steady_clock::now();
  std::printf("%s n=%lld result=%lld len=%lld %.1f ns/op\n", argv[1], static_cast<long long>(w.n),
              static_cast<long long>(r), static_cast<long long>(pardict_len(w.d)),
              std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(w.n));
  pardict_free(w.d);
  return 0;
}
