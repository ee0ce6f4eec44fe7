// tests/cpp/test_in_order.cpp: in-order placement (concurrent_table.hpp, "In-order placement";
// hash.hpp, in_order_hash). Keys that are small integers and arrive in order must fill each
// shard's table front to back, every key in its home group; patterned keys that would pile up in
// such a table must move their shard to a seeded one (its seed is odd, shard_geometry shows it)
// and leave it with short walks; clear() starts in order again. Walks are measured without a
// clock, by probe_statistics. The engine hash itself is checked in test_hash.cpp; concurrent
// fills that make the fallback race with inserts and readers are in test_concurrency.cpp.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "pardict/concurrent_map.hpp"
#include "support/counting.hpp"

namespace {

using pardict_test::scaled;

template <class K>
using map_of = pardict::concurrent_map<K, std::int64_t>;
constexpr std::size_t shards = 64;

// The shard and home group an in-order table gives the small integer k (before the group count
// is applied): k mod 64, and k / 64 / 8.
std::int64_t shard_of(std::int64_t k) { return k & 63; }
std::int64_t group_line(std::int64_t k) { return (k >> 6) >> 3; }

template <class Map>
std::size_t seeded_shards(const Map& m) {
  std::size_t n = 0;
  for (std::size_t s = 0; s < shards; ++s) n += m.shard_geometry(s).first % 2;
  return n;
}

template <class Map>
void expect_short_walks(const Map& m, std::size_t elements, const std::string& what) {
  const pardict::probe_stats st = m.probe_statistics();
  ASSERT_EQ(st.elements, elements) << what;
  EXPECT_LE(static_cast<double>(st.total_groups), 1.5 * static_cast<double>(elements)) << what;
  EXPECT_LE(st.max_groups, 64u) << what;
}

template <class K>
class InOrderTest : public ::testing::Test {};
using in_order_keys = ::testing::Types<std::int64_t, std::int32_t, std::uint64_t, double, float>;
TYPED_TEST_SUITE(InOrderTest, in_order_keys);

// Keys 0..n-1 from empty (the table grows many times): every element in its home group, no shard
// falls back, and iteration (groups in order within a shard) meets each shard's keys in the order
// of their group line.
TYPED_TEST(InOrderTest, KeysInOrderFillEachShardFrontToBack) {
  using K = TypeParam;
  const std::size_t n = scaled(200000, 50000);
  map_of<K> m;
  for (std::size_t i = 0; i < n; ++i) ASSERT_TRUE(m.try_emplace(static_cast<K>(i), 1));
  const pardict::probe_stats st = m.probe_statistics();
  EXPECT_EQ(st.elements, n);
  EXPECT_EQ(st.max_groups, 1u) << "a key in order was placed away from its home group";
  EXPECT_EQ(seeded_shards(m), 0u);
  std::vector<std::int64_t> last(shards, -1);
  std::size_t out_of_order = 0;
  m.cvisit_all([&](const auto& x) {
    const auto k = static_cast<std::int64_t>(x.first);
    const auto s = static_cast<std::size_t>(shard_of(k));
    if (group_line(k) < last[s]) ++out_of_order;
    last[s] = group_line(k);
  });
  EXPECT_EQ(out_of_order, 0u) << "a shard's keys are not in the order of their positions";
}

// Random 64-bit keys never take the in-order hash: every shard's table turns seeded at its first
// growth. Small keys in order keep every shard in order through the same growth (above).
TEST(InOrder, RandomKeysGrowIntoSeededTables) {
  const std::size_t n = scaled(100000, 20000);
  map_of<std::uint64_t> m;
  for (std::size_t i = 0; i < n; ++i) ASSERT_TRUE(m.try_emplace(pardict_test::mix64(i), 1));
  EXPECT_EQ(seeded_shards(m), shards);
  for (std::size_t i = 0; i < n; ++i) ASSERT_TRUE(m.contains(pardict_test::mix64(i)));
  expect_short_walks(m, n, "random keys");
}

// Presized, then filled in order, and then in reverse: still one group per key.
TYPED_TEST(InOrderTest, ReservedThenFilledInEitherDirection) {
  using K = TypeParam;
  const std::size_t n = scaled(100000, 20000);
  map_of<K> up(n), down(n);
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(up.try_emplace(static_cast<K>(i), 1));
    ASSERT_TRUE(down.try_emplace(static_cast<K>(n - 1 - i), 1));
  }
  EXPECT_EQ(up.probe_statistics().max_groups, 1u);
  EXPECT_EQ(down.probe_statistics().max_groups, 1u);
  EXPECT_EQ(seeded_shards(up) + seeded_shards(down), 0u);
}

// Patterned keys: multiples of 2^k (all in shard 0 from k = 6 on, and on every 2^(k-9)-th
// group line from k = 9 on) and arithmetic sequences, ascending and descending, from empty (so
// through every group count of the growth). Each must end with every key found and short walks,
// whether its shards stayed in order (a group count that is not a power of two spreads a
// power-of-two stride) or fell back.
TEST(InOrder, PatternedKeysKeepWalksShort) {
  const std::size_t n = scaled(100000, 20000);
  struct pattern {
    std::string name;
    std::int64_t start, step;
  };
  std::vector<pattern> patterns;
  for (const int k : {3, 6, 9, 12, 16, 20, 24}) {
    // From 2^12 on the keys leave the small range (|k| < 2^37) partway, and are mixed there.
    patterns.push_back({"multiples of 2^" + std::to_string(k), 0, std::int64_t{1} << k});
  }
  patterns.push_back({"step 3 from -1000", -1000, 3});
  patterns.push_back({"step 64 * 4096 + 64", 7, 64 * 4096 + 64});
  patterns.push_back({"step 2^15 + 1", 5, (1 << 15) + 1});
  patterns.push_back({"descending step 2^14", 0, -(std::int64_t{1} << 14)});
  for (const pattern& p : patterns) {
    map_of<std::int64_t> m;
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_TRUE(m.try_emplace(p.start + static_cast<std::int64_t>(i) * p.step,
                                static_cast<std::int64_t>(i)))
          << p.name;
    }
    ASSERT_EQ(m.size(), n) << p.name;
    std::size_t missing = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const auto v = m.find(p.start + static_cast<std::int64_t>(i) * p.step);
      if (!v || *v != static_cast<std::int64_t>(i)) ++missing;
    }
    EXPECT_EQ(missing, 0u) << p.name;
    EXPECT_FALSE(m.contains(p.start - p.step)) << p.name;
    expect_short_walks(m, n, p.name);
  }
}

// Keys made to collide in an in-order table of known size: shard 0's group count g read from the
// map, then keys whose position k / 64 is a multiple of 8g, so that all have group 0 as home. The
// insert that walks past 8 full groups must move shard 0 to a seeded table, which spreads them;
// the other shards stay in order.
std::vector<std::int64_t> colliding_keys(std::size_t groups, std::size_t n) {
  std::vector<std::int64_t> keys;
  for (std::size_t j = 0; j < n; ++j)
    keys.push_back(static_cast<std::int64_t>(j * 8 * groups) << 6);
  return keys;
}

TEST(InOrder, KeysCollidingInOneGroupMoveTheirShardToASeed) {
  map_of<std::int64_t> m(scaled(200000, 20000));
  const std::size_t groups = m.shard_geometry(0).second;
  ASSERT_EQ(m.shard_geometry(0).first % 2, 0u) << "a fresh map's tables are in order";
  const std::vector<std::int64_t> keys = colliding_keys(groups, 400);
  for (const std::int64_t k : keys) ASSERT_TRUE(m.try_emplace(k, k + 1));
  EXPECT_EQ(m.shard_geometry(0).first % 2, 1u) << "shard 0 did not fall back";
  EXPECT_EQ(m.shard_geometry(0).second, groups) << "the fallback changes the seed, not the size";
  EXPECT_EQ(seeded_shards(m), 1u);
  for (const std::int64_t k : keys) {
    const auto v = m.find(k);
    EXPECT_TRUE(v && *v == k + 1) << k;
  }
  expect_short_walks(m, keys.size(), "colliding keys after the fallback");
}

// A shard that fell back keeps its seed through growth and erasure, and clear() starts in order.
TEST(InOrder, ClearStartsInOrderAgain) {
  const std::size_t n = scaled(50000, 20000);
  map_of<std::int64_t> m(n);
  const std::vector<std::int64_t> keys = colliding_keys(m.shard_geometry(0).second, 400);
  for (const std::int64_t k : keys) ASSERT_TRUE(m.try_emplace(k, 1));
  ASSERT_EQ(seeded_shards(m), 1u);
  // Growth keeps the seed.
  for (std::size_t i = 0; i < 4 * n; ++i) m.try_emplace(static_cast<std::int64_t>(i) * 64, 1);
  EXPECT_EQ(m.shard_geometry(0).first % 2, 1u);
  for (std::size_t i = 0; i < keys.size(); i += 2) ASSERT_EQ(m.erase(keys[i]), 1u);
  EXPECT_EQ(m.shard_geometry(0).first % 2, 1u);
  m.clear();
  for (std::size_t i = 0; i < n; ++i) ASSERT_TRUE(m.try_emplace(static_cast<std::int64_t>(i), 1));
  EXPECT_EQ(seeded_shards(m), 0u);
  EXPECT_EQ(m.probe_statistics().max_groups, 1u);
}

// Small and large keys, integral and fractional doubles, and both zeros in one map: equal keys
// stay one key whichever hash places them.
TEST(InOrder, MixedKeysOfOneMapStayDistinctAndFindable) {
  map_of<double> m;
  std::vector<double> keys;
  for (int i = -2000; i < 2000; ++i) {
    keys.push_back(i);
    keys.push_back(i + 0.5);
    keys.push_back(static_cast<double>(i) * 1e12);  // past 2^37 from |i| = 1 on
  }
  keys.push_back(137438953471.0);   // 2^37 - 1: the largest small integer
  keys.push_back(137438953472.0);   // 2^37: mixed
  keys.push_back(-137438953471.0);  // the smallest
  keys.push_back(-137438953472.0);
  std::size_t inserted = 0;
  for (const double k : keys) inserted += m.try_emplace(k, 1) ? 1 : 0;
  EXPECT_EQ(inserted, keys.size() - 1);  // 0 * 1e12 is 0
  EXPECT_FALSE(m.try_emplace(-0.0, 2)) << "-0.0 is the key 0.0";
  for (const double k : keys) EXPECT_TRUE(m.contains(k)) << k;
  EXPECT_FALSE(m.contains(0.25));
  EXPECT_FALSE(m.contains(2000.0));
}

}  // namespace
