// tests/cpp/test_hash.cpp: pardict::hash, the default hasher. Checks that it is consistent with
// key equality (-0.0 == 0.0, string == string_view, composite keys) and that it spreads structured
// inputs (sequential ints, strided ints, small integral doubles, numbered strings, coordinate
// pairs) over the low, middle and top bits, which the table uses for shard, group and tag choice.
// Distribution checks are chi-square tests with a loose bound (a uniform hash lands near B-1 with
// standard deviation sqrt(2(B-1)); the bound is ~11 deviations away).
#include <gtest/gtest.h>

#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_set>
#include <utility>
#include <vector>

#include "pardict/concurrent_map.hpp"
#include "pardict/hash.hpp"
#include "support/counting.hpp"

namespace {

constexpr unsigned window_bits = 10;
constexpr std::size_t buckets = std::size_t{1} << window_bits;

// Chi-square statistic of the bucket histogram of bits [shift, shift + window_bits) of the hashes.
double chi_square(const std::vector<std::uint64_t>& hashes, unsigned shift) {
  std::vector<double> histogram(buckets, 0.0);
  for (const auto h : hashes) histogram[(h >> shift) & (buckets - 1)] += 1.0;
  const double expected = static_cast<double>(hashes.size()) / static_cast<double>(buckets);
  double chi2 = 0.0;
  for (const double observed : histogram)
    chi2 += (observed - expected) * (observed - expected) / expected;
  return chi2;
}

// Requires the hashes to look uniform in the low, middle and top bit windows.
void expect_spread(const std::vector<std::uint64_t>& hashes, const std::string& what) {
  ASSERT_GE(hashes.size(), 16 * buckets) << "too few samples for a meaningful histogram";
  const double bound = 1.5 * static_cast<double>(buckets);
  for (const unsigned shift : {0u, 7u, 27u, 44u, 64u - window_bits}) {
    EXPECT_LT(chi_square(hashes, shift), bound)
        << what << ": bits [" << shift << ", " << shift + window_bits << ") are badly distributed";
  }
}

template <class T>
std::uint64_t h(const T& x) {
  return static_cast<std::uint64_t>(pardict::hash<T>{}(x));
}

constexpr std::size_t samples = 1u << 16;

// --- interface
// -------------------------------------------------------------------------------------------------

TEST(Hash, ResultConvertsToSizeTAndIsDeterministic) {
  static_assert(std::is_convertible_v<decltype(pardict::hash<int>{}(1)), std::size_t>);
  static_assert(
      std::is_convertible_v<decltype(pardict::hash<std::string>{}(std::string())), std::size_t>);
  EXPECT_EQ(pardict::hash<std::int64_t>{}(12345), pardict::hash<std::int64_t>{}(12345));
  const pardict::hash<std::string> h1, h2;
  EXPECT_EQ(h1("hello"), h2(std::string("hello")));
}

// --- integers
// -------------------------------------------------------------------------------------------------

TEST(Hash, SequentialIntegersSpreadOverAllBitWindows) {
  std::vector<std::uint64_t> hs;
  for (std::uint64_t i = 0; i < samples; ++i) hs.push_back(h(i));
  expect_spread(hs, "uint64 0..2^16");
  hs.clear();
  for (std::int32_t i = 0; i < static_cast<std::int32_t>(samples); ++i) hs.push_back(h(i - 30000));
  expect_spread(hs, "int32 -30000..");
}

TEST(Hash, StridedIntegersSpreadOverAllBitWindows) {
  for (const unsigned stride_log2 : {3u, 12u, 32u, 48u}) {
    std::vector<std::uint64_t> hs;
    for (std::uint64_t i = 0; i < samples; ++i) hs.push_back(h(i << stride_log2));
    expect_spread(hs, "keys i << " + std::to_string(stride_log2));
  }
}

TEST(Hash, DistinctSixtyFourBitIntegersNeverCollide) {
  // A bijective finaliser maps distinct 64-bit inputs to distinct outputs.
  std::unordered_set<std::uint64_t> seen;
  for (std::uint64_t i = 0; i < (1u << 18); ++i) {
    ASSERT_TRUE(seen.insert(h(i)).second) << "collision at " << i;
    ASSERT_TRUE(seen.insert(h(~i)).second) << "collision at ~" << i;
  }
}

TEST(Hash, FlippingAnyInputBitFlipsAboutHalfTheOutputBits) {
  std::mt19937_64 rng(0xA7A1A7C4E);
  constexpr int trials = 2000;
  for (int bit = 0; bit < 64; ++bit) {
    std::uint64_t flipped_bits = 0;
    std::array<int, 64> per_output{};
    for (int t = 0; t < trials; ++t) {
      const std::uint64_t x = rng();
      const std::uint64_t d = h(x) ^ h(x ^ (std::uint64_t{1} << bit));
      flipped_bits += static_cast<std::uint64_t>(std::popcount(d));
      for (int o = 0; o < 64; ++o) per_output[o] += static_cast<int>((d >> o) & 1);
    }
    const double mean = static_cast<double>(flipped_bits) / trials;
    EXPECT_GT(mean, 24.0) << "input bit " << bit;
    EXPECT_LT(mean, 40.0) << "input bit " << bit;
    for (int o = 0; o < 64; ++o) {
      const double p = static_cast<double>(per_output[o]) / trials;
      ASSERT_TRUE(p > 0.2 && p < 0.8)
          << "input bit " << bit << " flips output bit " << o << " with probability " << p;
    }
  }
}

TEST(Hash, SmallIntegerTypesAreHashed) {
  std::unordered_set<std::uint64_t> seen;
  for (int i = 0; i < 256; ++i) seen.insert(h(static_cast<std::uint8_t>(i)));
  EXPECT_EQ(seen.size(), 256u);
  EXPECT_NE(h(std::int16_t{1}), h(std::int16_t{2}));
  EXPECT_EQ(h(std::int32_t{-7}), h(std::int32_t{-7}));
  EXPECT_NE(h(std::int32_t{-7}), h(std::int32_t{7}));
}

// --- floating point
// --------------------------------------------------------------------------------------------

TEST(Hash, SignedZerosHashAlike) {
  EXPECT_EQ(h(-0.0), h(0.0));
  EXPECT_EQ(h(-0.0f), h(0.0f));
  EXPECT_EQ(h(-0.0L), h(0.0L));
  EXPECT_NE(h(1.0), h(-1.0));
  EXPECT_NE(h(1.0f), h(-1.0f));
  EXPECT_NE(h(0.0), h(std::numeric_limits<double>::denorm_min()));
  EXPECT_NE(h(-0.0), h(-std::numeric_limits<double>::denorm_min()));
}

TEST(Hash, IntegralDoublesAndFloatsSpreadOverAllBitWindows) {
  // Small integral doubles have all-zero low mantissa bits; the hash must not inherit that.
  std::vector<std::uint64_t> hs;
  for (std::uint64_t i = 0; i < samples; ++i) hs.push_back(h(static_cast<double>(i)));
  expect_spread(hs, "double 0.0 .. 65535.0");
  hs.clear();
  for (std::uint64_t i = 0; i < samples; ++i) hs.push_back(h(static_cast<float>(i) * 0.25f));
  expect_spread(hs, "float multiples of 0.25");
}

// --- the engine's hash (in-order placement)
// -------------------------------------------------------------------------------------------------

template <class T>
std::uint64_t eh(T x) {
  return pardict::detail::engine_hash<T, pardict::hash<T>>::of(pardict::hash<T>{}, x);
}

// Small integers keep their own bits where the engine takes the shard (top 6 bits: k mod 64) and
// the position (low 32: k / 64); the tag, class and half bits (32..57) stay mixed.
TEST(EngineHash, SmallIntegersKeepTheirBitsWhereTheEnginePlacesThem) {
  for (const std::int64_t k : {std::int64_t{0}, std::int64_t{1}, std::int64_t{63}, std::int64_t{64},
                               std::int64_t{123456789}, std::int64_t{-1}, std::int64_t{-65},
                               (std::int64_t{1} << 37) - 1, -(std::int64_t{1} << 37)}) {
    const std::uint64_t x = eh(k);
    EXPECT_EQ(x >> 58, static_cast<std::uint64_t>(k & 63)) << k;
    EXPECT_EQ(static_cast<std::uint32_t>(x), static_cast<std::uint32_t>(k >> 6)) << k;
    EXPECT_EQ(x & 0x03ffffff00000000ULL,
              pardict::detail::mix64(static_cast<std::uint64_t>(k)) & 0x03ffffff00000000ULL)
        << k;
    EXPECT_EQ(eh(static_cast<double>(k)), x) << "float(k) placed as k: " << k;
  }
  EXPECT_EQ(eh(std::int32_t{-7}), eh(std::int64_t{-7}));
  EXPECT_EQ(eh(std::uint8_t{200}), eh(std::int64_t{200}));
  EXPECT_EQ(eh(5.0f), eh(std::int64_t{5}));
}

// Outside the small range, and for fractional floats, NaN and infinities: pardict::hash itself.
TEST(EngineHash, OtherKeysKeepTheMixedHash) {
  for (const std::int64_t k :
       {std::int64_t{1} << 37, -(std::int64_t{1} << 37) - 1,
        std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::min()}) {
    EXPECT_EQ(eh(k), h(k)) << k;
  }
  EXPECT_EQ(eh(std::numeric_limits<std::uint64_t>::max() - 3), eh(std::int64_t{-4}));
  for (const double x :
       {0.5, -2.25, 1e300, 137438953472.0, -137438953473.0, std::numeric_limits<double>::infinity(),
        std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::denorm_min()}) {
    EXPECT_EQ(eh(x), h(x)) << x;
  }
  EXPECT_EQ(eh(-0.0), eh(0.0));
  EXPECT_EQ(eh(-0.0f), eh(std::int64_t{0}));
  // Hashers other than pardict::hash are used as they are.
  struct custom {
    std::uint64_t operator()(std::int64_t k) const noexcept {
      return ~static_cast<std::uint64_t>(k);
    }
  };
  EXPECT_FALSE((pardict::detail::engine_hash<std::int64_t, custom>::in_order));
  EXPECT_EQ((pardict::detail::engine_hash<std::int64_t, custom>::of(custom{}, 5)), ~5ULL);
  EXPECT_FALSE((pardict::detail::engine_hash<std::string, pardict::hash<std::string>>::in_order));
}

// --- strings
// -------------------------------------------------------------------------------------------------

TEST(Hash, StringHashDependsOnContentOnly) {
  const std::string a = "the quick brown fox";
  const std::string b(a.begin(), a.end());  // separate buffer
  EXPECT_EQ(h(a), h(b));
  EXPECT_EQ(h(a), h(std::string_view(a)))
      << "std::string and std::string_view of equal text hash differently";
  EXPECT_EQ(h(std::string()), h(std::string()));
  EXPECT_NE(h(std::string("a")), h(std::string("b")));
  EXPECT_NE(h(std::string("ab")), h(std::string("ba")));
  EXPECT_NE(h(std::string("a")), h(std::string("a\0", 2))) << "embedded NUL must count";
  EXPECT_NE(h(std::string("")), h(std::string("\0", 1)));
  const std::string long_a(1000, 'x');
  std::string long_b = long_a;
  long_b[999] = 'y';
  EXPECT_NE(h(long_a), h(long_b));
}

TEST(Hash, NumberedStringsSpreadOverAllBitWindows) {
  std::vector<std::uint64_t> hs;
  for (std::uint64_t i = 0; i < samples; ++i) hs.push_back(h("key" + std::to_string(i)));
  expect_spread(hs, "\"key<i>\"");
  std::unordered_set<std::uint64_t> distinct(hs.begin(), hs.end());
  EXPECT_EQ(distinct.size(), hs.size());
}

// --- composite keys
// --------------------------------------------------------------------------------------------

TEST(Hash, ArrayPairTupleAreConsistentWithEquality) {
  EXPECT_EQ(h(std::array<int, 3>{1, 2, 3}), h(std::array<int, 3>{1, 2, 3}));
  EXPECT_EQ(h(std::pair<int, std::string>{1, "x"}),
            h(std::pair<int, std::string>{1, std::string("x")}));
  EXPECT_EQ(h(std::tuple<int, std::string, double>{1, "x", 2.5}),
            h(std::tuple<int, std::string, double>{1, "x", 2.5}));
  // -0.0 == 0.0 inside composites too.
  EXPECT_EQ(h(std::array<double, 2>{-0.0, 1.0}), h(std::array<double, 2>{0.0, 1.0}));
  EXPECT_EQ(h(std::pair<double, int>{-0.0, 1}), h(std::pair<double, int>{0.0, 1}));
  EXPECT_EQ(h(std::tuple<int, float>{3, -0.0f}), h(std::tuple<int, float>{3, 0.0f}));
  // Nesting.
  using nested = std::pair<std::string, std::array<std::int64_t, 2>>;
  EXPECT_EQ(h(nested{"a", {1, 2}}), h(nested{"a", {1, 2}}));
  EXPECT_NE(h(nested{"a", {1, 2}}), h(nested{"a", {2, 1}}));
}

TEST(Hash, CompositeHashesAreOrderSensitive) {
  EXPECT_NE(h(std::array<int, 3>{0, 0, 1}), h(std::array<int, 3>{0, 1, 0}));
  EXPECT_NE(h(std::array<int, 3>{0, 0, 1}), h(std::array<int, 3>{1, 0, 0}));
  EXPECT_NE(h(std::tuple<int, int, int>{1, 2, 3}), h(std::tuple<int, int, int>{3, 2, 1}));
  // Coordinate-like pairs: (a, b) and (b, a) are different keys and must not always collide.
  std::size_t symmetric_collisions = 0;
  for (int a = 0; a < 64; ++a)
    for (int b = a + 1; b < 64; ++b)
      if (h(std::pair<int, int>{a, b}) == h(std::pair<int, int>{b, a})) ++symmetric_collisions;
  EXPECT_EQ(symmetric_collisions, 0u)
      << "hash(pair(a, b)) == hash(pair(b, a)): the pair hash is symmetric";
}

TEST(Hash, CoordinatePairsAndArraysSpreadWithoutCollisions) {
  std::vector<std::uint64_t> pairs, arrays;
  for (int x = 0; x < 256; ++x) {
    for (int y = 0; y < 256; ++y) {
      pairs.push_back(h(std::pair<int, int>{x, y}));
      arrays.push_back(h(std::array<std::int32_t, 2>{x, y}));
    }
  }
  expect_spread(pairs, "pair<int,int> grid 256x256");
  expect_spread(arrays, "array<int32,2> grid 256x256");
  EXPECT_EQ(std::unordered_set<std::uint64_t>(pairs.begin(), pairs.end()).size(), pairs.size())
      << "full 64-bit collisions among 65536 grid pairs";
  EXPECT_EQ(std::unordered_set<std::uint64_t>(arrays.begin(), arrays.end()).size(), arrays.size())
      << "full 64-bit collisions among 65536 grid arrays";
}

// --- fallback
// -------------------------------------------------------------------------------------------------

struct user_id {
  std::uint32_t v;
  // Unused by this test (it only hashes), but part of what makes user_id a key type; clang warns
  // about an unused friend in an anonymous namespace.
  [[maybe_unused]] friend bool operator==(user_id a, user_id b) { return a.v == b.v; }
};

}  // namespace

template <>
struct std::hash<user_id> {
  std::size_t operator()(user_id u) const noexcept { return u.v; }  // deliberately the identity
};

namespace {

TEST(Hash, FallbackMixesTheStdHashOfUserTypes) {
  std::vector<std::uint64_t> hs;
  for (std::uint32_t i = 0; i < samples; ++i) hs.push_back(h(user_id{i}));
  expect_spread(hs, "user type with identity std::hash");
  EXPECT_EQ(h(user_id{5}), h(user_id{5}));
}

// --- the map honours it
// ----------------------------------------------------------------------------------------

TEST(HashInMap, NegativeAndPositiveZeroAreOneDoubleKey) {
  pardict::concurrent_map<double, int> m;
  EXPECT_TRUE(m.insert({-0.0, 1}));
  EXPECT_FALSE(m.insert({0.0, 2}));
  EXPECT_EQ(m.size(), 1u);
  EXPECT_TRUE(m.contains(0.0));
  EXPECT_TRUE(m.contains(-0.0));
  EXPECT_EQ(m.find(0.0), std::optional<int>(1));
  EXPECT_FALSE(m.insert_or_assign(0.0, 3));
  EXPECT_EQ(m.find(-0.0), std::optional<int>(3));
  EXPECT_EQ(m.erase(0.0), 1u);
  EXPECT_TRUE(m.empty());
  // Stays true across growth: many other keys, then the zero again.
  EXPECT_TRUE(m.insert({0.0, 4}));
  for (int i = 1; i <= 20000; ++i) ASSERT_TRUE(m.insert({static_cast<double>(i), i}));
  EXPECT_FALSE(m.insert({-0.0, 5}));
  EXPECT_EQ(m.find(-0.0), std::optional<int>(4));
  EXPECT_EQ(m.size(), 20001u);
}

TEST(HashInMap, NegativeAndPositiveZeroAreOneFloatKey) {
  pardict::concurrent_map<float, int> m;
  EXPECT_TRUE(m.try_emplace(0.0f, 1));
  EXPECT_FALSE(m.try_emplace(-0.0f, 2));
  EXPECT_EQ(m.count(-0.0f), 1u);
  EXPECT_EQ(m.size(), 1u);
}

TEST(HashInMap, CompositeKeysWork) {
  pardict::concurrent_map<std::pair<int, int>, int> grid;
  for (int x = 0; x < 100; ++x)
    for (int y = 0; y < 100; ++y) ASSERT_TRUE(grid.insert({{x, y}, x * 1000 + y}));
  EXPECT_EQ(grid.size(), 10000u);
  for (int x = 0; x < 100; ++x)
    for (int y = 0; y < 100; ++y) ASSERT_EQ(grid.find({x, y}), std::optional<int>(x * 1000 + y));
  pardict::concurrent_map<std::tuple<std::string, double>, int> tuples;
  EXPECT_TRUE(tuples.insert({{"a", -0.0}, 1}));
  EXPECT_FALSE(tuples.insert({{"a", 0.0}, 2}));
  EXPECT_EQ(tuples.find({"a", 0.0}), std::optional<int>(1));
  pardict::concurrent_map<std::array<float, 3>, int> arrays;
  EXPECT_TRUE(arrays.insert({{1.0f, 2.0f, 3.0f}, 1}));
  EXPECT_FALSE(arrays.insert({{1.0f, 2.0f, 3.0f}, 2}));
  EXPECT_TRUE(arrays.insert({{3.0f, 2.0f, 1.0f}, 3}));
  EXPECT_EQ(arrays.size(), 2u);
}

}  // namespace
