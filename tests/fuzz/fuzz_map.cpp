// tests/fuzz/fuzz_map.cpp: libFuzzer target for pardict::concurrent_map.
//
// The input bytes are decoded into a sequence of operations on small int32 keys (0..255, or 0..1023
// when the operation byte's top bit is set), so tables grow, shrink, collide and get cleared within
// a few hundred bytes. Every operation is replayed against a std::unordered_map model; any
// difference in a return value, a looked-up value or the size aborts. At the end both maps are
// compared in full. Each input is replayed twice: with pardict::hash and with a hasher that sends
// every key to one of four hash values (long probe sequences, overflow bits, groups filling up).
//
// Build (as CMake does): clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude
//   tests/fuzz/fuzz_map.cpp
// Without libFuzzer: add -DPARDICT_FUZZ_STANDALONE; the binary then replays the files named on its
// command line, or, with none, a fixed number of pseudo-random inputs.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pardict/concurrent_map.hpp"

namespace {

[[noreturn]] void diverged(const char* what, int line) {
  std::fprintf(stderr, "pardict fuzz: map diverged from the model: %s (fuzz_map.cpp:%d)\n", what,
               line);
  std::abort();
}
#define FUZZ_CHECK(cond)                    \
  do {                                      \
    if (!(cond)) diverged(#cond, __LINE__); \
  } while (0)

class byte_reader {
 public:
  byte_reader(const std::uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}
  bool empty() const { return p_ == end_; }
  std::uint8_t byte() { return p_ == end_ ? 0 : *p_++; }
  std::uint16_t u16() {
    const std::uint16_t lo = byte();
    return static_cast<std::uint16_t>(lo | (byte() << 8));
  }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

// Four distinct hash values for all keys.
struct clumped_hash {
  std::size_t operator()(std::int32_t k) const noexcept {
    return static_cast<std::size_t>(k & 3) * 0x9E3779B97F4A7C15ull;
  }
};

using key_t_ = std::int32_t;
using val_t = std::int64_t;
using model_type = std::unordered_map<key_t_, val_t>;

std::int64_t combine(std::int64_t stored, std::int64_t x, pardict::combine_op op) {
  switch (op) {
    case pardict::combine_op::assign:
      return x;
    case pardict::combine_op::add:
      return stored + x;
    case pardict::combine_op::min:
      return x < stored ? x : stored;
    case pardict::combine_op::max:
      return stored < x ? x : stored;
  }
  return stored;
}

template <class Map>
void expect_equal(const Map& m, const model_type& model) {
  FUZZ_CHECK(m.size() == model.size());
  FUZZ_CHECK(m.empty() == model.empty());
  std::size_t visited = 0;
  const std::size_t n = m.cvisit_all([&](const typename Map::value_type& p) {
    ++visited;
    const auto it = model.find(p.first);
    FUZZ_CHECK(it != model.end());
    FUZZ_CHECK(it->second == p.second);
  });
  FUZZ_CHECK(n == model.size());
  FUZZ_CHECK(visited == model.size());
  for (const auto& [k, v] : model) {
    const auto got = m.find(k);
    FUZZ_CHECK(got.has_value());
    FUZZ_CHECK(*got == v);
  }
}

template <class Hash>
void replay(const std::uint8_t* data, std::size_t size) {
  using map_type = pardict::concurrent_map<key_t_, val_t, Hash>;
  using value_type = typename map_type::value_type;
  map_type m;
  model_type model;
  map_type other;  // merge source
  model_type other_model;
  byte_reader in(data, size);
  auto read_key = [&](std::uint8_t op_byte) -> key_t_ {
    return (op_byte & 0x80) ? static_cast<key_t_>(in.u16() % 1024) : static_cast<key_t_>(in.byte());
  };
  while (!in.empty()) {
    const std::uint8_t op_byte = in.byte();
    const key_t_ k = read_key(op_byte);
    const val_t v = static_cast<std::int8_t>(in.byte());
    const auto it = model.find(k);
    const bool present = it != model.end();
    switch (op_byte % 22) {
      case 0:
        FUZZ_CHECK(m.insert(value_type(k, v)) == !present);
        model.try_emplace(k, v);
        break;
      case 1:
        FUZZ_CHECK(m.insert_or_assign(k, v) == !present);
        model[k] = v;
        break;
      case 2:
        FUZZ_CHECK(m.erase(k) == (present ? 1u : 0u));
        model.erase(k);
        break;
      case 3: {
        const auto got = m.find(k);
        FUZZ_CHECK(got.has_value() == present);
        if (present) FUZZ_CHECK(*got == it->second);
        FUZZ_CHECK(m.contains(k) == present);
        FUZZ_CHECK(m.count(k) == (present ? 1u : 0u));
        break;
      }
      case 4:
        FUZZ_CHECK(m.visit(k, [&](value_type& p) { p.second += v; }) == (present ? 1u : 0u));
        if (present) it->second += v;
        break;
      case 5:
        FUZZ_CHECK(m.try_emplace_or_visit(k, v, [](value_type& p) { ++p.second; }) == !present);
        if (present) {
          ++it->second;
        } else {
          model.emplace(k, v);
        }
        break;
      case 6:
        m.reserve(in.u16() % 2048);
        break;
      case 7:
        m.rehash(in.u16() % 2048);
        break;
      case 8:
        if (v % 4 == 0) {  // keep clears rare so the tables get large
          m.clear();
          model.clear();
        }
        break;
      case 9: {
        const val_t mask = (v & 7) + 1;
        std::size_t expected = 0;
        for (auto i = model.begin(); i != model.end();) {
          if (((i->second + i->first) % mask) == 0) {
            i = model.erase(i);
            ++expected;
          } else {
            ++i;
          }
        }
        FUZZ_CHECK(m.erase_if([&](value_type& p) { return ((p.second + p.first) % mask) == 0; }) ==
                   expected);
        break;
      }
      case 10: {
        const std::size_t n = static_cast<std::uint8_t>(v) % 40;
        const auto op = static_cast<pardict::combine_op>(n % 4);
        std::vector<key_t_> keys;
        std::vector<val_t> vals;
        std::size_t expected_new = 0;
        for (std::size_t i = 0; i < n; ++i) {
          const key_t_ bk = read_key(op_byte);
          const val_t bv = static_cast<std::int8_t>(in.byte());
          keys.push_back(bk);
          vals.push_back(bv);
          const auto [mi, inserted] = model.try_emplace(bk, bv);
          if (inserted) {
            ++expected_new;
          } else {
            mi->second = combine(mi->second, bv, op);
          }
        }
        FUZZ_CHECK(m.upsert_many(keys, vals, op) == expected_new);
        break;
      }
      case 11: {
        const std::size_t n = static_cast<std::uint8_t>(v) % 40;
        std::vector<key_t_> keys;
        for (std::size_t i = 0; i < n; ++i) keys.push_back(read_key(op_byte));
        constexpr val_t sentinel = 0x7EADBEEF;
        std::vector<val_t> out(n, sentinel);
        std::unique_ptr<bool[]> found(new bool[n + 1]);
        for (std::size_t i = 0; i < n; ++i) found[i] = (i % 2 == 0);
        std::size_t expected = 0;
        const std::size_t got = m.find_many(keys, out, std::span<bool>(found.get(), n));
        for (std::size_t i = 0; i < n; ++i) {
          const auto mi = model.find(keys[i]);
          FUZZ_CHECK(found[i] == (mi != model.end()));
          if (mi != model.end()) {
            ++expected;
            FUZZ_CHECK(out[i] == mi->second);
          } else {
            FUZZ_CHECK(out[i] == sentinel);
          }
        }
        FUZZ_CHECK(got == expected);
        std::unique_ptr<bool[]> found2(new bool[n + 1]);
        FUZZ_CHECK(m.contains_many(keys, std::span<bool>(found2.get(), n)) == expected);
        for (std::size_t i = 0; i < n; ++i) FUZZ_CHECK(found2[i] == found[i]);
        break;
      }
      case 12: {
        // Feed the second map a few elements, then merge it into the first.
        const std::size_t n = static_cast<std::uint8_t>(v) % 16;
        for (std::size_t i = 0; i < n; ++i) {
          const key_t_ ok = read_key(op_byte);
          const val_t ov = static_cast<std::int8_t>(in.byte());
          FUZZ_CHECK(other.insert_or_assign(ok, ov) == (other_model.count(ok) == 0));
          other_model[ok] = ov;
        }
        std::size_t expected = 0;
        for (auto i = other_model.begin(); i != other_model.end();) {
          if (model.emplace(i->first, i->second).second) {
            ++expected;
            i = other_model.erase(i);
          } else {
            ++i;
          }
        }
        FUZZ_CHECK(m.merge(other) == expected);
        FUZZ_CHECK(other.size() == other_model.size());
        break;
      }
      case 13: {
        const bool erase = present && (it->second % 2 == 0);
        FUZZ_CHECK(m.erase_if(k, [](value_type& p) { return p.second % 2 == 0; }) ==
                   (erase ? 1u : 0u));
        if (erase) model.erase(it);
        break;
      }
      case 14:
        FUZZ_CHECK(m.try_emplace(k, v) == !present);
        model.try_emplace(k, v);
        break;
      case 15: {
        const std::size_t n = static_cast<std::uint8_t>(v) % 24;
        std::vector<key_t_> keys;
        std::vector<val_t> vals;
        std::size_t expected_new = 0;
        for (std::size_t i = 0; i < n; ++i) {
          keys.push_back(read_key(op_byte));
          vals.push_back(static_cast<std::int8_t>(in.byte()));
          expected_new += model.insert_or_assign(keys.back(), vals.back()).second;
        }
        FUZZ_CHECK(m.insert_or_assign_many(keys, vals) == expected_new);
        break;
      }
      case 16: {
        int calls = 0;
        FUZZ_CHECK(m.insert_or_visit(value_type(k, v), [&](value_type& p) {
          ++calls;
          p.second -= 1;
        }) == !present);
        FUZZ_CHECK(calls == (present ? 1 : 0));
        if (present) {
          --it->second;
        } else {
          model.emplace(k, v);
        }
        break;
      }
      case 17: {
        val_t sum = 0, model_sum = 0;
        std::size_t n = m.cvisit_all([&](const value_type& p) { sum += p.second; });
        for (const auto& kv : model) model_sum += kv.second;
        FUZZ_CHECK(n == model.size());
        FUZZ_CHECK(sum == model_sum);
        break;
      }
      case 18: {
        // Copy, compare, and continue on the copy (swapped in) or a moved-to map.
        map_type copy(m);
        FUZZ_CHECK(copy == m);
        if (v % 2) {
          m.swap(copy);
        } else {
          map_type moved(std::move(copy));
          m = std::move(moved);
        }
        FUZZ_CHECK(m.size() == model.size());
        break;
      }
      case 19: {
        int calls = 0;
        FUZZ_CHECK(m.visit_all([&](value_type& p) {
          ++calls;
          p.second ^= 1;
        }) == model.size());
        for (auto& kv : model) kv.second ^= 1;
        FUZZ_CHECK(calls == static_cast<int>(model.size()));
        break;
      }
      case 20:
        FUZZ_CHECK(m.bucket_count() >= m.size());
        FUZZ_CHECK(m.load_factor() <= 1.0);
        break;
      default: {
        std::optional<val_t> seen;
        FUZZ_CHECK(m.cvisit(k, [&](const value_type& p) { seen = p.second; }) ==
                   (present ? 1u : 0u));
        FUZZ_CHECK(seen == (present ? std::optional<val_t>(it->second) : std::nullopt));
      }
    }
    FUZZ_CHECK(m.size() == model.size());
  }
  expect_equal(m, model);
  expect_equal(other, other_model);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  replay<pardict::hash<key_t_>>(data, size);
  replay<clumped_hash>(data, size);
  return 0;
}

#ifdef PARDICT_FUZZ_STANDALONE
#include <fstream>
#include <iterator>
#include <random>

int main(int argc, char** argv) {
  if (argc > 1) {
    for (int i = 1; i < argc; ++i) {
      std::ifstream f(argv[i], std::ios::binary);
      const std::vector<char> bytes((std::istreambuf_iterator<char>(f)),
                                    std::istreambuf_iterator<char>());
      LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    }
    return 0;
  }
  std::mt19937_64 rng(20240601);
  for (int run = 0; run < 2000; ++run) {
    std::vector<std::uint8_t> bytes(rng() % 4096);
    for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  }
  std::puts("pardict fuzz: 2000 random inputs replayed without divergence");
  return 0;
}
#endif
