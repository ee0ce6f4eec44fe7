// tests/cpp/test_load.cpp: concurrent_map::load_shard, the one-pass build of a shard from input
// grouped by shard (unpickling, pardict_load_many). Each test builds a map from another map's
// iteration order, from shuffled input, or from input that must be refused, and checks the
// result against the source map or a std::unordered_map model, then uses the loaded map
// (lookups, inserts that grow it, erases) to show that the installed tables are ordinary ones:
// the right size, budget and count. Typed over a plain-bytes element (optimistic reads) and a
// std::string one (locked reads, destructors).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pardict/concurrent_map.hpp"
#include "support/counting.hpp"
#include "support/generators.hpp"

namespace {

using pardict_test::counted;
using pardict_test::gen;
using pardict_test::scaled;

template <class K, class V>
struct load_case {
  using key = K;
  using value = V;
  using map = pardict::concurrent_map<K, V>;
  static V value_for(std::size_t i) {
    if constexpr (std::is_same_v<V, std::string>) {
      return "value " + std::to_string(i) + std::string(i % 3 == 0 ? 30 : 0, 'v');
    } else {
      return static_cast<V>(i) * V(3) + V(1);
    }
  }
};

using load_cases =
    ::testing::Types<load_case<std::int64_t, double>, load_case<std::string, std::string>>;

template <class C>
class LoadShardTest : public ::testing::Test {
 protected:
  using K = typename C::key;
  using V = typename C::value;
  using map = typename C::map;
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  // n distinct keys with their values, and the same pairs in `source`'s iteration order.
  void make_source(std::size_t n) {
    keys.clear();
    values.clear();
    for (std::size_t i = 0; i < n; ++i) {
      keys.push_back(gen<K>::make(i));
      values.push_back(C::value_for(i));
      source.insert_or_assign(keys.back(), values.back());
    }
    ordered_keys.clear();
    ordered_values.clear();
    source.cvisit_all([&](const auto& x) {
      ordered_keys.push_back(x.first);
      ordered_values.push_back(x.second);
    });
  }

  // Loads rows [0, n) of ks/vs shard by shard, as pardict_load_many does for grouped input.
  // Returns the elements added, or npos at the first refused shard.
  std::size_t load_grouped(map& m, const std::vector<K>& ks, const std::vector<V>& vs,
                           bool geometry) {
    std::size_t total = 0;
    std::size_t lo = 0;
    for (std::size_t s = 0; s < map::shard_count; ++s) {
      std::size_t hi = lo;
      while (hi < ks.size() && m.shard_index(ks[hi]) == s) ++hi;
      const auto [seed, groups] =
          geometry ? source.shard_geometry(s) : std::pair<std::uint32_t, std::size_t>{0, 0};
      const std::size_t added = m.load_shard(
          s, std::span<const K>(ks.data() + lo, hi - lo), groups, seed,
          [&](std::size_t i, void* where) {
            ::new (where) typename map::value_type(ks[lo + i], vs[lo + i]);
          },
          [&](std::size_t i, auto& x) { x.second = vs[lo + i]; });
      if (added == npos) return npos;
      total += added;
      lo = hi;
    }
    EXPECT_EQ(lo, ks.size()) << "the rows were not grouped by shard";
    return total;
  }

  void expect_holds_source(const map& m) {
    EXPECT_EQ(m.size(), source.size());
    std::size_t found = 0;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      m.cvisit(keys[i], [&](const auto& x) {
        EXPECT_EQ(x.second, values[i]);
        ++found;
      });
    }
    EXPECT_EQ(found, keys.size());
    EXPECT_FALSE(m.contains(gen<K>::make(keys.size() + 12345)));
  }

  map source;
  std::vector<K> keys, ordered_keys;
  std::vector<V> values, ordered_values;
};

TYPED_TEST_SUITE(LoadShardTest, load_cases);

TYPED_TEST(LoadShardTest, AnotherMapsIterationLoadsExactlyWithAndWithoutGeometry) {
  this->make_source(scaled(50000));
  for (const bool geometry : {true, false}) {
    typename TestFixture::map m;
    EXPECT_EQ(this->load_grouped(m, this->ordered_keys, this->ordered_values, geometry),
              this->keys.size());
    this->expect_holds_source(m);
    if (geometry) {
      // Same seeds (an in-order table's even one too: both maps' hashes place in order) and at
      // least the exporter's group counts.
      for (std::size_t s = 0; s < TestFixture::map::shard_count; ++s) {
        const auto want = this->source.shard_geometry(s);
        const auto got = m.shard_geometry(s);
        EXPECT_EQ(got.first, want.first);
        EXPECT_GE(got.second, want.second);
      }
    }
  }
}

TYPED_TEST(LoadShardTest, ALoadedMapGrowsErasesAndCountsLikeAnyOther) {
  const std::size_t n = scaled(20000);
  this->make_source(n);
  typename TestFixture::map m;
  ASSERT_EQ(this->load_grouped(m, this->ordered_keys, this->ordered_values, true), n);
  // Four times as many keys again: every shard's table must grow from its loaded size.
  std::unordered_map<typename TestFixture::K, typename TestFixture::V> model;
  for (std::size_t i = 0; i < n; ++i) model.emplace(this->keys[i], this->values[i]);
  for (std::size_t i = n; i < 5 * n; ++i) {
    EXPECT_TRUE(m.insert({gen<typename TestFixture::K>::make(i), this->values[i % n]}));
    model.emplace(gen<typename TestFixture::K>::make(i), this->values[i % n]);
  }
  for (std::size_t i = 0; i < 5 * n; i += 3) {
    EXPECT_EQ(m.erase(gen<typename TestFixture::K>::make(i)), 1u);
    model.erase(gen<typename TestFixture::K>::make(i));
  }
  EXPECT_EQ(m.size(), model.size());
  for (const auto& [k, v] : model) EXPECT_EQ(m.find(k), std::optional(v));
  EXPECT_LE(m.load_factor(), TestFixture::map::max_load_factor());
}

TYPED_TEST(LoadShardTest, ShuffledInputWithinEachShardLoadsTheSameMap) {
  this->make_source(scaled(30000));
  // Shuffle inside each shard's run: still grouped, no longer in the exporter's placement order.
  auto ks = this->ordered_keys;
  auto vs = this->ordered_values;
  std::vector<std::size_t> idx(ks.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::mt19937_64 rng(7);
  typename TestFixture::map probe;
  std::size_t lo = 0;
  while (lo < idx.size()) {
    std::size_t hi = lo;
    while (hi < idx.size() && probe.shard_index(ks[hi]) == probe.shard_index(ks[lo])) ++hi;
    std::shuffle(idx.begin() + static_cast<std::ptrdiff_t>(lo),
                 idx.begin() + static_cast<std::ptrdiff_t>(hi), rng);
    lo = hi;
  }
  std::vector<typename TestFixture::K> sk;
  std::vector<typename TestFixture::V> sv;
  for (std::size_t i : idx) {
    sk.push_back(ks[i]);
    sv.push_back(vs[i]);
  }
  typename TestFixture::map m;
  EXPECT_EQ(this->load_grouped(m, sk, sv, true), this->keys.size());
  this->expect_holds_source(m);
}

TYPED_TEST(LoadShardTest, AKeyMetTwiceIsAssignedAndCountedOnce) {
  using K = typename TestFixture::K;
  using V = typename TestFixture::V;
  typename TestFixture::map m;
  // Keys of shard 0 only, each twice, the second time with another value.
  std::vector<K> ks;
  std::vector<V> vs;
  for (std::uint64_t i = 0; ks.size() < 200; ++i) {
    const K k = gen<K>::make(i);
    if (m.shard_index(k) != 0) continue;
    ks.push_back(k);
    vs.push_back(TypeParam::value_for(i));
  }
  const std::size_t distinct = ks.size();
  for (std::size_t i = 0; i < distinct; ++i) {
    ks.push_back(ks[i]);
    vs.push_back(TypeParam::value_for(i + 1000000));
  }
  std::size_t again = 0;
  const std::size_t added = m.load_shard(
      0, std::span<const K>(ks), 0, 0,
      [&](std::size_t i, void* where) {
        ::new (where) typename TestFixture::map::value_type(ks[i], vs[i]);
      },
      [&](std::size_t i, auto& x) {
        ++again;
        x.second = vs[i];
      });
  EXPECT_EQ(added, distinct);
  EXPECT_EQ(again, distinct);
  EXPECT_EQ(m.size(), distinct);
  for (std::size_t i = 0; i < distinct; ++i)
    EXPECT_EQ(m.find(ks[i]), std::optional(vs[distinct + i]));
}

TYPED_TEST(LoadShardTest, ANonEmptyShardOrAForeignKeyIsRefusedAndNothingChanges) {
  using K = typename TestFixture::K;
  using V = typename TestFixture::V;
  using map = typename TestFixture::map;
  map m;
  std::vector<K> shard0, shard1;
  for (std::uint64_t i = 0; shard0.size() < 50 || shard1.size() < 50; ++i) {
    const K k = gen<K>::make(i);
    if (m.shard_index(k) == 0 && shard0.size() < 50) shard0.push_back(k);
    if (m.shard_index(k) == 1 && shard1.size() < 50) shard1.push_back(k);
  }
  std::size_t made = 0;
  auto make_from = [&](const std::vector<K>& ks) {
    return [&made, &ks](std::size_t i, void* where) {
      ++made;
      ::new (where) typename map::value_type(ks[i], TypeParam::value_for(i));
    };
  };
  auto again = [](std::size_t, auto&) {};
  // A key of shard 1 at the end of shard 0's run: refused after building most of a table,
  // which is discarded (destroying what it built).
  std::vector<K> mixed = shard0;
  mixed.push_back(shard1[0]);
  EXPECT_EQ(m.load_shard(0, std::span<const K>(mixed), 0, 0, make_from(mixed), again),
            TestFixture::npos);
  EXPECT_EQ(made, shard0.size());
  EXPECT_EQ(m.size(), 0u);
  EXPECT_FALSE(m.contains(shard0[0]));
  // A shard that holds an element is refused before anything is made.
  EXPECT_TRUE(m.insert({shard1[0], V(TypeParam::value_for(7))}));
  made = 0;
  EXPECT_EQ(m.load_shard(1, std::span<const K>(shard1), 0, 0, make_from(shard1), again),
            TestFixture::npos);
  EXPECT_EQ(made, 0u);
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(m.find(shard1[0]), std::optional(V(TypeParam::value_for(7))));
  // A shard that was reserved, or emptied again, is empty: loaded (its table replaced).
  m.reserve(100000);
  EXPECT_EQ(m.load_shard(0, std::span<const K>(shard0), 0, 0, make_from(shard0), again),
            shard0.size());
  EXPECT_TRUE(m.erase(shard1[0]));
  EXPECT_EQ(m.load_shard(1, std::span<const K>(shard1), 0, 0, make_from(shard1), again),
            shard1.size());
  EXPECT_EQ(m.size(), shard0.size() + shard1.size());
}

// A value whose construction throws on request: a load that throws part-way leaves the shard as
// it was and destroys every element it had built.
struct throwing_value {
  static inline int throw_at = -1;
  counted c;
  explicit throwing_value(int i) : c(i) {
    if (i == throw_at) throw std::runtime_error("no");
  }
};

class LoadShardExceptions : public pardict_test::counted_leak_check {};

TEST_F(LoadShardExceptions, AThrowingConstructorLeavesTheShardUnchangedAndLeaksNothing) {
  pardict::concurrent_map<std::int64_t, throwing_value> m;
  std::vector<std::int64_t> ks;
  for (std::int64_t i = 0; ks.size() < 300; ++i)
    if (m.shard_index(i) == 5) ks.push_back(i);
  auto make = [&](std::size_t i, void* where) {
    ::new (where) std::pair<const std::int64_t, throwing_value>(
        std::piecewise_construct, std::forward_as_tuple(ks[i]),
        std::forward_as_tuple(static_cast<int>(i)));
  };
  auto again = [](std::size_t, auto&) {};
  throwing_value::throw_at = 250;
  EXPECT_THROW(m.load_shard(5, std::span<const std::int64_t>(ks), 0, 0, make, again),
               std::runtime_error);
  EXPECT_EQ(m.size(), 0u);
  EXPECT_FALSE(m.contains(ks[0]));
  throwing_value::throw_at = -1;
  EXPECT_EQ(m.load_shard(5, std::span<const std::int64_t>(ks), 0, 0, make, again), ks.size());
  EXPECT_EQ(m.size(), ks.size());
  EXPECT_EQ(m.find(ks[42])->c.value(), 42);
}

}  // namespace
