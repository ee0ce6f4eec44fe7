// tests/cpp/test_reentrancy.cpp: visitors that call back into the map they visit, and visitors
// that throw.
//
// With PARDICT_REENTRANCY_CHECK=1 every operation entered from inside a visitor of the same map
// (directly, or through a visitor of another map) throws pardict::reentrancy_error instead of
// deadlocking on the element's lock. After the error — and after any exception thrown by a user
// visitor or constructor — the map must hold exactly what it held before and be unlocked:
// operations from this thread and from other threads, including a full migration of every shard,
// must complete (a hang is turned into an abort by run_with_timeout).
#ifndef PARDICT_REENTRANCY_CHECK
#define PARDICT_REENTRANCY_CHECK 1
#endif

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "pardict/concurrent_map.hpp"
#include "support/counting.hpp"
#include "support/generators.hpp"

namespace {

using pardict_test::counted;
using pardict_test::gen;
using pardict_test::run_with_timeout;

struct user_error : std::runtime_error {
  user_error() : std::runtime_error("thrown by a test visitor") {}
};

template <class K, class V>
struct reent_case {
  using key_type = K;
  using mapped_type = V;
};
struct r_i64_i64 : reent_case<std::int64_t, std::int64_t> {
  static constexpr const char* name = "i64_i64";
};
struct r_str_i64 : reent_case<std::string, std::int64_t> {
  static constexpr const char* name = "str_i64";
};
struct r_i64_counted : reent_case<std::int64_t, counted> {
  static constexpr const char* name = "i64_counted";
};

struct case_names {
  template <class T>
  static std::string GetName(int) {
    return T::name;
  }
};

constexpr std::uint64_t initial_elements = 600;

template <class Case>
class ReentrancyTest : public pardict_test::counted_leak_check {
 public:
  using K = typename Case::key_type;
  using V = typename Case::mapped_type;
  using map_type = pardict::concurrent_map<K, V>;
  using value_type = typename map_type::value_type;

  static K key(std::uint64_t i) { return gen<K>::make(i); }
  static V val(std::uint64_t id) { return gen<V>::value(id); }
  static std::uint64_t vid(const V& v) { return gen<V>::id(v); }

  // Key i holds value id i + 1.
  static void fill(map_type& m) {
    for (std::uint64_t i = 0; i < initial_elements; ++i)
      ASSERT_TRUE(m.try_emplace(key(i), val(i + 1)));
  }

  // The map still holds exactly what fill() put there.
  static void expect_initial_contents(const map_type& m) {
    EXPECT_EQ(m.size(), initial_elements);
    std::size_t wrong = 0;
    for (std::uint64_t i = 0; i < initial_elements; ++i) {
      std::uint64_t got = 0;
      if (m.cvisit(key(i), [&](const value_type& p) { got = vid(p.second); }) != 1 || got != i + 1)
        ++wrong;
    }
    EXPECT_EQ(wrong, 0u);
    EXPECT_EQ(m.cvisit_all([](const value_type&) {}), initial_elements);
  }

  // Every group of every shard can still be locked, from this thread and from another one: write to
  // every element, force a migration of every shard (which locks every group), and undo the writes.
  static void expect_unlocked_everywhere(map_type& m, const char* what) {
    run_with_timeout(what, [&] {
      for (std::uint64_t i = 0; i < initial_elements; ++i) {
        ASSERT_EQ(m.visit(key(i), [&](value_type& p) { p.second = val(vid(p.second) + 1000); }),
                  1u);
      }
      ASSERT_TRUE(m.try_emplace(key(1u << 30), val(1)));
      ASSERT_EQ(m.erase(key(1u << 30)), 1u);
      m.reserve(8 * initial_elements);
      ASSERT_EQ(m.visit_all([&](value_type& p) { p.second = val(vid(p.second) - 1000); }),
                initial_elements);
    });
    // ... and from the thread that saw the exception.
    for (std::uint64_t i = 0; i < initial_elements; i += 7) {
      ASSERT_EQ(m.visit(key(i), [](value_type&) {}), 1u);
      ASSERT_TRUE(m.contains(key(i)));
    }
    expect_initial_contents(m);
  }

  // Operations that enter the map (called from inside one of its visitors).
  using inner_op = std::function<void(map_type&)>;
  static std::vector<std::pair<const char*, inner_op>> inner_ops() {
    const K other = key(1);
    const K absent = key(1u << 28);
    std::vector<std::pair<const char*, inner_op>> ops;
    ops.emplace_back("contains", [=](map_type& m) { (void)m.contains(other); });
    ops.emplace_back("count", [=](map_type& m) { (void)m.count(other); });
    ops.emplace_back("cvisit other key",
                     [=](map_type& m) { m.cvisit(other, [](const value_type&) {}); });
    ops.emplace_back("visit other key", [=](map_type& m) { m.visit(other, [](value_type&) {}); });
    ops.emplace_back("visit same key", [=](map_type& m) { m.visit(key(0), [](value_type&) {}); });
    ops.emplace_back("insert", [=](map_type& m) { m.insert(value_type(absent, val(9))); });
    ops.emplace_back("try_emplace", [=](map_type& m) { m.try_emplace(absent, val(9)); });
    ops.emplace_back("insert_or_assign", [=](map_type& m) { m.insert_or_assign(other, val(9)); });
    ops.emplace_back("try_emplace_or_visit", [=](map_type& m) {
      m.try_emplace_or_visit(other, val(9), [](value_type&) {});
    });
    ops.emplace_back("erase", [=](map_type& m) { m.erase(other); });
    ops.emplace_back("erase_if key",
                     [=](map_type& m) { m.erase_if(other, [](value_type&) { return true; }); });
    ops.emplace_back("visit_all", [](map_type& m) { m.visit_all([](value_type&) {}); });
    ops.emplace_back("cvisit_all", [](map_type& m) { m.cvisit_all([](const value_type&) {}); });
    ops.emplace_back("erase_if all",
                     [](map_type& m) { m.erase_if([](value_type&) { return true; }); });
    ops.emplace_back("reserve", [](map_type& m) { m.reserve(100000); });
    ops.emplace_back("rehash", [](map_type& m) { m.rehash(0); });
    ops.emplace_back("clear", [](map_type& m) { m.clear(); });
    ops.emplace_back("merge into", [=](map_type& m) {
      map_type source;
      source.try_emplace(absent, val(9));
      m.merge(source);
    });
    ops.emplace_back("copy construct", [](map_type& m) { map_type copy(m); });
    ops.emplace_back("operator==", [](map_type& m) {
      map_type same_size;  // equal sizes, so == has to look at the elements
      fill(same_size);
      (void)(m == same_size);
    });
    if constexpr (std::is_copy_constructible_v<V>) {
      ops.emplace_back("find", [=](map_type& m) { (void)m.find(other); });
      ops.emplace_back("insert_or_visit", [=](map_type& m) {
        m.insert_or_visit(value_type(other, val(9)), [](value_type&) {});
      });
      ops.emplace_back("find_many", [=](map_type& m) {
        const std::array<K, 1> keys{other};
        std::array<V, 1> out{};
        bool found[1] = {false};
        m.find_many(keys, out, found);
      });
      ops.emplace_back("contains_many", [=](map_type& m) {
        const std::array<K, 1> keys{other};
        bool found[1] = {false};
        m.contains_many(keys, found);
      });
      ops.emplace_back("insert_or_assign_many", [=](map_type& m) {
        const std::array<K, 1> keys{absent};
        const std::array<V, 1> vals{val(9)};
        m.insert_or_assign_many(keys, vals);
      });
    }
    if constexpr (std::is_arithmetic_v<V>) {
      ops.emplace_back("upsert_many", [=](map_type& m) {
        const std::array<K, 2> keys{other, absent};
        const std::array<V, 2> vals{val(9), val(9)};
        m.upsert_many(keys, vals, pardict::combine_op::add);
      });
    }
    return ops;
  }

  // Entry points that run a callback while "inside" the map; each calls `inner` from its callback,
  // on key 0.
  using outer_op = std::function<void(map_type&, const std::function<void()>&)>;
  static std::vector<std::pair<const char*, outer_op>> outer_ops() {
    const K k = key(0);
    std::vector<std::pair<const char*, outer_op>> ops;
    ops.emplace_back("visit", [=](map_type& m, const std::function<void()>& inner) {
      m.visit(k, [&](value_type&) { inner(); });
    });
    ops.emplace_back("cvisit", [=](map_type& m, const std::function<void()>& inner) {
      m.cvisit(k, [&](const value_type&) { inner(); });
    });
    ops.emplace_back("visit on const map", [=](map_type& m, const std::function<void()>& inner) {
      std::as_const(m).visit(k, [&](const value_type&) { inner(); });
    });
    ops.emplace_back("visit_all", [](map_type& m, const std::function<void()>& inner) {
      m.visit_all([&](value_type&) { inner(); });
    });
    ops.emplace_back("cvisit_all", [](map_type& m, const std::function<void()>& inner) {
      m.cvisit_all([&](const value_type&) { inner(); });
    });
    ops.emplace_back("erase_if key", [=](map_type& m, const std::function<void()>& inner) {
      m.erase_if(k, [&](value_type&) {
        inner();
        return false;
      });
    });
    ops.emplace_back("erase_if all", [](map_type& m, const std::function<void()>& inner) {
      m.erase_if([&](value_type&) {
        inner();
        return false;
      });
    });
    ops.emplace_back("try_emplace_or_visit", [=](map_type& m, const std::function<void()>& inner) {
      m.try_emplace_or_visit(k, val(5), [&](value_type&) { inner(); });
    });
    ops.emplace_back("try_emplace_or_cvisit", [=](map_type& m, const std::function<void()>& inner) {
      m.try_emplace_or_cvisit(k, val(5), [&](const value_type&) { inner(); });
    });
    if constexpr (std::is_copy_constructible_v<V>) {
      ops.emplace_back("insert_or_visit", [=](map_type& m, const std::function<void()>& inner) {
        m.insert_or_visit(value_type(k, val(5)), [&](value_type&) { inner(); });
      });
      ops.emplace_back("insert_or_cvisit", [=](map_type& m, const std::function<void()>& inner) {
        m.insert_or_cvisit(value_type(k, val(5)), [&](const value_type&) { inner(); });
      });
    }
    return ops;
  }
};

using reent_cases = ::testing::Types<r_i64_i64, r_str_i64, r_i64_counted>;
TYPED_TEST_SUITE(ReentrancyTest, reent_cases, case_names);

TYPED_TEST(ReentrancyTest, EveryCallBackIntoTheSameMapThrowsAndLeavesItUsable) {
#if !PARDICT_REENTRANCY_CHECK
  GTEST_SKIP() << "built without PARDICT_REENTRANCY_CHECK";
#endif
  using map_type = typename TestFixture::map_type;
  map_type m;
  TestFixture::fill(m);
  for (const auto& [outer_name, outer] : TestFixture::outer_ops()) {
    for (const auto& [inner_name, inner_op] : TestFixture::inner_ops()) {
      const auto& inner = inner_op;  // clang < 16 cannot capture a structured binding
      const std::string what = std::string(inner_name) + " from inside " + outer_name;
      SCOPED_TRACE(what);
      int inner_calls = 0;
      bool threw = false;
      try {
        outer(m, [&] {
          ++inner_calls;
          inner(m);
        });
      } catch (const pardict::reentrancy_error&) {
        threw = true;
      }
      EXPECT_TRUE(threw) << "no reentrancy_error";
      EXPECT_EQ(inner_calls, 1)
          << "the visitor must have run exactly once before the error stopped it";
      TestFixture::expect_initial_contents(m);
      if (::testing::Test::HasFailure()) return;
    }
    // One full cross-thread unlock check per entry point (the inner loop above covers every
    // combination from this thread already).
    TestFixture::expect_unlocked_everywhere(m, outer_name);
    if (::testing::Test::HasFailure()) return;
  }
}

TYPED_TEST(ReentrancyTest, ReentryThroughAVisitorOfAnotherMapIsDetected) {
#if !PARDICT_REENTRANCY_CHECK
  GTEST_SKIP() << "built without PARDICT_REENTRANCY_CHECK";
#endif
  using map_type = typename TestFixture::map_type;
  using value_type = typename TestFixture::value_type;
  map_type a, b;
  TestFixture::fill(a);
  TestFixture::fill(b);
  run_with_timeout("a -> b -> a", [&] {
    EXPECT_THROW(a.visit(TestFixture::key(0),
                         [&](value_type&) {
                           b.visit(TestFixture::key(0),
                                   [&](value_type&) { (void)a.contains(TestFixture::key(1)); });
                         }),
                 pardict::reentrancy_error);
  });
  TestFixture::expect_initial_contents(a);
  TestFixture::expect_initial_contents(b);
  TestFixture::expect_unlocked_everywhere(a, "map a after a -> b -> a");
  TestFixture::expect_unlocked_everywhere(b, "map b after a -> b -> a");
}

TYPED_TEST(ReentrancyTest, VisitorMayUseADifferentMap) {
  using map_type = typename TestFixture::map_type;
  using value_type = typename TestFixture::value_type;
  map_type a, b, c;
  TestFixture::fill(a);
  run_with_timeout("visitor using other maps", [&] {
    // Same map type, different instance: every kind of operation is allowed, including ones that
    // grow it.
    a.visit(TestFixture::key(0), [&](value_type& p) {
      for (std::uint64_t i = 0; i < 2000; ++i)
        ASSERT_TRUE(b.try_emplace(TestFixture::key(i), TestFixture::val(7)));
      EXPECT_TRUE(b.contains(TestFixture::key(5)));
      EXPECT_EQ(b.visit(TestFixture::key(5),
                        [&](value_type& q) {
                          // Two levels deep: a third map.
                          EXPECT_TRUE(
                              c.try_emplace(p.first, TestFixture::val(TestFixture::vid(q.second))));
                        }),
                1u);
      EXPECT_EQ(b.erase(TestFixture::key(6)), 1u);
      b.reserve(10000);
      EXPECT_EQ(b.cvisit_all([](const value_type&) {}), 1999u);
    });
    a.cvisit_all([&](const value_type& p) {
      c.insert_or_assign(p.first, TestFixture::val(TestFixture::vid(p.second)));
    });
  });
  EXPECT_EQ(b.size(), 1999u);
  EXPECT_EQ(c.size(), initial_elements);
  TestFixture::expect_initial_contents(a);
  TestFixture::expect_unlocked_everywhere(a, "map a after using b and c from its visitors");
}

TYPED_TEST(ReentrancyTest, ThreadStateIsCleanAfterAReentrancyError) {
#if !PARDICT_REENTRANCY_CHECK
  GTEST_SKIP() << "built without PARDICT_REENTRANCY_CHECK";
#endif
  using map_type = typename TestFixture::map_type;
  using value_type = typename TestFixture::value_type;
  map_type a, b;
  TestFixture::fill(a);
  EXPECT_THROW(a.visit(TestFixture::key(0), [&](value_type&) { a.erase(TestFixture::key(1)); }),
               pardict::reentrancy_error);
  // The failed visit must not still count as "inside a": a visitor of b may now use a.
  TestFixture::fill(b);
  bool ok = false;
  run_with_timeout("b's visitor using a", [&] {
    b.visit(TestFixture::key(0), [&](value_type&) { ok = a.contains(TestFixture::key(1)); });
  });
  EXPECT_TRUE(ok);
  // And this thread can use a at top level, repeatedly.
  for (int i = 0; i < 3; ++i) {
    EXPECT_THROW(a.cvisit(TestFixture::key(2),
                          [&](const value_type&) {
                            (void)a.size();
                            a.clear();
                          }),
                 pardict::reentrancy_error);
    EXPECT_EQ(a.visit(TestFixture::key(2), [](value_type&) {}), 1u);
  }
  TestFixture::expect_initial_contents(a);
}

TYPED_TEST(ReentrancyTest, NoexceptObserversMayBeCalledFromAVisitor) {
  using map_type = typename TestFixture::map_type;
  using value_type = typename TestFixture::value_type;
  map_type m;
  TestFixture::fill(m);
  std::size_t size_seen = 0, buckets_seen = 0;
  bool empty_seen = true;
  run_with_timeout("size()/empty()/bucket_count() from a visitor", [&] {
    m.visit(TestFixture::key(3), [&](value_type&) {
      size_seen = m.size();
      empty_seen = m.empty();
      buckets_seen = m.bucket_count();
      (void)m.load_factor();
    });
  });
  EXPECT_EQ(size_seen, initial_elements);
  EXPECT_FALSE(empty_seen);
  EXPECT_GE(buckets_seen, initial_elements);
}

// --- exceptions thrown by user code
// ----------------------------------------------------------------------------

TYPED_TEST(ReentrancyTest, ThrowingVisitorLeavesMapConsistentAndUnlocked) {
  using map_type = typename TestFixture::map_type;
  using value_type = typename TestFixture::value_type;
  using V = typename TestFixture::V;
  map_type m;
  TestFixture::fill(m);
  // Throw before touching the element: it must be unchanged whatever the storage strategy.
  EXPECT_THROW(m.visit(TestFixture::key(4), [](value_type&) { throw user_error(); }), user_error);
  EXPECT_THROW(m.cvisit(TestFixture::key(4), [](const value_type&) { throw user_error(); }),
               user_error);
  EXPECT_THROW(m.try_emplace_or_visit(TestFixture::key(4), TestFixture::val(1),
                                      [](value_type&) { throw user_error(); }),
               user_error);
  EXPECT_THROW(m.erase_if(TestFixture::key(4), [](value_type&) -> bool { throw user_error(); }),
               user_error);
  TestFixture::expect_initial_contents(m);
  TestFixture::expect_unlocked_everywhere(m, "after visitors threw");

  // Throw after modifying the element.
  EXPECT_THROW(m.visit(TestFixture::key(5),
                       [](value_type& p) {
                         p.second = TestFixture::val(4242);
                         throw user_error();
                       }),
               user_error);
  std::uint64_t now = 0;
  ASSERT_EQ(
      m.cvisit(TestFixture::key(5), [&](const value_type& p) { now = TestFixture::vid(p.second); }),
      1u);
  if constexpr (std::is_trivially_copyable_v<typename TestFixture::K> &&
                std::is_trivially_copyable_v<V>) {
    EXPECT_EQ(now, 6u)
        << "for trivially copyable types a throwing visitor must leave the element unchanged";
  } else {
    EXPECT_TRUE(now == 6u || now == 4242u) << "element neither old nor new: " << now;
    if (now == 4242u) {
      ASSERT_FALSE(m.insert_or_assign(TestFixture::key(5), TestFixture::val(6)));
    }
  }
  TestFixture::expect_initial_contents(m);
  TestFixture::expect_unlocked_everywhere(m, "after a visitor threw mid-update");
}

TYPED_TEST(ReentrancyTest, ThrowingWholeTableCallbacksLeaveMapConsistentAndUnlocked) {
  using map_type = typename TestFixture::map_type;
  using value_type = typename TestFixture::value_type;
  map_type m;
  TestFixture::fill(m);
  int calls = 0;
  EXPECT_THROW(m.visit_all([&](value_type&) {
    if (++calls == 100) throw user_error();
  }),
               user_error);
  EXPECT_EQ(calls, 100);
  calls = 0;
  EXPECT_THROW(m.cvisit_all([&](const value_type&) {
    if (++calls == 300) throw user_error();
  }),
               user_error);
  TestFixture::expect_initial_contents(m);
  TestFixture::expect_unlocked_everywhere(m, "after visit_all threw");

  // erase_if(pred) throwing part-way: what it erased before the throw is gone, the rest intact.
  calls = 0;
  std::vector<typename TestFixture::K> erased;
  EXPECT_THROW(m.erase_if([&](value_type& p) {
    if (++calls == 200) throw user_error();
    if (calls % 2 == 0) {
      erased.push_back(p.first);
      return true;
    }
    return false;
  }),
               user_error);
  EXPECT_EQ(m.size(), initial_elements - erased.size());
  EXPECT_EQ(m.cvisit_all([](const value_type&) {}), m.size());
  for (const auto& k : erased) EXPECT_FALSE(m.contains(k));
  for (const auto& k : erased) {
    // Put them back so the unlock check can compare with the initial contents.
    std::uint64_t i = 0;
    while (!(TestFixture::key(i) == k)) ++i;
    ASSERT_TRUE(m.try_emplace(k, TestFixture::val(i + 1)));
  }
  TestFixture::expect_unlocked_everywhere(m, "after erase_if(pred) threw");
}

// A value whose construction from a negative number throws.
struct picky {
  std::int64_t v = 0;
  picky() = default;
  explicit picky(std::int64_t x) : v(x) {
    if (x < 0) throw user_error();
  }
  friend bool operator==(const picky& a, const picky& b) { return a.v == b.v; }
};

TEST(ExceptionSafety, ThrowingValueConstructorInsertsNothingAndLeavesMapUnlocked) {
  pardict::concurrent_map<std::int64_t, picky> m;
  for (std::int64_t i = 0; i < 500; ++i) ASSERT_TRUE(m.try_emplace(i, i));
  EXPECT_THROW(m.try_emplace(1000, std::int64_t{-1}), user_error);
  EXPECT_THROW(m.emplace(1001, std::int64_t{-1}), user_error);
  EXPECT_THROW(m.try_emplace_or_visit(1002, std::int64_t{-1}, [](auto&) {}), user_error);
  EXPECT_EQ(m.size(), 500u);
  EXPECT_FALSE(m.contains(1000));
  EXPECT_FALSE(m.contains(1001));
  EXPECT_FALSE(m.contains(1002));
  run_with_timeout("inserting the keys whose construction threw", [&] {
    EXPECT_TRUE(m.try_emplace(1000, std::int64_t{1}));
    EXPECT_TRUE(m.try_emplace(1001, std::int64_t{1}));
    EXPECT_TRUE(m.try_emplace(1002, std::int64_t{1}));
    m.reserve(20000);
  });
  EXPECT_EQ(m.size(), 503u);
  for (std::int64_t i = 0; i < 500; ++i) ASSERT_EQ(m.find(i), std::optional<picky>(picky(i)));
}

// The C ABI marks its own callbacks (copies in and out) as detail::leaf_fn: they open no scope on
// the visiting stack. Everything else still does, so a reentry under a leaf callback's caller is
// still caught, and a trivially copyable insert through try_emplace_or_visit keeps checking the
// caller's visitor.
TEST(LeafCallbacks, OpenNoVisitingScopeAndLeaveTheChecksOfOthers) {
#if !PARDICT_REENTRANCY_CHECK
  GTEST_SKIP() << "built without PARDICT_REENTRANCY_CHECK";
#else
  using map_type = pardict::concurrent_map<std::int64_t, std::int64_t>;
  using value_type = map_type::value_type;
  namespace d = pardict::detail;
  static_assert(
      std::is_same_v<d::visiting_scope_for<d::leaf_fn<void (*)(int)>>, d::no_visiting_scope>);
  static_assert(std::is_same_v<d::visiting_scope_for<void (*)(int)>, d::visiting_scope>);
  map_type a, b;
  for (std::int64_t i = 0; i < 100; ++i) ASSERT_TRUE(a.try_emplace(i, i) && b.try_emplace(i, i));
  const d::visiting_scope* outer = nullptr;
  const d::visiting_scope* under_leaf = nullptr;
  const d::visiting_scope* under_plain = nullptr;
  const d::visiting_scope* under_plain_prev = nullptr;  // read while that scope is open
  run_with_timeout("leaf and plain callbacks inside a visitor", [&] {
    a.visit(1, [&](value_type&) {
      outer = d::visiting_top;
      EXPECT_EQ(b.cvisit(2, d::leaf_fn{[&](const value_type&) { under_leaf = d::visiting_top; }}),
                1u);
      EXPECT_EQ(b.cvisit(2,
                         [&](const value_type&) {
                           under_plain = d::visiting_top;
                           under_plain_prev = d::visiting_top->prev;
                         }),
                1u);
      EXPECT_EQ(d::visiting_top, outer);  // both scopes closed again
      // Inserts whose construction is a leaf (trivially copyable): reentering the visited map
      // is still an error, a caller's callback that reenters its own map too, and an insert
      // into another map works.
      EXPECT_THROW(a.try_emplace_or_visit(1000, std::int64_t{5}, [](value_type&) {}),
                   pardict::reentrancy_error);
      EXPECT_THROW(
          b.try_emplace_or_visit(3, std::int64_t{5}, [&](value_type&) { (void)b.contains(4); }),
          pardict::reentrancy_error);
      EXPECT_TRUE(b.try_emplace_or_visit(1000, std::int64_t{5}, [](value_type&) {}));
    });
  });
  EXPECT_NE(outer, nullptr);
  EXPECT_EQ(under_leaf, outer);
  ASSERT_NE(under_plain, nullptr);
  EXPECT_NE(under_plain, outer);
  EXPECT_EQ(under_plain_prev, outer);
  EXPECT_FALSE(a.contains(1000));
  EXPECT_EQ(b.find(1000), std::optional<std::int64_t>(5));
  EXPECT_EQ(b.find(3), std::optional<std::int64_t>(3));
#endif
}

}  // namespace
