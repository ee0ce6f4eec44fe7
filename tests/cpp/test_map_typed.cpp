// tests/cpp/test_map_typed.cpp: single-threaded conformance suite for pardict::concurrent_map,
// instantiated for several key/value types (trivially copyable, strings, arrays, move-only,
// instance-counting). Every test checks results against known contents or a std::unordered_map
// oracle; the fixture also fails a test that leaks or double-destroys a `counted` value.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "pardict/concurrent_map.hpp"
#include "support/counting.hpp"
#include "support/generators.hpp"

namespace {

using pardict_test::counted;
using pardict_test::counted_counters;
using pardict_test::gen;
using pardict_test::max_value_id;
using pardict_test::move_only;
using pardict_test::scaled;

template <class K, class V>
struct map_case {
  using key_type = K;
  using mapped_type = V;
};
struct i64_i64 : map_case<std::int64_t, std::int64_t> {
  static constexpr const char* name = "i64_i64";
};
struct i32_f32 : map_case<std::int32_t, float> {
  static constexpr const char* name = "i32_f32";
};
struct f64_i64 : map_case<double, std::int64_t> {
  static constexpr const char* name = "f64_i64";
};
struct str_i64 : map_case<std::string, std::int64_t> {
  static constexpr const char* name = "str_i64";
};
struct i64_f32x4 : map_case<std::int64_t, std::array<float, 4>> {
  static constexpr const char* name = "i64_f32x4";
};
struct i64_move_only : map_case<std::int64_t, move_only> {
  static constexpr const char* name = "i64_move_only";
};
struct i64_counted : map_case<std::int64_t, counted> {
  static constexpr const char* name = "i64_counted";
};

struct case_names {
  template <class T>
  static std::string GetName(int) {
    return T::name;
  }
};

template <class K>
K key(std::uint64_t i) {
  return gen<K>::make(i);
}
template <class V>
V val(std::uint64_t id) {
  return gen<V>::value(id);
}
template <class V>
std::uint64_t vid(const V& v) {
  return gen<V>::id(v);
}

// The id that fill() stores for key index i.
constexpr std::uint64_t id_for(std::uint64_t i) { return (i * 7 + 3) % max_value_id; }

// A hasher of another type (with other values) than pardict::hash, for merge() across hashers.
template <class K>
struct alt_hash {
  std::size_t operator()(const K& k) const { return ~pardict::hash<K>{}(k)*31u; }
};

template <class Case>
class MapTypedTest : public pardict_test::counted_leak_check {
 public:
  using K = typename Case::key_type;
  using V = typename Case::mapped_type;
  using map_type = pardict::concurrent_map<K, V>;
  using value_type = typename map_type::value_type;
  using oracle_type = std::unordered_map<K, std::uint64_t>;
  static constexpr bool copyable = std::is_copy_constructible_v<V>;

  // The id stored under k, read through cvisit (works for every V), or nullopt.
  static std::optional<std::uint64_t> lookup(const map_type& m, const K& k) {
    std::optional<std::uint64_t> out;
    const auto n = m.cvisit(k, [&](const value_type& p) { out = vid(p.second); });
    EXPECT_EQ(n, out.has_value() ? 1u : 0u)
        << "cvisit's return value disagrees with whether it called the visitor";
    return out;
  }

  // Inserts key(first) .. key(first + n - 1) with ids id_for(i), and records them in `oracle`.
  static void fill(map_type& m, std::uint64_t first, std::uint64_t n,
                   oracle_type* oracle = nullptr) {
    for (std::uint64_t i = first; i < first + n; ++i) {
      ASSERT_TRUE(m.try_emplace(key<K>(i), val<V>(id_for(i)))) << "key index " << i;
      if (oracle) (*oracle)[key<K>(i)] = id_for(i);
    }
  }

  // Full comparison: size, point lookups of every oracle key, and one cvisit_all pass that must see
  // each oracle element exactly once and nothing else.
  static void expect_matches(const map_type& m, const oracle_type& oracle) {
    EXPECT_EQ(m.size(), oracle.size());
    EXPECT_EQ(m.empty(), oracle.empty());
    std::size_t mismatches = 0;
    for (const auto& [k, id] : oracle) {
      const auto got = lookup(m, k);
      if (got != std::optional<std::uint64_t>(id) && ++mismatches <= 5)
        ADD_FAILURE() << "value for a key differs: expected id " << id << ", got "
                      << (got ? std::to_string(*got) : std::string("<missing>"));
    }
    EXPECT_EQ(mismatches, 0u);
    std::unordered_set<K> seen;
    std::size_t strays = 0, duplicates = 0;
    const auto visited = m.cvisit_all([&](const value_type& p) {
      if (!seen.insert(p.first).second) ++duplicates;
      const auto it = oracle.find(p.first);
      if (it == oracle.end() || it->second != vid(p.second)) ++strays;
    });
    EXPECT_EQ(visited, oracle.size());
    EXPECT_EQ(duplicates, 0u) << "cvisit_all visited an element twice";
    EXPECT_EQ(strays, 0u) << "cvisit_all saw elements (or values) the oracle does not have";
  }
};

using map_cases =
    ::testing::Types<i64_i64, i32_f32, f64_i64, str_i64, i64_f32x4, i64_move_only, i64_counted>;
TYPED_TEST_SUITE(MapTypedTest, map_cases, case_names);

#define PARDICT_TYPED_ALIASES                                                         \
  using K = typename TestFixture::K;                                                  \
  using V = typename TestFixture::V;                                                  \
  using map_type = typename TestFixture::map_type;                                    \
  using value_type = typename TestFixture::value_type;                                \
  using oracle_type = typename TestFixture::oracle_type;                              \
  (void)sizeof(K), (void)sizeof(V), (void)sizeof(map_type), (void)sizeof(value_type), \
      (void)sizeof(oracle_type)

// --- construction and observers
// --------------------------------------------------------------------------------

TYPED_TEST(MapTypedTest, DefaultConstructedIsEmpty) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  EXPECT_EQ(m.size(), 0u);
  EXPECT_TRUE(m.empty());
  EXPECT_FALSE(m.contains(key<K>(1)));
  EXPECT_EQ(m.count(key<K>(1)), 0u);
  EXPECT_EQ(m.erase(key<K>(1)), 0u);
  bool called = false;
  EXPECT_EQ(m.visit(key<K>(1), [&](value_type&) { called = true; }), 0u);
  EXPECT_EQ(m.cvisit(key<K>(1), [&](const value_type&) { called = true; }), 0u);
  EXPECT_EQ(m.visit_all([&](value_type&) { called = true; }), 0u);
  EXPECT_EQ(m.cvisit_all([&](const value_type&) { called = true; }), 0u);
  EXPECT_EQ(m.erase_if([&](value_type&) {
    called = true;
    return true;
  }),
            0u);
  EXPECT_FALSE(called);
  if constexpr (TestFixture::copyable) {
    EXPECT_FALSE(m.find(key<K>(1)).has_value());
  }
}

TYPED_TEST(MapTypedTest, BucketHintConstructorAndObservers) {
  PARDICT_TYPED_ALIASES;
  map_type m(1000);
  EXPECT_TRUE(m.empty());
  EXPECT_GE(m.bucket_count(), 1000u);
  EXPECT_GE(static_cast<double>(m.bucket_count()) * map_type::max_load_factor(), 1000.0)
      << "a bucket hint of n must leave room for n elements below the maximum load";
  EXPECT_EQ(m.load_factor(), 0.0);
  const auto h = m.hash_function();
  const auto eq = m.key_eq();
  EXPECT_EQ(h(key<K>(5)), pardict::hash<K>{}(key<K>(5)));
  EXPECT_TRUE(eq(key<K>(5), key<K>(5)));
  EXPECT_FALSE(eq(key<K>(5), key<K>(6)));
  [[maybe_unused]] const auto alloc = m.get_allocator();
  TestFixture::fill(m, 0, 100);
  EXPECT_GT(m.load_factor(), 0.0);
  EXPECT_LE(m.load_factor(), 1.0);
  EXPECT_LE(m.load_factor(), map_type::max_load_factor());
}

// --- insertion
// -------------------------------------------------------------------------------------------------

TYPED_TEST(MapTypedTest, InsertReturnsTrueOnlyForNewKeyAndNeverOverwrites) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  EXPECT_TRUE(m.insert(value_type(key<K>(1), val<V>(10))));
  EXPECT_FALSE(m.insert(value_type(key<K>(1), val<V>(11))));
  EXPECT_EQ(TestFixture::lookup(m, key<K>(1)), 10u);
  if constexpr (TestFixture::copyable) {
    const value_type lv(key<K>(2), val<V>(20));
    EXPECT_TRUE(m.insert(lv));
    const value_type lv2(key<K>(2), val<V>(21));
    EXPECT_FALSE(m.insert(lv2));
    EXPECT_EQ(TestFixture::lookup(m, key<K>(2)), 20u);
  } else {
    EXPECT_TRUE(m.insert(value_type(key<K>(2), val<V>(20))));
  }
  EXPECT_EQ(m.size(), 2u);
}

TYPED_TEST(MapTypedTest, EmplaceConstructsPairFromArguments) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  EXPECT_TRUE(m.emplace(key<K>(1), val<V>(10)));
  EXPECT_FALSE(m.emplace(key<K>(1), val<V>(11)));
  EXPECT_TRUE(m.emplace(std::piecewise_construct, std::forward_as_tuple(key<K>(2)),
                        std::forward_as_tuple(val<V>(20))));
  EXPECT_EQ(TestFixture::lookup(m, key<K>(1)), 10u);
  EXPECT_EQ(TestFixture::lookup(m, key<K>(2)), 20u);
  EXPECT_EQ(m.size(), 2u);
}

TYPED_TEST(MapTypedTest, TryEmplaceInsertsOnlyWhenAbsent) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  EXPECT_TRUE(m.try_emplace(key<K>(1), val<V>(10)));
  EXPECT_FALSE(m.try_emplace(key<K>(1), val<V>(11)));
  EXPECT_EQ(TestFixture::lookup(m, key<K>(1)), 10u);
  EXPECT_TRUE(m.try_emplace(key<K>(2)));  // no value arguments: V is value-initialised
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(TestFixture::lookup(m, key<K>(2)).has_value(), true);
}

TYPED_TEST(MapTypedTest, TryEmplaceOnExistingKeyNeitherConsumesNorConstructs) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  ASSERT_TRUE(m.try_emplace(key<K>(1), val<V>(10)));
  if constexpr (std::is_same_v<V, move_only>) {
    move_only arg(77);
    EXPECT_FALSE(m.try_emplace(key<K>(1), std::move(arg)));
    EXPECT_EQ(arg.get(), 77) << "try_emplace moved from its argument although the key was present";
    move_only arg2(78);
    EXPECT_FALSE(m.try_emplace_or_visit(key<K>(1), std::move(arg2), [](value_type&) {}));
    EXPECT_EQ(arg2.get(), 78)
        << "try_emplace_or_visit moved from its argument although the key was present";
  } else if constexpr (std::is_same_v<V, counted>) {
    const auto before = counted_counters().constructions.load();
    EXPECT_FALSE(m.try_emplace(key<K>(1), std::int64_t{11}));
    EXPECT_FALSE(m.try_emplace_or_visit(key<K>(1), std::int64_t{12}, [](value_type&) {}));
    EXPECT_EQ(counted_counters().constructions.load(), before)
        << "try_emplace constructed a value although the key was present";
  } else {
    EXPECT_FALSE(m.try_emplace(key<K>(1), val<V>(11)));
  }
  EXPECT_EQ(TestFixture::lookup(m, key<K>(1)), 10u);
}

TYPED_TEST(MapTypedTest, InsertOrAssignReportsInsertedThenAssigned) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  EXPECT_TRUE(m.insert_or_assign(key<K>(1), val<V>(10)));
  EXPECT_EQ(TestFixture::lookup(m, key<K>(1)), 10u);
  EXPECT_FALSE(m.insert_or_assign(key<K>(1), val<V>(11)));
  EXPECT_EQ(TestFixture::lookup(m, key<K>(1)), 11u);
  if constexpr (TestFixture::copyable) {
    const V lv = val<V>(12);
    EXPECT_FALSE(m.insert_or_assign(key<K>(1), lv));
    EXPECT_EQ(TestFixture::lookup(m, key<K>(1)), 12u);
  }
  EXPECT_EQ(m.size(), 1u);
}

// --- lookup
// -------------------------------------------------------------------------------------------------

TYPED_TEST(MapTypedTest, FindContainsCountAgreeWithContents) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  TestFixture::fill(m, 0, 500);
  for (std::uint64_t i = 0; i < 1000; ++i) {
    const bool present = i < 500;
    const K k = key<K>(i);
    ASSERT_EQ(m.contains(k), present) << i;
    ASSERT_EQ(m.count(k), present ? 1u : 0u) << i;
    if constexpr (TestFixture::copyable) {
      const auto found = m.find(k);
      ASSERT_EQ(found.has_value(), present) << i;
      if (present) {
        ASSERT_EQ(vid(*found), id_for(i)) << i;
      }
    }
    ASSERT_EQ(TestFixture::lookup(m, k),
              present ? std::optional<std::uint64_t>(id_for(i)) : std::nullopt)
        << i;
  }
}

TYPED_TEST(MapTypedTest, FindReturnsACopyNotAView) {
  PARDICT_TYPED_ALIASES;
  if constexpr (TestFixture::copyable) {
    map_type m;
    ASSERT_TRUE(m.try_emplace(key<K>(1), val<V>(10)));
    auto copy = m.find(key<K>(1));
    ASSERT_TRUE(copy.has_value());
    ASSERT_TRUE(m.insert_or_assign(key<K>(1), val<V>(11)) == false);
    EXPECT_EQ(vid(*copy), 10u);
    ASSERT_EQ(m.erase(key<K>(1)), 1u);
    EXPECT_EQ(vid(*copy), 10u);
  } else {
    GTEST_SKIP() << "find() returns std::optional<V>, which needs a copyable V";
  }
}

// --- erase
// -------------------------------------------------------------------------------------------------

TYPED_TEST(MapTypedTest, EraseRemovesOnlyThatKey) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  oracle_type oracle;
  TestFixture::fill(m, 0, 300, &oracle);
  for (std::uint64_t i = 0; i < 300; i += 3) {
    ASSERT_EQ(m.erase(key<K>(i)), 1u) << i;
    ASSERT_EQ(m.erase(key<K>(i)), 0u) << i;
    oracle.erase(key<K>(i));
  }
  EXPECT_EQ(m.erase(key<K>(100000)), 0u);
  TestFixture::expect_matches(m, oracle);
}

TYPED_TEST(MapTypedTest, EraseIfKeyHonoursPredicate) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  TestFixture::fill(m, 0, 10);
  int calls = 0;
  EXPECT_EQ(m.erase_if(key<K>(3),
                       [&](value_type& p) {
                         ++calls;
                         EXPECT_EQ(vid(p.second), id_for(3));
                         return false;
                       }),
            0u);
  EXPECT_TRUE(m.contains(key<K>(3)));
  EXPECT_EQ(m.erase_if(key<K>(3),
                       [&](value_type&) {
                         ++calls;
                         return true;
                       }),
            1u);
  EXPECT_FALSE(m.contains(key<K>(3)));
  EXPECT_EQ(m.erase_if(key<K>(3),
                       [&](value_type&) {
                         ++calls;
                         return true;
                       }),
            0u);
  EXPECT_EQ(calls, 2) << "the predicate must run once per present key and never for a missing key";
  EXPECT_EQ(m.size(), 9u);
}

TYPED_TEST(MapTypedTest, EveryReadPathSeesTheLatestWrite) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  const K k = key<K>(42);
  // Each write path in turn, each followed by every read path (lookups, predicates, visitors).
  auto expect_reads = [&](std::uint64_t want, const char* after) {
    SCOPED_TRACE(after);
    EXPECT_EQ(TestFixture::lookup(m, k), want);
    if constexpr (TestFixture::copyable) {
      const auto found = m.find(k);
      ASSERT_TRUE(found.has_value());
      EXPECT_EQ(vid(*found), want);
    }
    std::uint64_t seen = 0;
    EXPECT_EQ(m.erase_if(k,
                         [&](value_type& p) {
                           seen = vid(p.second);
                           return false;
                         }),
              0u);
    EXPECT_EQ(seen, want)
        << "erase_if(key, pred) passed a value other than the stored one to its predicate";
    seen = 0;
    EXPECT_EQ(m.erase_if([&](value_type& p) {
      seen = vid(p.second);
      return false;
    }),
              0u);
    EXPECT_EQ(seen, want)
        << "erase_if(pred) passed a value other than the stored one to its predicate";
    seen = 0;
    EXPECT_EQ(m.visit(k, [&](value_type& p) { seen = vid(p.second); }), 1u);
    EXPECT_EQ(seen, want);
    seen = 0;
    EXPECT_EQ(m.visit_all([&](value_type& p) { seen = vid(p.second); }), 1u);
    EXPECT_EQ(seen, want);
  };
  ASSERT_TRUE(m.insert_or_assign(k, val<V>(1)));
  expect_reads(1, "insert_or_assign (insert)");
  ASSERT_FALSE(m.insert_or_assign(k, val<V>(2)));
  expect_reads(2, "insert_or_assign (assign)");
  ASSERT_EQ(m.visit(k, [](value_type& p) { p.second = val<V>(3); }), 1u);
  expect_reads(3, "visit");
  ASSERT_FALSE(m.try_emplace_or_visit(k, val<V>(99), [](value_type& p) { p.second = val<V>(4); }));
  expect_reads(4, "try_emplace_or_visit");
  ASSERT_EQ(m.visit_all([](value_type& p) { p.second = val<V>(5); }), 1u);
  expect_reads(5, "visit_all");
  ASSERT_EQ(m.erase(k), 1u);
  ASSERT_TRUE(m.insert(value_type(k, val<V>(6))));
  expect_reads(6, "erase then insert");
}

// --- visitation
// ------------------------------------------------------------------------------------------------

TYPED_TEST(MapTypedTest, VisitMutatesAndCvisitObserves) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  TestFixture::fill(m, 0, 50);
  for (std::uint64_t i = 0; i < 50; ++i) {
    ASSERT_EQ(m.visit(key<K>(i),
                      [&](auto& p) {
                        static_assert(std::is_same_v<decltype(p), value_type&>,
                                      "visit on a non-const map passes value_type&");
                        EXPECT_EQ(vid(p.second), id_for(i));
                        p.second = val<V>(id_for(i) + 1);
                      }),
              1u);
  }
  const auto eq = m.key_eq();
  for (std::uint64_t i = 0; i < 50; ++i) {
    std::uint64_t seen = 0;
    ASSERT_EQ(m.cvisit(key<K>(i),
                       [&](auto& p) {
                         static_assert(std::is_same_v<decltype(p), const value_type&>,
                                       "cvisit passes const value_type&");
                         EXPECT_TRUE(eq(p.first, key<K>(i)));
                         seen = vid(p.second);
                       }),
              1u);
    EXPECT_EQ(seen, id_for(i) + 1);
  }
}

TYPED_TEST(MapTypedTest, VisitOnConstMapPassesConstReference) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  TestFixture::fill(m, 0, 5);
  const map_type& cm = m;
  std::uint64_t seen = 0;
  EXPECT_EQ(cm.visit(key<K>(2),
                     [&](auto& p) {
                       static_assert(std::is_same_v<decltype(p), const value_type&>,
                                     "visit on a const map passes const value_type&");
                       seen = vid(p.second);
                     }),
            1u);
  EXPECT_EQ(seen, id_for(2));
  std::size_t n = 0;
  EXPECT_EQ(cm.visit_all([&](auto& p) {
    static_assert(std::is_same_v<decltype(p), const value_type&>,
                  "visit_all on a const map passes const&");
    ++n;
  }),
            5u);
  EXPECT_EQ(n, 5u);
}

TYPED_TEST(MapTypedTest, InsertOrVisitVisitsOnlyExistingElements) {
  PARDICT_TYPED_ALIASES;
  if constexpr (TestFixture::copyable) {
    map_type m;
    int calls = 0;
    const value_type x(key<K>(1), val<V>(10));
    EXPECT_TRUE(m.insert_or_visit(x, [&](value_type&) { ++calls; }));
    EXPECT_EQ(calls, 0);
    const value_type y(key<K>(1), val<V>(99));
    EXPECT_FALSE(m.insert_or_visit(y, [&](auto& p) {
      static_assert(std::is_same_v<decltype(p), value_type&>);
      ++calls;
      EXPECT_EQ(vid(p.second), 10u);
      p.second = val<V>(11);
    }));
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(TestFixture::lookup(m, key<K>(1)), 11u);
    EXPECT_FALSE(m.insert_or_cvisit(y, [&](auto& p) {
      static_assert(std::is_same_v<decltype(p), const value_type&>);
      ++calls;
      EXPECT_EQ(vid(p.second), 11u);
    }));
    EXPECT_TRUE(
        m.insert_or_cvisit(value_type(key<K>(2), val<V>(20)), [&](const value_type&) { ++calls; }));
    EXPECT_EQ(calls, 2);
    EXPECT_EQ(TestFixture::lookup(m, key<K>(2)), 20u);
    EXPECT_EQ(m.size(), 2u);
  } else {
    GTEST_SKIP() << "insert_or_visit takes const value_type&, which needs a copyable V";
  }
}

TYPED_TEST(MapTypedTest, TryEmplaceOrVisitTreatsLastArgumentAsVisitor) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  int calls = 0;
  EXPECT_TRUE(m.try_emplace_or_visit(key<K>(1), val<V>(10), [&](value_type&) { ++calls; }));
  EXPECT_EQ(calls, 0);
  EXPECT_FALSE(m.try_emplace_or_visit(key<K>(1), val<V>(99), [&](auto& p) {
    static_assert(std::is_same_v<decltype(p), value_type&>);
    ++calls;
    EXPECT_EQ(vid(p.second), 10u);
    p.second = val<V>(12);
  }));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(TestFixture::lookup(m, key<K>(1)), 12u);
  // Only the visitor: V is value-initialised on insertion.
  EXPECT_TRUE(m.try_emplace_or_visit(key<K>(2), [&](value_type&) { ++calls; }));
  EXPECT_FALSE(m.try_emplace_or_visit(key<K>(2), [&](value_type& p) {
    ++calls;
    p.second = val<V>(21);
  }));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(TestFixture::lookup(m, key<K>(2)), 21u);
  // cvisit flavour.
  EXPECT_FALSE(m.try_emplace_or_cvisit(key<K>(1), val<V>(98), [&](auto& p) {
    static_assert(std::is_same_v<decltype(p), const value_type&>);
    ++calls;
    EXPECT_EQ(vid(p.second), 12u);
  }));
  EXPECT_TRUE(m.try_emplace_or_cvisit(key<K>(3), val<V>(30), [&](const value_type&) { ++calls; }));
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(TestFixture::lookup(m, key<K>(3)), 30u);
  EXPECT_EQ(m.size(), 3u);
}

TYPED_TEST(MapTypedTest, VisitAllAndCvisitAllVisitEachElementOnce) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  oracle_type oracle;
  TestFixture::fill(m, 0, 2000, &oracle);
  std::unordered_map<K, int> visits;
  EXPECT_EQ(m.visit_all([&](value_type& p) {
    ++visits[p.first];
    EXPECT_EQ(oracle.at(p.first), vid(p.second));
  }),
            2000u);
  EXPECT_EQ(visits.size(), 2000u);
  for (const auto& [k, n] : visits) ASSERT_EQ(n, 1);
  TestFixture::expect_matches(m, oracle);
}

TYPED_TEST(MapTypedTest, VisitAllCanMutateEveryValue) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  oracle_type oracle;
  TestFixture::fill(m, 0, 1000, &oracle);
  EXPECT_EQ(m.visit_all([&](value_type& p) { p.second = val<V>(vid(p.second) + 5); }), 1000u);
  for (auto& [k, id] : oracle) id += 5;
  TestFixture::expect_matches(m, oracle);
}

TYPED_TEST(MapTypedTest, EraseIfPredicateOnWholeTable) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  oracle_type oracle;
  TestFixture::fill(m, 0, 3000, &oracle);
  std::size_t expected = 0;
  for (auto it = oracle.begin(); it != oracle.end();) {
    if (it->second % 3 == 0) {
      it = oracle.erase(it);
      ++expected;
    } else {
      ++it;
    }
  }
  ASSERT_GT(expected, 0u);
  EXPECT_EQ(m.erase_if([](value_type& p) { return vid(p.second) % 3 == 0; }), expected);
  TestFixture::expect_matches(m, oracle);
  EXPECT_EQ(m.erase_if([](value_type&) { return false; }), 0u);
  EXPECT_EQ(m.erase_if([](value_type&) { return true; }), oracle.size());
  EXPECT_TRUE(m.empty());
}

// --- capacity
// -------------------------------------------------------------------------------------------------

TYPED_TEST(MapTypedTest, SizeAndEmptyTrackInsertsAndErases) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  for (std::uint64_t i = 0; i < 200; ++i) {
    ASSERT_TRUE(m.try_emplace(key<K>(i), val<V>(1)));
    ASSERT_EQ(m.size(), i + 1);
    ASSERT_FALSE(m.empty());
  }
  for (std::uint64_t i = 0; i < 200; ++i) {
    ASSERT_EQ(m.erase(key<K>(i)), 1u);
    ASSERT_EQ(m.size(), 199 - i);
  }
  EXPECT_TRUE(m.empty());
}

TYPED_TEST(MapTypedTest, ReserveMakesRoomWithoutGrowth) {
  PARDICT_TYPED_ALIASES;
  const std::uint64_t n = scaled(20000, 2000);
  map_type m;
  m.reserve(n);
  const auto buckets = m.bucket_count();
  EXPECT_GE(buckets, n);
  TestFixture::fill(m, 0, n);
  EXPECT_EQ(m.bucket_count(), buckets)
      << "the table grew although reserve(" << n << ") promised room";
  EXPECT_EQ(m.size(), n);
}

TYPED_TEST(MapTypedTest, RehashPreservesContentsWhenGrowingAndShrinking) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  oracle_type oracle;
  TestFixture::fill(m, 0, 5000, &oracle);
  m.rehash(50000);
  EXPECT_GE(m.bucket_count(), 50000u);
  TestFixture::expect_matches(m, oracle);
  const auto big = m.bucket_count();
  // Erase most elements, then shrink.
  for (std::uint64_t i = 0; i < 5000; ++i) {
    if (i % 50 != 0) {
      ASSERT_EQ(m.erase(key<K>(i)), 1u);
      oracle.erase(key<K>(i));
    }
  }
  m.rehash(0);
  EXPECT_LE(m.bucket_count(), big);
  EXPECT_GE(m.bucket_count(), m.size()) << "rehash must never shrink below size()";
  EXPECT_LE(m.load_factor(), 1.0);
  TestFixture::expect_matches(m, oracle);
  // A rehash request below size() must keep everything as well.
  m.rehash(1);
  EXPECT_GE(m.bucket_count(), m.size());
  TestFixture::expect_matches(m, oracle);
  // The shrunk table still grows correctly.
  TestFixture::fill(m, 10000, 3000, &oracle);
  TestFixture::expect_matches(m, oracle);
}

TYPED_TEST(MapTypedTest, ClearRemovesEverythingAndMapStaysUsable) {
  PARDICT_TYPED_ALIASES;
  map_type m;
  TestFixture::fill(m, 0, 4000);
  m.clear();
  EXPECT_EQ(m.size(), 0u);
  EXPECT_TRUE(m.empty());
  EXPECT_FALSE(m.contains(key<K>(0)));
  EXPECT_EQ(m.cvisit_all([](const value_type&) {}), 0u);
  m.clear();  // clearing an empty map is fine
  oracle_type oracle;
  TestFixture::fill(m, 0, 4000, &oracle);  // every key is new again
  TestFixture::expect_matches(m, oracle);
}

// --- copy, move, swap
// ------------------------------------------------------------------------------------------

TYPED_TEST(MapTypedTest, CopyConstructionAndAssignmentAreDeep) {
  PARDICT_TYPED_ALIASES;
  if constexpr (TestFixture::copyable) {
    map_type a;
    oracle_type oracle;
    TestFixture::fill(a, 0, 3000, &oracle);
    map_type b(a);
    TestFixture::expect_matches(b, oracle);
    // Changing the copy leaves the original alone and vice versa.
    ASSERT_FALSE(b.insert_or_assign(key<K>(0), val<V>(999)));
    ASSERT_EQ(b.erase(key<K>(1)), 1u);
    ASSERT_TRUE(a.try_emplace(key<K>(50000), val<V>(5)));
    TestFixture::expect_matches(b, [&] {
      auto o = oracle;
      o[key<K>(0)] = 999;
      o.erase(key<K>(1));
      return o;
    }());
    oracle[key<K>(50000)] = 5;
    TestFixture::expect_matches(a, oracle);
    // Copy assignment onto a non-empty map replaces its contents.
    map_type c;
    TestFixture::fill(c, 100000, 10);
    c = a;
    TestFixture::expect_matches(c, oracle);
    // Self-assignment keeps the contents.
    auto& c_alias = c;
    c = c_alias;
    TestFixture::expect_matches(c, oracle);
  } else {
    GTEST_SKIP() << "V is not copyable";
  }
}

TYPED_TEST(MapTypedTest, MoveConstructionAndAssignmentTransferContents) {
  PARDICT_TYPED_ALIASES;
  map_type a;
  oracle_type oracle;
  TestFixture::fill(a, 0, 3000, &oracle);
  map_type b(std::move(a));
  TestFixture::expect_matches(b, oracle);
  // The moved-from map must be usable after it has been cleared.
  a.clear();
  EXPECT_TRUE(a.empty());
  EXPECT_TRUE(a.try_emplace(key<K>(1), val<V>(1)));
  EXPECT_EQ(a.size(), 1u);
  map_type c;
  TestFixture::fill(c, 100000, 10);
  c = std::move(b);
  TestFixture::expect_matches(c, oracle);
  b.clear();
  TestFixture::fill(b, 0, 5);
  EXPECT_EQ(b.size(), 5u);
}

TYPED_TEST(MapTypedTest, SwapExchangesContents) {
  PARDICT_TYPED_ALIASES;
  map_type a, b;
  oracle_type oa, ob;
  TestFixture::fill(a, 0, 1000, &oa);
  TestFixture::fill(b, 5000, 10, &ob);
  a.swap(b);
  TestFixture::expect_matches(a, ob);
  TestFixture::expect_matches(b, oa);
  // Both keep working after the swap (insertions that force growth in the small one).
  TestFixture::fill(a, 20000, 2000, &ob);
  TestFixture::expect_matches(a, ob);
}

// --- merge
// -------------------------------------------------------------------------------------------------

TYPED_TEST(MapTypedTest, MergeMovesOnlyKeysAbsentFromTarget) {
  PARDICT_TYPED_ALIASES;
  map_type target, source;
  oracle_type expect_target, expect_source;
  for (std::uint64_t i = 0; i < 100; ++i) {
    ASSERT_TRUE(target.try_emplace(key<K>(i), val<V>(1000 + i)));
    expect_target[key<K>(i)] = 1000 + i;
  }
  for (std::uint64_t i = 50; i < 150; ++i) {
    ASSERT_TRUE(source.try_emplace(key<K>(i), val<V>(2000 + i)));
    if (i < 100) {
      expect_source[key<K>(i)] = 2000 + i;  // duplicates stay in the source, untouched
    } else {
      expect_target[key<K>(i)] = 2000 + i;
    }
  }
  EXPECT_EQ(target.merge(source), 50u);
  TestFixture::expect_matches(target, expect_target);
  TestFixture::expect_matches(source, expect_source);
  // Merging again moves nothing.
  EXPECT_EQ(target.merge(source), 0u);
  TestFixture::expect_matches(source, expect_source);
  // Merging into an empty map moves everything.
  map_type empty;
  EXPECT_EQ(empty.merge(source), 50u);
  EXPECT_TRUE(source.empty());
  TestFixture::expect_matches(empty, expect_source);
}

TYPED_TEST(MapTypedTest, MergeAcceptsOtherHasherAndRvalueSource) {
  PARDICT_TYPED_ALIASES;
  using other_map = pardict::concurrent_map<K, V, alt_hash<K>>;
  map_type target;
  oracle_type expect_target;
  TestFixture::fill(target, 0, 500, &expect_target);
  other_map source;
  oracle_type expect_source;
  for (std::uint64_t i = 400; i < 3000; ++i) {
    ASSERT_TRUE(source.try_emplace(key<K>(i), val<V>(7)));
    (i < 500 ? expect_source : expect_target)[key<K>(i)] = 7;
  }
  EXPECT_EQ(target.merge(source), 2500u);
  TestFixture::expect_matches(target, expect_target);
  EXPECT_EQ(source.size(), expect_source.size());
  for (const auto& [k, id] : expect_source) {
    std::optional<std::uint64_t> got;
    source.cvisit(k, [&](const value_type& p) { got = vid(p.second); });
    EXPECT_EQ(got, id);
  }
  other_map temp;
  for (std::uint64_t i = 2990; i < 3010; ++i) ASSERT_TRUE(temp.try_emplace(key<K>(i), val<V>(8)));
  EXPECT_EQ(target.merge(std::move(temp)), 10u);
  for (std::uint64_t i = 3000; i < 3010; ++i) expect_target[key<K>(i)] = 8;
  TestFixture::expect_matches(target, expect_target);
}

// --- equality
// -------------------------------------------------------------------------------------------------

TYPED_TEST(MapTypedTest, EqualityComparesKeysAndValuesRegardlessOfHistory) {
  PARDICT_TYPED_ALIASES;
  map_type a, b;
  EXPECT_TRUE(a == b);
  TestFixture::fill(a, 0, 1000);
  EXPECT_FALSE(a == b);
  // Same contents, different insertion order and capacity history.
  b.reserve(50000);
  for (std::uint64_t i = 1000; i-- > 0;) ASSERT_TRUE(b.try_emplace(key<K>(i), val<V>(id_for(i))));
  EXPECT_TRUE(a == b);
  EXPECT_TRUE(b == a);
  // Same keys, one different value.
  ASSERT_FALSE(b.insert_or_assign(key<K>(500), val<V>(id_for(500) + 1)));
  EXPECT_FALSE(a == b);
  ASSERT_FALSE(b.insert_or_assign(key<K>(500), val<V>(id_for(500))));
  EXPECT_TRUE(a == b);
  // Same size, one different key.
  ASSERT_EQ(b.erase(key<K>(7)), 1u);
  ASSERT_TRUE(b.try_emplace(key<K>(7777), val<V>(id_for(7))));
  EXPECT_FALSE(a == b);
  EXPECT_FALSE(b == a);
  // A map with a subset of the keys.
  ASSERT_EQ(b.erase(key<K>(7777)), 1u);
  EXPECT_FALSE(a == b);
  EXPECT_FALSE(b == a);
}

// --- growth and oracle
// -----------------------------------------------------------------------------------------

TYPED_TEST(MapTypedTest, GrowsFromEmptyTo100kElementsKeepingEverything) {
  PARDICT_TYPED_ALIASES;
  const std::uint64_t n = scaled(120000, 10000);
  map_type m;
  const auto initial_buckets = m.bucket_count();
  for (std::uint64_t i = 0; i < n; ++i) {
    ASSERT_TRUE(m.try_emplace(key<K>(i), val<V>(id_for(i)))) << i;
    if ((i & (i + 1)) ==
        0) {  // at every power of two minus one: spot-check older keys still present
      for (std::uint64_t j = 0; j <= i; j += 1 + i / 16)
        ASSERT_EQ(TestFixture::lookup(m, key<K>(j)), id_for(j)) << j;
    }
  }
  EXPECT_EQ(m.size(), n);
  EXPECT_GT(m.bucket_count(), initial_buckets);
  EXPECT_GE(m.bucket_count(), n);
  EXPECT_LE(m.load_factor(), 1.0);
  std::size_t missing = 0;
  for (std::uint64_t i = 0; i < n; ++i)
    if (TestFixture::lookup(m, key<K>(i)) != id_for(i)) ++missing;
  EXPECT_EQ(missing, 0u);
  EXPECT_FALSE(m.contains(key<K>(n)));
  EXPECT_EQ(m.cvisit_all([](const value_type&) {}), n);
}

TYPED_TEST(MapTypedTest, RandomOperationsMatchUnorderedMapOracle) {
  PARDICT_TYPED_ALIASES;
  std::mt19937_64 rng(0x5EED0001);
  map_type m;
  oracle_type model;
  const std::uint64_t key_space = 1500;
  const std::size_t steps = scaled(60000, 6000);
  for (std::size_t step = 0; step < steps && !::testing::Test::HasFailure(); ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const K k = key<K>(rng() % key_space);
    const std::uint64_t id = rng() % max_value_id;
    const auto it = model.find(k);
    const bool present = it != model.end();
    const unsigned op = static_cast<unsigned>(rng() % 1000);
    if (op < 150) {
      ASSERT_EQ(m.insert(value_type(k, val<V>(id))), !present);
      if (!present) model.emplace(k, id);
    } else if (op < 300) {
      ASSERT_EQ(m.insert_or_assign(k, val<V>(id)), !present);
      model[k] = id;
    } else if (op < 420) {
      ASSERT_EQ(m.erase(k), present ? 1u : 0u);
      model.erase(k);
    } else if (op < 500) {
      ASSERT_EQ(m.try_emplace(k, val<V>(id)), !present);
      if (!present) model.emplace(k, id);
    } else if (op < 600) {
      ASSERT_EQ(
          m.visit(k, [&](value_type& p) { p.second = val<V>((vid(p.second) + 1) % max_value_id); }),
          present ? 1u : 0u);
      if (present) it->second = (it->second + 1) % max_value_id;
    } else if (op < 700) {
      ASSERT_EQ(m.try_emplace_or_visit(
                    k, val<V>(id),
                    [&](value_type& p) { p.second = val<V>((vid(p.second) + 3) % max_value_id); }),
                !present);
      if (present) {
        it->second = (it->second + 3) % max_value_id;
      } else {
        model.emplace(k, id);
      }
    } else if (op < 760) {
      const bool erase = present && it->second % 2 == 0;
      ASSERT_EQ(m.erase_if(k, [](value_type& p) { return vid(p.second) % 2 == 0; }),
                erase ? 1u : 0u);
      if (erase) model.erase(it);
    } else if (op < 900) {
      ASSERT_EQ(m.contains(k), present);
      ASSERT_EQ(m.count(k), present ? 1u : 0u);
      ASSERT_EQ(TestFixture::lookup(m, k),
                present ? std::optional<std::uint64_t>(it->second) : std::nullopt);
      if constexpr (TestFixture::copyable) {
        const auto found = m.find(k);
        ASSERT_EQ(found.has_value(), present);
        if (present) {
          ASSERT_EQ(vid(*found), it->second);
        }
      }
    } else if (op < 930) {
      ASSERT_EQ(m.cvisit_all([](const value_type&) {}), model.size());
    } else if (op < 950) {
      m.rehash(rng() % 4000);
    } else if (op < 970) {
      m.reserve(rng() % 4000);
    } else if (op < 998) {
      const std::uint64_t mod = 5 + rng() % 20;
      const std::size_t expected =
          std::erase_if(model, [&](const auto& kv) { return kv.second % mod == 0; });
      ASSERT_EQ(m.erase_if([&](value_type& p) { return vid(p.second) % mod == 0; }), expected);
    } else {
      m.clear();
      model.clear();
    }
    ASSERT_EQ(m.size(), model.size());
    if (step % 5000 == 4999) TestFixture::expect_matches(m, model);
  }
  TestFixture::expect_matches(m, model);
}

}  // namespace

// --- insertion order
// ------------------------------------------------------------------------------------------

// Iteration visits groups in order, so keys leave a map sorted by their position in its tables. A
// map that grows while fed in that order must not pile them into its first groups (the classic
// failure of open addressing fed in its own hash order, quadratic in time): every table that
// starts empty gets its own seed, so two maps' orders are unrelated. Measured without a clock:
// how many groups lookups of the elements walk, checked at points that fall inside shards (the
// order is shard by shard, and a shard's pile-up lasts until the shard has all its keys; once
// it has, its table looks as if filled at random). Without the seeds, at some of these points
// the mean walk was 5-12 groups and the longest over 100; with them, ~1.1 and a few dozen.
TEST(InsertionOrder, FillingFromAnotherMapsIterationOrderKeepsProbesShort) {
  using map_type = pardict::concurrent_map<std::uint64_t, std::uint64_t>;
  const std::size_t n = pardict_test::scaled(200000, 50000);
  map_type a;
  for (std::uint64_t i = 0; i < n; ++i) ASSERT_TRUE(a.try_emplace(pardict_test::mix64(i), i));
  std::vector<std::uint64_t> order;
  order.reserve(n);
  a.cvisit_all([&](const auto& x) { order.push_back(x.first); });
  ASSERT_EQ(order.size(), n);

  // A healthy table at load <= 0.8 with 8-slot groups: a mean walk near 1 group.
  auto expect_short = [](const map_type& m, std::size_t elements, const std::string& what) {
    const pardict::probe_stats st = m.probe_statistics();
    ASSERT_EQ(st.elements, elements) << what;
    EXPECT_LE(static_cast<double>(st.total_groups), 1.5 * static_cast<double>(elements)) << what;
    EXPECT_LE(st.max_groups, 128u) << what;
  };
  // Fills m (not presized: it grows while the keys arrive) in the given order, checking at 53
  // points along the way.
  auto fill_checked = [&](map_type& m, const std::vector<std::uint64_t>& keys, const char* what) {
    const std::size_t step = keys.size() / 53 + 1;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      ASSERT_TRUE(m.try_emplace(keys[i], i));
      if ((i + 1) % step == 0 || i + 1 == keys.size()) {
        expect_short(m, i + 1, std::string(what) + " after " + std::to_string(i + 1) + " keys");
      }
    }
  };
  expect_short(a, n, "the source");

  map_type b;
  fill_checked(b, order, "a second map filled in the first one's order");

  // A third from the second's order (a chain of per-partition merges).
  std::vector<std::uint64_t> order_b;
  b.cvisit_all([&](const auto& x) { order_b.push_back(x.first); });
  map_type c;
  fill_checked(c, order_b, "a third map filled in the second one's order");

  // The same map emptied and refilled in its own old order: clear() starts with a new seed.
  a.clear();
  fill_checked(a, order, "the source cleared and refilled in its old order");
}
