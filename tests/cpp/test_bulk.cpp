// tests/cpp/test_bulk.cpp: the bulk operations of pardict::concurrent_map (find_many,
// contains_many, insert_or_assign_many, upsert_many with every combine_op), single-threaded.
// Results are positional; each batch is checked against a model that applies the same operations
// one key at a time, in batch order, so duplicate keys inside a batch must behave as if processed
// sequentially (adds accumulate, the last assign wins). Batch sizes straddle the prefetch window
// (0, 1, 15, 16, 17, 1000, 100k).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "pardict/concurrent_map.hpp"
#include "support/counting.hpp"
#include "support/generators.hpp"

namespace {

using pardict::combine_op;
using pardict_test::gen;
using pardict_test::mix64;
using pardict_test::scaled;

const char* op_name(combine_op op) {
  switch (op) {
    case combine_op::assign:
      return "assign";
    case combine_op::add:
      return "add";
    case combine_op::min:
      return "min";
    case combine_op::max:
      return "max";
  }
  return "?";
}

// std::vector<bool> has no contiguous bool storage, so bulk flag outputs live here.
class bool_buffer {
 public:
  explicit bool_buffer(std::size_t n, bool fill) : data_(std::make_unique<bool[]>(n + 1)), n_(n) {
    std::fill_n(data_.get(), n, fill);
  }
  std::span<bool> span() { return {data_.get(), n_}; }
  bool operator[](std::size_t i) const { return data_[i]; }

 private:
  std::unique_ptr<bool[]> data_;
  std::size_t n_;
};

// --- value arithmetic for the model: small integers only, so float sums are exact
// ----------------------------

template <class T>
struct value_ops;

template <class S>
requires std::is_arithmetic_v<S>
struct value_ops<S> {
  static S make(std::uint64_t seed) {
    return static_cast<S>(static_cast<std::int64_t>(mix64(seed) % 1001) - 500);
  }
  static S sentinel() { return S{7777}; }  // outside make()'s range [-500, 500]
  static S combine(S stored, S x, combine_op op) {
    switch (op) {
      case combine_op::assign:
        return x;
      case combine_op::add:
        return static_cast<S>(stored + x);
      case combine_op::min:
        return std::min(stored, x);
      case combine_op::max:
        return std::max(stored, x);
    }
    return stored;
  }
};

template <class S, std::size_t N>
struct value_ops<std::array<S, N>> {
  static std::array<S, N> make(std::uint64_t seed) {
    std::array<S, N> a{};
    for (std::size_t i = 0; i < N; ++i)
      a[i] = value_ops<S>::make(seed * 8 + i + 1);  // independent lanes
    return a;
  }
  static std::array<S, N> sentinel() {
    std::array<S, N> a{};
    a.fill(value_ops<S>::sentinel());
    return a;
  }
  static std::array<S, N> combine(std::array<S, N> stored, const std::array<S, N>& x,
                                  combine_op op) {
    for (std::size_t i = 0; i < N; ++i) stored[i] = value_ops<S>::combine(stored[i], x[i], op);
    return stored;
  }
};

template <class K, class V>
struct bulk_case {
  using key_type = K;
  using mapped_type = V;
};
struct b_i64_i64 : bulk_case<std::int64_t, std::int64_t> {
  static constexpr const char* name = "i64_i64";
};
struct b_i32_f32 : bulk_case<std::int32_t, float> {
  static constexpr const char* name = "i32_f32";
};
struct b_str_i64 : bulk_case<std::string, std::int64_t> {
  static constexpr const char* name = "str_i64";
};
struct b_i64_f32x4 : bulk_case<std::int64_t, std::array<float, 4>> {
  static constexpr const char* name = "i64_f32x4";
};

struct case_names {
  template <class T>
  static std::string GetName(int) {
    return T::name;
  }
};

const std::vector<std::size_t>& batch_sizes() {
  static const std::vector<std::size_t> sizes = {0, 1, 15, 16, 17, 1000, scaled(100000, 20000)};
  return sizes;
}

template <class Case>
class BulkTest : public ::testing::Test {
 public:
  using K = typename Case::key_type;
  using V = typename Case::mapped_type;
  using map_type = pardict::concurrent_map<K, V>;
  using value_type = typename map_type::value_type;
  using model_type = std::unordered_map<K, V>;
  using ops = value_ops<V>;

  static K key(std::uint64_t i) { return gen<K>::make(i); }

  // `n` keys drawn from about n/4 + 1 key indices from `first` on, so batches hold duplicates.
  static std::vector<K> keys_with_duplicates(std::size_t n, std::uint64_t first,
                                             std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    const std::uint64_t pool = n / 4 + 1;
    std::vector<K> keys;
    keys.reserve(n);
    for (std::size_t i = 0; i < n; ++i) keys.push_back(key(first + rng() % pool));
    return keys;
  }

  static std::vector<V> values(std::size_t n, std::uint64_t seed) {
    std::vector<V> vs;
    vs.reserve(n);
    for (std::size_t i = 0; i < n; ++i) vs.push_back(ops::make(seed * 1000003 + i));
    return vs;
  }

  static void expect_matches(const map_type& m, const model_type& model) {
    ASSERT_EQ(m.size(), model.size());
    std::size_t mismatches = 0;
    for (const auto& [k, v] : model) {
      const auto got = m.find(k);
      if (!got || !(*got == v)) ++mismatches;
    }
    EXPECT_EQ(mismatches, 0u) << "elements whose value differs from the sequential model";
  }

  // Puts every key index in [first, first + n) with value ops::make(i) into both.
  static void prefill(map_type& m, model_type& model, std::uint64_t first, std::uint64_t n) {
    for (std::uint64_t i = first; i < first + n; ++i) {
      const V v = ops::make(i);
      ASSERT_TRUE(m.insert_or_assign(key(i), v));
      model.insert_or_assign(key(i), v);
    }
  }
};

using bulk_cases = ::testing::Types<b_i64_i64, b_i32_f32, b_str_i64, b_i64_f32x4>;
TYPED_TEST_SUITE(BulkTest, bulk_cases, case_names);

#define PARDICT_BULK_ALIASES                                                          \
  using K = typename TestFixture::K;                                                  \
  using V = typename TestFixture::V;                                                  \
  using map_type = typename TestFixture::map_type;                                    \
  using model_type = typename TestFixture::model_type;                                \
  using ops = typename TestFixture::ops;                                              \
  (void)sizeof(K), (void)sizeof(V), (void)sizeof(map_type), (void)sizeof(model_type), \
      (void)sizeof(ops)

TYPED_TEST(BulkTest, FindManyReportsPositionalResultsAndLeavesMissesUntouched) {
  PARDICT_BULK_ALIASES;
  for (const std::size_t n : batch_sizes()) {
    SCOPED_TRACE("batch size " + std::to_string(n));
    map_type m;
    model_type model;
    // Present: even key indices below 2n (+2 so tiny batches still have some).
    for (std::uint64_t i = 0; i < 2 * n + 2; i += 2) {
      const V v = ops::make(i);
      ASSERT_TRUE(m.try_emplace(TestFixture::key(i), v));
      model.emplace(TestFixture::key(i), v);
    }
    std::mt19937_64 rng(n + 17);
    std::vector<K> keys;
    for (std::size_t i = 0; i < n; ++i) keys.push_back(TestFixture::key(rng() % (2 * n + 2)));
    const V sentinel = ops::sentinel();
    std::vector<V> out(n, sentinel);
    bool_buffer found(n, true);  // pre-set to true: a miss must be reported as false
    const auto hits = m.find_many(keys, out, found.span());
    std::size_t expected_hits = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const auto it = model.find(keys[i]);
      if (it != model.end()) {
        ++expected_hits;
        ASSERT_TRUE(found[i]) << "position " << i;
        ASSERT_TRUE(out[i] == it->second) << "position " << i;
      } else {
        ASSERT_FALSE(found[i]) << "position " << i;
        ASSERT_TRUE(out[i] == sentinel)
            << "find_many wrote a value for a missing key at position " << i;
      }
    }
    EXPECT_EQ(hits, expected_hits);
  }
}

TYPED_TEST(BulkTest, FindManyOnEmptyMapFindsNothing) {
  PARDICT_BULK_ALIASES;
  map_type m;
  std::vector<K> keys;
  for (std::uint64_t i = 0; i < 40; ++i) keys.push_back(TestFixture::key(i));
  const V sentinel = ops::sentinel();
  std::vector<V> out(keys.size(), sentinel);
  bool_buffer found(keys.size(), true);
  EXPECT_EQ(m.find_many(keys, out, found.span()), 0u);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    EXPECT_FALSE(found[i]);
    EXPECT_TRUE(out[i] == sentinel);
  }
  bool_buffer found2(keys.size(), true);
  EXPECT_EQ(m.contains_many(keys, found2.span()), 0u);
  for (std::size_t i = 0; i < keys.size(); ++i) EXPECT_FALSE(found2[i]);
}

TYPED_TEST(BulkTest, ContainsManyReportsPositionalResults) {
  PARDICT_BULK_ALIASES;
  for (const std::size_t n : batch_sizes()) {
    SCOPED_TRACE("batch size " + std::to_string(n));
    map_type m;
    for (std::uint64_t i = 0; i < 3 * n + 3; i += 3)
      ASSERT_TRUE(m.try_emplace(TestFixture::key(i), ops::make(i)));
    std::vector<K> keys;
    std::vector<bool> expect;
    std::mt19937_64 rng(n * 3 + 1);
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t idx = rng() % (3 * n + 3);
      keys.push_back(TestFixture::key(idx));
      expect.push_back(idx % 3 == 0);
    }
    bool_buffer found(n, !expect.empty() && !expect[0]);  // start with wrong answers where possible
    const auto hits = m.contains_many(keys, found.span());
    std::size_t expected_hits = 0;
    for (std::size_t i = 0; i < n; ++i) {
      expected_hits += expect[i];
      ASSERT_EQ(found[i], expect[i]) << "position " << i;
    }
    EXPECT_EQ(hits, expected_hits);
  }
}

TYPED_TEST(BulkTest, InsertOrAssignManyInsertsNewKeysAndOverwritesOthers) {
  PARDICT_BULK_ALIASES;
  for (const std::size_t n : batch_sizes()) {
    SCOPED_TRACE("batch size " + std::to_string(n));
    map_type m;
    model_type model;
    TestFixture::prefill(m, model, 0, n / 8 + 1);  // part of the pool is already present
    const auto keys = TestFixture::keys_with_duplicates(n, 0, n + 5);
    const auto vals = TestFixture::values(n, n + 6);
    std::size_t expected_new = 0;
    for (std::size_t i = 0; i < n; ++i)
      expected_new += model.insert_or_assign(keys[i], vals[i]).second;
    EXPECT_EQ(m.insert_or_assign_many(keys, vals), expected_new);
    TestFixture::expect_matches(m, model);
  }
}

TYPED_TEST(BulkTest, UpsertManyMatchesSequentialModelForEveryCombineOp) {
  PARDICT_BULK_ALIASES;
  for (const combine_op op :
       {combine_op::assign, combine_op::add, combine_op::min, combine_op::max}) {
    for (const std::size_t n : batch_sizes()) {
      SCOPED_TRACE(std::string("op ") + op_name(op) + ", batch size " + std::to_string(n));
      map_type m;
      model_type model;
      TestFixture::prefill(m, model, 0, n / 8 + 1);
      // Two batches: the second one hits keys the first inserted.
      for (std::uint64_t round = 0; round < 2; ++round) {
        const auto keys = TestFixture::keys_with_duplicates(n, 0, n * 10 + round);
        const auto vals = TestFixture::values(n, n * 10 + round + 100);
        std::size_t expected_new = 0;
        for (std::size_t i = 0; i < n; ++i) {
          const auto [it, inserted] = model.try_emplace(keys[i], vals[i]);
          if (inserted) {
            ++expected_new;
          } else {
            it->second = ops::combine(it->second, vals[i], op);
          }
        }
        EXPECT_EQ(m.upsert_many(keys, vals, op), expected_new) << "round " << round;
        TestFixture::expect_matches(m, model);
      }
    }
  }
}

TYPED_TEST(BulkTest, DuplicateKeysInsideOneBatchAccumulate) {
  PARDICT_BULK_ALIASES;
  map_type m;
  const K k = TestFixture::key(1);
  const std::vector<K> keys(5, k);
  const std::vector<V> vals = {ops::make(1), ops::make(2), ops::make(3), ops::make(4),
                               ops::make(5)};
  V sum = vals[0], lo = vals[0], hi = vals[0];
  for (std::size_t i = 1; i < vals.size(); ++i) {
    sum = ops::combine(sum, vals[i], combine_op::add);
    lo = ops::combine(lo, vals[i], combine_op::min);
    hi = ops::combine(hi, vals[i], combine_op::max);
  }
  EXPECT_EQ(m.upsert_many(keys, vals, combine_op::add), 1u)
      << "one distinct key: exactly one insertion";
  EXPECT_EQ(m.size(), 1u);
  EXPECT_TRUE(*m.find(k) == sum) << "adds of one key inside a batch must accumulate";
  m.clear();
  EXPECT_EQ(m.upsert_many(keys, vals, combine_op::min), 1u);
  EXPECT_TRUE(*m.find(k) == lo);
  m.clear();
  EXPECT_EQ(m.upsert_many(keys, vals, combine_op::max), 1u);
  EXPECT_TRUE(*m.find(k) == hi);
  m.clear();
  EXPECT_EQ(m.upsert_many(keys, vals, combine_op::assign), 1u);
  EXPECT_TRUE(*m.find(k) == vals.back()) << "the last assignment in batch order must win";
  EXPECT_EQ(m.insert_or_assign_many(keys, vals), 0u);
  EXPECT_TRUE(*m.find(k) == vals.back());
}

TYPED_TEST(BulkTest, AddAcrossManyBatchesGivesExactSums) {
  PARDICT_BULK_ALIASES;
  // 50 batches of ones (or all-ones arrays) over 100 keys; each batch visits every key twice.
  map_type m;
  const V one = [] {
    if constexpr (std::is_arithmetic_v<V>) {
      return V{1};
    } else {
      V v{};
      v.fill(1);
      return v;
    }
  }();
  std::vector<K> keys;
  for (std::uint64_t i = 0; i < 200; ++i) keys.push_back(TestFixture::key(i % 100));
  const std::vector<V> ones(keys.size(), one);
  std::size_t inserted = 0;
  for (int b = 0; b < 50; ++b) inserted += m.upsert_many(keys, ones, combine_op::add);
  EXPECT_EQ(inserted, 100u);
  ASSERT_EQ(m.size(), 100u);
  for (std::uint64_t i = 0; i < 100; ++i) {
    const auto v = m.find(TestFixture::key(i));
    ASSERT_TRUE(v.has_value());
    if constexpr (std::is_arithmetic_v<V>) {
      EXPECT_EQ(*v, V{100});
    } else {
      for (const auto x : *v) EXPECT_EQ(x, 100.0f);
    }
  }
}

TYPED_TEST(BulkTest, BulkResultsAgreeWithSingleKeyLookups) {
  PARDICT_BULK_ALIASES;
  const std::size_t n = scaled(50000, 5000);
  map_type m;
  const auto keys = TestFixture::keys_with_duplicates(n, 0, 99);
  const auto vals = TestFixture::values(n, 98);
  m.upsert_many(keys, vals, combine_op::max);
  std::vector<V> out(n);
  bool_buffer found(n, false);
  ASSERT_EQ(m.find_many(keys, out, found.span()), n) << "every key just upserted must be found";
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(found[i]);
    const auto single = m.find(keys[i]);
    ASSERT_TRUE(single.has_value());
    ASSERT_TRUE(*single == out[i]) << "position " << i;
  }
}

// Integer adds wrap around (two's complement) rather than overflow, which for a signed type would
// be undefined behaviour (the ASan+UBSan build would stop here).
TEST(BulkAdd, SignedIntegerAddWrapsAround) {
  using lim = std::numeric_limits<std::int64_t>;
  pardict::concurrent_map<std::int64_t, std::int64_t> m;
  const std::vector<std::int64_t> keys = {1, 2, 1, 2};
  const std::vector<std::int64_t> vals = {lim::max(), lim::min(), 1, -1};
  EXPECT_EQ(m.upsert_many(keys, vals, combine_op::add), 2u);
  EXPECT_EQ(m.find(1), lim::min()) << "int64 max + 1 must wrap to min";
  EXPECT_EQ(m.find(2), lim::max()) << "int64 min - 1 must wrap to max";

  pardict::concurrent_map<std::int64_t, std::int8_t> small;
  const std::vector<std::int8_t> bytes = {127, 0, 1, 0};
  small.upsert_many(keys, bytes, combine_op::add);
  EXPECT_EQ(small.find(1), std::int8_t{-128}) << "int8 127 + 1 must wrap to -128";
}

}  // namespace
