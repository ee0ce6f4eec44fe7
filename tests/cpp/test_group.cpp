// tests/cpp/test_group.cpp: pardict_group_indices and pardict_group_indices_ucs4 (C ABI) against
// a sequential model (std::map from key to its rows, groups ordered by first row), at 1, 2, 3
// and 8 threads: the result must be the model's whatever the thread count. Sizes straddle the
// prefetch batch (16) and the one-worker threshold (32768 rows per worker).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "pardict_capi.h"

namespace {

struct csr {
  std::int64_t groups = -1;
  std::vector<std::int64_t> first, offsets, indices;
  bool operator==(const csr&) const = default;
};

// Groups rows by `key_of(row)` (a comparable canonical form) the slow way.
template <class KeyOf>
csr model(std::int64_t n, KeyOf key_of) {
  std::map<decltype(key_of(0)), std::int64_t> id;
  std::vector<std::vector<std::int64_t>> rows;
  for (std::int64_t r = 0; r < n; ++r) {
    auto [it, added] = id.try_emplace(key_of(r), static_cast<std::int64_t>(rows.size()));
    if (added) rows.emplace_back();
    rows[static_cast<std::size_t>(it->second)].push_back(r);
  }
  csr out;
  out.groups = static_cast<std::int64_t>(rows.size());
  out.offsets.push_back(0);
  for (const auto& g : rows) {
    out.first.push_back(g.front());
    out.indices.insert(out.indices.end(), g.begin(), g.end());
    out.offsets.push_back(static_cast<std::int64_t>(out.indices.size()));
  }
  return out;
}

// Calls `call(first, offsets, indices, &groups)` with room for n rows; the used part of each.
template <class Call>
csr run(std::int64_t n, Call call) {
  const auto m = static_cast<std::size_t>(n);
  csr out;
  out.first.assign(m, -7);
  out.offsets.assign(m + 1, -7);
  out.indices.assign(m, -7);
  EXPECT_EQ(call(out.first.data(), out.offsets.data(), out.indices.data(), &out.groups),
            PARDICT_OK);
  out.first.resize(static_cast<std::size_t>(out.groups));
  out.offsets.resize(static_cast<std::size_t>(out.groups) + 1);
  return out;
}

template <class T>
csr group(const std::vector<T>& keys, int32_t kind, int32_t threads) {
  const auto n = static_cast<std::int64_t>(keys.size());
  return run(n, [&](std::int64_t* f, std::int64_t* o, std::int64_t* i, std::int64_t* g) {
    return pardict_group_indices(keys.data(), n, kind, threads, f, o, i, g);
  });
}

const int32_t thread_counts[] = {1, 2, 3, 8};

TEST(GroupIndices, Int64AtEveryThreadCount) {
  std::mt19937_64 rng(1);
  for (std::int64_t n : {0, 1, 15, 16, 17, 1000, 40000, 200000}) {
    for (std::int64_t distinct : {1, 7, 1000, 1 << 20}) {
      std::vector<std::int64_t> keys(static_cast<std::size_t>(n));
      for (auto& k : keys) k = static_cast<std::int64_t>(rng() % distinct) - distinct / 2;
      const csr want = model(n, [&](std::int64_t r) { return keys[r]; });
      for (int32_t t : thread_counts)
        EXPECT_EQ(group(keys, PARDICT_KIND_I64, t), want) << n << " " << distinct << " " << t;
    }
  }
}

TEST(GroupIndices, SmallIntegerKinds) {
  std::mt19937 rng(2);
  std::vector<std::int8_t> i8(70000);
  std::vector<std::uint16_t> u16(70000);
  std::vector<std::uint8_t> b(70000);  // bool arrays: one byte, 0 or 1
  for (std::size_t r = 0; r < i8.size(); ++r) {
    i8[r] = static_cast<std::int8_t>(rng());
    u16[r] = static_cast<std::uint16_t>(rng() % 3000);
    b[r] = static_cast<std::uint8_t>(rng() % 2);
  }
  const auto n = static_cast<std::int64_t>(i8.size());
  for (int32_t t : thread_counts) {
    EXPECT_EQ(group(i8, PARDICT_KIND_I8, t), model(n, [&](std::int64_t r) { return i8[r]; }));
    EXPECT_EQ(group(u16, PARDICT_KIND_U16, t), model(n, [&](std::int64_t r) { return u16[r]; }));
    const csr got = group(b, PARDICT_KIND_U8, t);
    EXPECT_EQ(got, model(n, [&](std::int64_t r) { return b[r]; }));
    EXPECT_EQ(got.groups, 2);
  }
}

TEST(GroupIndices, FloatKeysAreCanonical) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  double other_nan;  // another NaN bit pattern: still the same group
  const std::uint64_t bits = 0x7ff4000000000123ULL | (std::uint64_t{1} << 63);
  std::memcpy(&other_nan, &bits, sizeof bits);
  std::vector<double> keys = {0.0, -0.0, nan, 1.5, other_nan, -inf, inf, -0.0, 1.5, -nan};
  const csr got = group(keys, PARDICT_KIND_F64, 1);
  EXPECT_EQ(got.groups, 5);
  EXPECT_EQ(got.first, (std::vector<std::int64_t>{0, 2, 3, 5, 6}));
  EXPECT_EQ(got.offsets, (std::vector<std::int64_t>{0, 3, 6, 8, 9, 10}));
  EXPECT_EQ(got.indices, (std::vector<std::int64_t>{0, 1, 7, 2, 4, 9, 3, 8, 5, 6}));

  std::mt19937 rng(3);
  std::vector<float> f(100000);
  for (auto& x : f) {
    const unsigned k = rng() % 50;
    x = k == 0 ? -0.0f : k == 1 ? std::nanf("") : static_cast<float>(k) / 4;
  }
  auto canon = [&](std::int64_t r) { return std::isnan(f[r]) ? 99.0f : f[r] + 0.0f; };
  const csr want = model(static_cast<std::int64_t>(f.size()), canon);
  for (int32_t t : thread_counts) EXPECT_EQ(group(f, PARDICT_KIND_F32, t), want);
}

TEST(GroupIndices, Ucs4StringsReadInPlace) {
  // Width 3; trailing NULs are padding, so "ab" is "ab\0" and differs from "a\0b".
  const std::u32string words[] = {U"ab", U"b", U"", U"abc", U"a\0b"};
  std::mt19937 rng(4);
  const std::size_t width = 3, n = 50000;
  std::vector<std::uint32_t> chars(n * width, 0);
  std::vector<std::size_t> which(n);
  for (std::size_t r = 0; r < n; ++r) {
    which[r] = rng() % 5;
    const std::u32string& w = words[which[r]];
    for (std::size_t i = 0; i < w.size(); ++i) chars[r * width + i] = w[i];
  }
  const csr want = model(static_cast<std::int64_t>(n), [&](std::int64_t r) { return which[r]; });
  for (int32_t t : thread_counts) {
    EXPECT_EQ(run(static_cast<std::int64_t>(n),
                  [&](std::int64_t* f, std::int64_t* o, std::int64_t* i, std::int64_t* g) {
                    return pardict_group_indices_ucs4(chars.data(), width, n, t, f, o, i, g);
                  }),
              want);
  }
}

TEST(GroupIndices, InvalidArguments) {
  std::int64_t key = 1, first = 0, offsets[2] = {}, indices = 0, groups = 0;
  EXPECT_EQ(pardict_group_indices(&key, 1, 0, 1, &first, offsets, &indices, &groups),
            PARDICT_ERR_INVALID);  // no such kind
  EXPECT_EQ(pardict_group_indices(&key, 1, 11, 1, &first, offsets, &indices, &groups),
            PARDICT_ERR_INVALID);
  EXPECT_EQ(
      pardict_group_indices(&key, -1, PARDICT_KIND_I64, 1, &first, offsets, &indices, &groups),
      PARDICT_ERR_INVALID);
  EXPECT_EQ(
      pardict_group_indices(nullptr, 1, PARDICT_KIND_I64, 1, &first, offsets, &indices, &groups),
      PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_group_indices(&key, 1, PARDICT_KIND_I64, 1, &first, offsets, &indices, nullptr),
            PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_group_indices_ucs4(&key, -1, 1, 1, &first, offsets, &indices, &groups),
            PARDICT_ERR_INVALID);
  // Empty input: no group, offsets = {0}; the key pointer may be null.
  offsets[0] = -1;
  EXPECT_EQ(
      pardict_group_indices(nullptr, 0, PARDICT_KIND_I64, 4, nullptr, offsets, nullptr, &groups),
      PARDICT_OK);
  EXPECT_EQ(groups, 0);
  EXPECT_EQ(offsets[0], 0);
}

}  // namespace
