// tests/cpp/test_concurrency.cpp: pardict::concurrent_map under concurrent use. Threads start
// together from a std::latch (run_threads); every test ends with an exact check against an oracle:
// the sum of successful inserts, per-key counters, the union of per-thread models, or the keys a
// thread had published as inserted. Tables start empty (no reserve) unless stated, so growth and
// migration run concurrently with the operations under test. Workloads shrink under sanitizers
// (PARDICT_TEST_SCALE, see support/counting.hpp), and every test runs under a watchdog that aborts
// with a message instead of hanging when the map deadlocks.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "pardict/concurrent_map.hpp"
#include "support/counting.hpp"

namespace {

using pardict_test::counted;
using pardict_test::mix64;
using pardict_test::run_threads;
using pardict_test::run_with_timeout;
using pardict_test::scaled;

using i64_map = pardict::concurrent_map<std::int64_t, std::int64_t>;

constexpr std::chrono::seconds watchdog_limit{120};

std::int64_t key_of(std::uint64_t i) { return static_cast<std::int64_t>(mix64(i + 1)); }
std::int64_t value_of(std::int64_t k) {
  return static_cast<std::int64_t>(mix64(static_cast<std::uint64_t>(k) ^ 0x5151));
}

// Number of (key, value) pairs in m that are wrong under `expected(k)` (nullopt = must not be
// present), plus a duplicate-visit and count check; returns a description of the first problem,
// empty when all is well.
template <class Map, class Expected>
std::string audit(const Map& m, std::size_t expected_size, Expected&& expected) {
  std::unordered_set<typename Map::key_type> seen;
  std::size_t duplicates = 0, wrong = 0;
  const std::size_t visited = m.cvisit_all([&](const typename Map::value_type& p) {
    if (!seen.insert(p.first).second) ++duplicates;
    if (!expected(p.first, p.second)) ++wrong;
  });
  std::string problems;
  if (visited != expected_size) problems += "cvisit_all visited " + std::to_string(visited) + "; ";
  if (m.size() != expected_size) problems += "size() is " + std::to_string(m.size()) + "; ";
  if (duplicates != 0) problems += std::to_string(duplicates) + " elements visited twice; ";
  if (wrong != 0) problems += std::to_string(wrong) + " unexpected elements or values; ";
  if (!problems.empty()) problems += "expected " + std::to_string(expected_size) + " elements";
  return problems;
}

// --- insertion from empty
// --------------------------------------------------------------------------------------

class ThreadCount : public ::testing::TestWithParam<std::size_t> {};
INSTANTIATE_TEST_SUITE_P(Threads, ThreadCount, ::testing::Values(2, 4, 8, 16),
                         // Appends rather than `"T" + std::to_string(...)`: GCC 12 reports a
                         // false -Wrestrict on that operator+ when it inlines it.
                         [](const auto& info) {
                           return std::string("T").append(std::to_string(info.param));
                         });

TEST_P(ThreadCount, DisjointInsertsFromEmptyKeepEveryKey) {
  const std::size_t threads = GetParam();
  const std::uint64_t n = scaled(200000, 20000);
  i64_map m;
  std::atomic<std::uint64_t> rejected{0};
  run_with_timeout(
      "disjoint inserts",
      [&] {
        run_threads(threads, [&](std::size_t t) {
          for (std::uint64_t i = t; i < n; i += threads) {
            const auto k = key_of(i);
            if (!m.insert({k, value_of(k)})) rejected.fetch_add(1, std::memory_order_relaxed);
          }
        });
      },
      watchdog_limit);
  EXPECT_EQ(rejected.load(), 0u) << "insert of a fresh key returned false";
  EXPECT_EQ(m.size(), n);
  std::size_t missing = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto v = m.find(key_of(i));
    if (!v || *v != value_of(key_of(i))) ++missing;
  }
  EXPECT_EQ(missing, 0u);
  const std::unordered_set<std::int64_t> keys = [&] {
    std::unordered_set<std::int64_t> s;
    for (std::uint64_t i = 0; i < n; ++i) s.insert(key_of(i));
    return s;
  }();
  EXPECT_EQ(
      audit(m, n,
            [&](std::int64_t k, std::int64_t v) { return keys.count(k) == 1 && v == value_of(k); }),
      "");
}

TEST_P(ThreadCount, OverlappingInsertsInsertEachKeyExactlyOnce) {
  const std::size_t threads = GetParam();
  const std::uint64_t n = scaled(100000, 10000);
  i64_map m;
  std::vector<std::atomic<int>> wins(n);
  std::vector<std::atomic<int>> winner(n);
  std::atomic<std::uint64_t> total_true{0};
  run_with_timeout(
      "overlapping inserts",
      [&] {
        run_threads(threads, [&](std::size_t t) {
          std::uint64_t mine = 0;
          const std::uint64_t start =
              t * n / threads;  // every thread inserts every key, from a different place
          for (std::uint64_t j = 0; j < n; ++j) {
            const std::uint64_t i = (start + j) % n;
            const bool inserted = (j % 2 == 0)
                                      ? m.insert({key_of(i), static_cast<std::int64_t>(t)})
                                      : m.try_emplace(key_of(i), static_cast<std::int64_t>(t));
            if (inserted) {
              ++mine;
              wins[i].fetch_add(1, std::memory_order_relaxed);
              winner[i].store(static_cast<int>(t), std::memory_order_relaxed);
            }
          }
          total_true.fetch_add(mine);
        });
      },
      watchdog_limit);
  EXPECT_EQ(total_true.load(), n)
      << "sum of insert()==true over all threads must equal the number of keys";
  EXPECT_EQ(m.size(), n);
  std::size_t bad = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto v = m.find(key_of(i));
    if (wins[i].load() != 1 || !v || *v != winner[i].load()) ++bad;
  }
  EXPECT_EQ(bad, 0u)
      << "keys inserted more or less than once, or holding a value other than the winner's";
}

// --- in-order placement
// -----------------------------------------------------------------------------------------

// Threads fill contiguous ranges of small keys from empty: in an in-order table the ranges' fronts
// soon meet (one range wraps onto another's positions), and one thread's keys are multiples of
// 2^20, which all go to shard 0 and pile up there. Both move shards to seeded tables while the
// other threads insert and readers look up keys the inserters have published. Every published key
// must be found, and every key be there exactly once at the end.
TEST(Concurrency, InOrderRangesFallBackWhileOthersInsertAndRead) {
  constexpr std::size_t inserters = 3, readers = 2;
  const std::uint64_t per = scaled(200000, 20000);
  auto key_in = [per](std::size_t t, std::uint64_t j) -> std::int64_t {
    if (t + 1 < inserters) return static_cast<std::int64_t>(t * per + j);
    return -static_cast<std::int64_t>((j + 1) << 20);
  };
  i64_map m;
  std::array<std::atomic<std::uint64_t>, inserters> published{};
  std::atomic<std::size_t> done{0};
  std::atomic<std::uint64_t> misses{0}, rejected{0}, reads{0};
  run_with_timeout(
      "in-order ranges",
      [&] {
        run_threads(inserters + readers, [&](std::size_t t) {
          if (t < inserters) {
            for (std::uint64_t j = 0; j < per; ++j) {
              const std::int64_t k = key_in(t, j);
              if (!m.insert({k, k ^ 0x55})) rejected.fetch_add(1);
              if (j % 64 == 63) published[t].store(j + 1, std::memory_order_release);
            }
            published[t].store(per, std::memory_order_release);
            done.fetch_add(1);
            return;
          }
          std::mt19937_64 rng(t);
          std::uint64_t local = 0;
          while (done.load() < inserters) {
            const std::size_t w = rng() % inserters;
            const std::uint64_t d = published[w].load(std::memory_order_acquire);
            if (d == 0) continue;
            const std::int64_t k = key_in(w, rng() % d);
            const auto v = m.find(k);
            if (!v || *v != (k ^ 0x55)) misses.fetch_add(1);
            ++local;
          }
          reads.fetch_add(local);
        });
      },
      watchdog_limit);
  EXPECT_EQ(rejected.load(), 0u);
  EXPECT_EQ(misses.load(), 0u) << "a published key was not found (out of " << reads.load() << ")";
  EXPECT_EQ(m.shard_geometry(0).first % 2, 1u) << "the multiples of 2^20 did not fall back";
  std::size_t missing = 0;
  for (std::size_t t = 0; t < inserters; ++t) {
    for (std::uint64_t j = 0; j < per; ++j) missing += m.contains(key_in(t, j)) ? 0 : 1;
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(
      audit(m, inserters * per, [](std::int64_t k, std::int64_t v) { return v == (k ^ 0x55); }),
      "");
}

// --- contended updates
// -----------------------------------------------------------------------------------------

TEST(Concurrency, HotKeyTryEmplaceOrVisitIncrementsAreExact) {
  constexpr std::size_t threads = 8;
  constexpr std::uint64_t hot_keys = 8;
  const std::uint64_t per_thread = scaled(200000, 4000) / hot_keys * hot_keys;
  i64_map m;
  run_with_timeout(
      "hot key increments",
      [&] {
        run_threads(threads, [&](std::size_t t) {
          for (std::uint64_t j = 0; j < per_thread; ++j) {
            const std::int64_t k = static_cast<std::int64_t>((j + t) % hot_keys);
            switch (j % 3) {
              case 0:
                m.try_emplace_or_visit(k, std::int64_t{1},
                                       [](i64_map::value_type& p) { ++p.second; });
                break;
              case 1:
                m.insert_or_visit({k, 1}, [](i64_map::value_type& p) { ++p.second; });
                break;
              default:
                if (m.visit(k, [](i64_map::value_type& p) { ++p.second; }) == 0) {
                  m.try_emplace_or_visit(k, std::int64_t{1},
                                         [](i64_map::value_type& p) { ++p.second; });
                }
            }
          }
        });
      },
      watchdog_limit);
  ASSERT_EQ(m.size(), hot_keys);
  for (std::uint64_t k = 0; k < hot_keys; ++k) {
    EXPECT_EQ(m.find(static_cast<std::int64_t>(k)),
              std::optional<std::int64_t>(threads * per_thread / hot_keys))
        << "key " << k;
  }
}

// Visitors that hold a hot key's group lock for tens of microseconds make the other threads use up
// their spins and yields and go to sleep on the group (wait_unlocked): each unlock then races a
// thread that is just counting itself as a sleeper. A lost wake-up hangs a thread (the watchdog
// aborts); readers that meet the locked group sleep the same way and must still see every
// increment in order.
TEST(Concurrency, SleepersOnAHotGroupAreAlwaysWoken) {
  constexpr std::size_t writers = 12, readers = 4;
  const std::uint64_t per_writer = scaled(1500, 150);
  i64_map m;
  m.insert({7, 0});
  std::atomic<std::uint64_t> regressions{0};
  run_with_timeout(
      "sleepers on a hot group",
      [&] {
        run_threads(writers + readers, [&](std::size_t t) {
          if (t >= writers) {
            std::int64_t last = 0;
            for (std::uint64_t j = 0; j < per_writer * 4; ++j) {
              const std::int64_t v = m.find(7).value_or(-1);
              if (v < last) regressions.fetch_add(1);
              last = v;
            }
            return;
          }
          for (std::uint64_t j = 0; j < per_writer; ++j) {
            m.visit(7, [](i64_map::value_type& p) {
              const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(20);
              while (std::chrono::steady_clock::now() < until) {
              }
              ++p.second;
            });
          }
        });
      },
      watchdog_limit);
  EXPECT_EQ(regressions.load(), 0u);
  EXPECT_EQ(m.find(7), std::optional<std::int64_t>(writers * per_writer));
}

TEST(Concurrency, HotKeyIncrementsWhileOtherThreadsGrowTheTable) {
  constexpr std::size_t incrementers = 3, growers = 2;
  const std::uint64_t increments = scaled(100000, 5000);
  const std::uint64_t grow_keys = scaled(300000, 15000);
  i64_map m;
  run_with_timeout(
      "hot increments during growth",
      [&] {
        run_threads(incrementers + growers, [&](std::size_t t) {
          if (t < incrementers) {
            for (std::uint64_t j = 0; j < increments; ++j) {
              m.try_emplace_or_visit(-1 - static_cast<std::int64_t>(j % 4), std::int64_t{1},
                                     [](i64_map::value_type& p) { ++p.second; });
            }
          } else {
            for (std::uint64_t i = t - incrementers; i < grow_keys; i += growers) {
              ASSERT_TRUE(m.insert({static_cast<std::int64_t>(i), 0}));
            }
          }
        });
      },
      watchdog_limit);
  std::int64_t total = 0;
  for (std::int64_t k = -1; k >= -4; --k) total += m.find(k).value_or(0);
  EXPECT_EQ(total, static_cast<std::int64_t>(incrementers * increments));
  EXPECT_EQ(m.size(), grow_keys + 4);
}

// --- churn with per-thread ownership
// ---------------------------------------------------------------------------

// Threads churn (insert, assign, erase, visit, conditional erase, find) on key sets they own, so
// each thread's model is exact; the union of the models must equal the map at the end.
template <class Map>
void churn_on_owned_keys(Map& m, std::uint64_t key_space, std::uint64_t steps) {
  using value_type = typename Map::value_type;
  constexpr std::size_t threads = 4;
  std::vector<std::unordered_map<std::int64_t, std::int64_t>> models(threads);
  run_with_timeout(
      "churn",
      [&] {
        run_threads(threads, [&](std::size_t t) {
          auto& model = models[t];
          std::mt19937_64 rng(1000 + t);
          for (std::uint64_t s = 0; s < steps; ++s) {
            // Thread t owns the key indices congruent to t modulo `threads`, so its model is exact.
            const std::int64_t k = key_of((rng() % (key_space / threads)) * threads + t);
            const std::int64_t v = static_cast<std::int64_t>(rng() % 1000);
            const bool present = model.count(k) != 0;
            switch (rng() % 8) {
              case 0:
              case 1:
                ASSERT_EQ(m.insert({k, v}), !present);
                model.try_emplace(k, v);
                break;
              case 2:
                ASSERT_EQ(m.insert_or_assign(k, v), !present);
                model[k] = v;
                break;
              case 3:
              case 4:
                ASSERT_EQ(m.erase(k), present ? 1u : 0u);
                model.erase(k);
                break;
              case 5:
                ASSERT_EQ(m.visit(k, [](value_type& p) { p.second += 7; }), present ? 1u : 0u);
                if (present) model[k] += 7;
                break;
              case 6: {
                const bool even = present && model[k] % 2 == 0;
                ASSERT_EQ(m.erase_if(k, [](value_type& p) { return p.second % 2 == 0; }),
                          even ? 1u : 0u);
                if (even) model.erase(k);
                break;
              }
              default: {
                const auto got = m.find(k);
                ASSERT_EQ(got.has_value(), present);
                if (present) {
                  ASSERT_EQ(*got, model[k]);
                }
              }
            }
          }
        });
      },
      watchdog_limit);
  std::unordered_map<std::int64_t, std::int64_t> all;
  for (const auto& model : models) all.insert(model.begin(), model.end());
  EXPECT_EQ(audit(m, all.size(),
                  [&](std::int64_t k, std::int64_t v) {
                    const auto it = all.find(k);
                    return it != all.end() && it->second == v;
                  }),
            "");
}

TEST(Concurrency, InsertEraseChurnOnOwnedKeysMatchesPerThreadModels) {
  i64_map m;
  churn_on_owned_keys(m, 20000, scaled(600000, 30000));
}

// A hash whose group-index bits (the low 32) take only two values while the shard, tag and
// overflow-class bits stay well mixed: every shard's keys crowd into two home groups, so most
// operations meet a full or overflowed home group and leave the home-group fast paths for the
// general probe, while others in the same groups stay on the fast paths.
struct clustered_hash {
  std::uint64_t operator()(std::int64_t k) const noexcept {
    const auto u = static_cast<std::uint64_t>(k);
    return (mix64(u) & 0xFFFFFFFF00000000ULL) | (mix64(u & 1) & 0xFFFFFFFFULL);
  }
};

TEST(Concurrency, InsertEraseChurnWithCrowdedHomeGroupsMatchesPerThreadModels) {
  pardict::concurrent_map<std::int64_t, std::int64_t, clustered_hash> m;
  churn_on_owned_keys(m, 4000, scaled(200000, 20000));
}

// --- readers during growth and updates
// -------------------------------------------------------------------------

// A 32-byte value whose words are tied together: a copy that mixes two versions fails `consistent`.
using wide = std::array<std::uint64_t, 4>;
wide wide_value(std::int64_t k, std::uint64_t version) {
  const std::uint64_t a = version, b = static_cast<std::uint64_t>(k) ^ version,
                      c = mix64(static_cast<std::uint64_t>(k) + version);
  return {a, b, c, a + b + c};
}
bool consistent(std::int64_t k, const wide& w) { return w == wide_value(k, w[0]); }

TEST(Concurrency, ReadersNeverMissPresentKeysOrSeeTornValuesDuringGrowth) {
  using map_type = pardict::concurrent_map<std::int64_t, wide>;
  constexpr std::size_t inserters = 2, updaters = 1, readers = 2;
  const std::uint64_t prefill = 2000;
  const std::uint64_t per_inserter = scaled(400000, 20000);
  map_type m;  // no reserve: the inserters make it grow many times
  for (std::uint64_t i = 0; i < prefill; ++i)
    ASSERT_TRUE(m.insert({key_of(i), wide_value(key_of(i), 0)}));
  std::array<std::atomic<std::uint64_t>, inserters> published{};
  std::atomic<std::size_t> inserters_done{0};
  std::atomic<std::uint64_t> misses{0}, torn{0}, reads{0};
  run_with_timeout(
      "readers during growth",
      [&] {
        run_threads(inserters + updaters + readers, [&](std::size_t t) {
          if (t < inserters) {
            // Inserter t owns key indices prefill + t, prefill + t + inserters, ...; publishes how
            // many it has done.
            for (std::uint64_t j = 0; j < per_inserter; ++j) {
              const std::int64_t k = key_of(prefill + j * inserters + t);
              m.insert({k, wide_value(k, 0)});
              if (j % 16 == 15) published[t].store(j + 1, std::memory_order_release);
            }
            published[t].store(per_inserter, std::memory_order_release);
            inserters_done.fetch_add(1);
          } else if (t < inserters + updaters) {
            // Rewrites prefilled values (new versions) in place and by assignment while readers
            // copy them out.
            std::uint64_t version = 1;
            while (inserters_done.load() < inserters) {
              for (std::uint64_t i = 0; i < prefill; i += 3, ++version) {
                const std::int64_t k = key_of(i);
                if (version % 2) {
                  m.visit(k, [&](map_type::value_type& p) { p.second = wide_value(k, version); });
                } else {
                  m.insert_or_assign(k, wide_value(k, version));
                }
              }
            }
          } else {
            std::mt19937_64 rng(t);
            std::uint64_t local_reads = 0;
            while (inserters_done.load() < inserters) {
              std::int64_t k;
              if (rng() % 2) {
                k = key_of(rng() % prefill);
              } else {
                const std::size_t w = rng() % inserters;
                const std::uint64_t done = published[w].load(std::memory_order_acquire);
                if (done == 0) continue;
                k = key_of(prefill + (rng() % done) * inserters + w);
              }
              ++local_reads;
              switch (local_reads % 3) {
                case 0: {
                  const auto v = m.find(k);
                  if (!v)
                    misses.fetch_add(1);
                  else if (!consistent(k, *v))
                    torn.fetch_add(1);
                  break;
                }
                case 1: {
                  if (m.cvisit(k, [&](const map_type::value_type& p) {
                        if (!consistent(k, p.second)) torn.fetch_add(1);
                      }) != 1) {
                    misses.fetch_add(1);
                  }
                  break;
                }
                default:
                  if (!m.contains(k)) misses.fetch_add(1);
              }
            }
            reads.fetch_add(local_reads);
          }
        });
      },
      watchdog_limit);
  EXPECT_EQ(misses.load(), 0u) << "a key known to be present was not found (out of " << reads.load()
                               << " reads)";
  EXPECT_EQ(torn.load(), 0u) << "a read returned a value mixing two versions";
  EXPECT_GT(reads.load(), 0u);
  EXPECT_EQ(m.size(), prefill + inserters * per_inserter);
  EXPECT_EQ(audit(m, prefill + inserters * per_inserter,
                  [](std::int64_t k, const wide& w) { return consistent(k, w); }),
            "");
}

// The scaffold of the "readers during growth" tests: m gets keys 0..prefill-1, then thread 0
// inserts `grow` more (the map migrates many times) while threads 1..readers call
// read_once(t, rng) until it is done; the map must end with every key.
template <class ReadOnce>
void read_during_growth(const char* what, i64_map& m, std::uint64_t prefill, std::uint64_t grow,
                        std::size_t readers, std::uint64_t seed, ReadOnce read_once) {
  for (std::uint64_t i = 0; i < prefill; ++i)
    ASSERT_TRUE(m.insert({key_of(i), value_of(key_of(i))}));
  std::atomic<bool> done{false};
  run_with_timeout(
      what,
      [&] {
        run_threads(1 + readers, [&](std::size_t t) {
          if (t == 0) {
            for (std::uint64_t i = prefill; i < prefill + grow; ++i)
              m.insert({key_of(i), value_of(key_of(i))});
            done.store(true);
            return;
          }
          std::mt19937_64 rng(seed + t);
          while (!done.load()) read_once(t, rng);
        });
      },
      watchdog_limit);
  EXPECT_EQ(m.size(), prefill + grow);
}

TEST(Concurrency, BulkReadersNeverMissPresentKeysDuringGrowth) {
  const std::uint64_t prefill = 5000;
  i64_map m;
  std::atomic<std::uint64_t> misses{0}, wrong{0};
  read_during_growth("bulk readers during growth", m, prefill, scaled(500000, 25000), 2, 50,
                     [&](std::size_t t, std::mt19937_64& rng) {
                       std::vector<std::int64_t> keys(257);
                       std::vector<std::int64_t> out(keys.size());
                       auto found = std::make_unique<bool[]>(keys.size());
                       for (auto& k : keys) k = key_of(rng() % prefill);
                       const auto n = (t == 1) ? m.find_many(keys, out, {found.get(), keys.size()})
                                               : m.contains_many(keys, {found.get(), keys.size()});
                       misses.fetch_add(keys.size() - n);
                       for (std::size_t i = 0; i < keys.size(); ++i) {
                         if (!found[i])
                           misses.fetch_add(1);
                         else if (t == 1 && out[i] != value_of(keys[i]))
                           wrong.fetch_add(1);
                       }
                     });
  EXPECT_EQ(misses.load(), 0u);
  EXPECT_EQ(wrong.load(), 0u);
}

// read_detached (the numba fast path's lookup, capi/jit.hpp) during growth: it may decline (-1)
// but must never call a present key absent (0) nor give a wrong value, and must leave the
// thread's epoch state as it found it. Declined lookups take the ordinary path, as the C ABI
// does. Absent keys are looked up too: 0 or -1, never 1. One thread also reads from inside a
// visitor of another map, where the detached read must always decline (the thread is inside an
// operation).
TEST(Concurrency, DetachedReadsNeverMissPresentKeysDuringGrowth) {
  using pardict::detail::epoch_domain;
  using pardict::detail::leaf_fn;
  const std::uint64_t prefill = 5000;
  const std::uint64_t grow = scaled(500000, 25000);
  i64_map m, other;
  ASSERT_TRUE(other.insert({1, 1}));
  std::atomic<std::uint64_t> misses{0}, wrong{0}, phantom{0}, decided{0}, inside_decided{0};
  read_during_growth(
      "detached readers during growth", m, prefill, grow, 2, 70,
      [&](std::size_t t, std::mt19937_64& rng) {
        epoch_domain& dom = epoch_domain::instance();
        (void)m.contains(key_of(0));  // the thread's first operation takes its epoch slot
        epoch_domain::thread_state& ts = epoch_domain::this_thread();
        const bool present = rng() % 4 != 0;
        const std::int64_t k =
            present ? key_of(rng() % prefill) : key_of(prefill + grow + rng() % 1000);
        std::int64_t v = 0;
        auto copy = leaf_fn{[&](const i64_map::value_type& x) { v = x.second; }};
        const unsigned depth_before = ts.depth;
        const bool inside_before = epoch_domain::this_thread_inside();
        const int r = m.read_detached(dom, dom.detached(ts), k, copy);
        if (ts.depth != depth_before || epoch_domain::this_thread_inside() != inside_before)
          wrong.fetch_add(1);
        if (r >= 0) decided.fetch_add(1);
        if (present) {
          if (r == 0) misses.fetch_add(1);
          if (r < 0 && m.cvisit(k, [&](const i64_map::value_type& x) { v = x.second; }) == 0)
            misses.fetch_add(1);
          if (v != value_of(k)) wrong.fetch_add(1);
        } else if (r == 1) {
          phantom.fetch_add(1);
        }
        if (t == 2 && rng() % 64 == 0) {
          other.visit(1, [&](i64_map::value_type&) {
            if (m.read_detached(dom, dom.detached(ts), k, copy) >= 0) inside_decided.fetch_add(1);
          });
        }
      });
  EXPECT_EQ(misses.load(), 0u);
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_EQ(phantom.load(), 0u);
  EXPECT_EQ(inside_decided.load(), 0u);
  EXPECT_GT(decided.load(), 0u);  // the fast path did run
}

// insert_or_assign_detached (the numba fast path's d[k] = v, capi/jit.hpp): threads insert
// disjoint keys into a map that grows from empty and keep replacing a few hot keys, so that home
// groups are contended: the fast path declines a locked group, the ordinary path it falls back
// to (as jit_set does) may sleep on one, and the fast path's unlock must then wake it (the
// watchdog catches a sleeper left behind). An insert whose charge exhausts the table's budget is
// reported (2), and the caller starts the growth (grow_after_detached_insert), as jit_set does
// through pardict_jit_grow; the ordinary path grows the map too. The map must end
// with exactly the keys inserted and their values, every new key must be reported inserted and
// every replacement must hand over the value it replaced, and the thread's epoch state must be
// left as it was found. Inside a visitor of another map the fast path must always decline.
TEST(Concurrency, DetachedUpsertsKeepExactCountsWhileTheMapGrows) {
  using pardict::detail::epoch_domain;
  using pardict::detail::leaf_fn;
  const std::size_t threads = 4;
  const std::uint64_t per_thread = scaled(100000, 10000);
  const std::uint64_t hot = 8;
  i64_map m, other;
  ASSERT_TRUE(other.insert({1, 1}));
  std::atomic<std::uint64_t> wrong{0}, decided{0}, declined{0}, inside_decided{0}, grown{0};
  run_with_timeout(
      "detached upserts during growth",
      [&] {
        run_threads(threads, [&](std::size_t t) {
          epoch_domain& dom = epoch_domain::instance();
          (void)m.contains(0);  // the thread's first operation takes its epoch slot
          epoch_domain::thread_state& ts = epoch_domain::this_thread();
          // 1 inserted, 0 replaced; `old` is the replaced value.
          auto set = [&](std::int64_t k, std::int64_t v, std::int64_t& old) {
            auto on_found = leaf_fn{[&](i64_map::value_type& x) {
              old = x.second;
              x.second = v;
            }};
            const unsigned depth_before = ts.depth;
            const bool inside_before = epoch_domain::this_thread_inside();
            int r = m.insert_or_assign_detached(dom, dom.detached(ts),
                                                &pardict::detail::wake_sleepers, k, v, on_found);
            if (ts.depth != depth_before || epoch_domain::this_thread_inside() != inside_before)
              wrong.fetch_add(1);
            if (r == 2) {  // inserted, and the table's budget is spent: the caller grows it
              grown.fetch_add(1, std::memory_order_relaxed);
              m.grow_after_detached_insert(k);
              r = 1;
            }
            if (r >= 0) {
              decided.fetch_add(1, std::memory_order_relaxed);
            } else {
              declined.fetch_add(1, std::memory_order_relaxed);
              r = m.try_emplace_or_visit(k, v,
                                         [&](i64_map::value_type& x) {
                                           old = x.second;
                                           x.second = v;
                                         })
                      ? 1
                      : 0;
            }
            return r;
          };
          for (std::uint64_t i = 0; i < per_thread; ++i) {
            const std::int64_t k = key_of(hot + t * per_thread + i);
            std::int64_t old = 0;
            if (set(k, value_of(k), old) != 1) wrong.fetch_add(1);
            // Every thread writes a hot key's own value, so a replacement must find it there.
            const std::int64_t hk = key_of(i % hot);
            old = value_of(hk);
            (void)set(hk, value_of(hk), old);
            if (old != value_of(hk)) wrong.fetch_add(1);
            if (t == 0 && i % 512 == 0) {
              other.visit(1, [&](i64_map::value_type&) {
                std::int64_t ignored = 0;
                auto keep = leaf_fn{[&](i64_map::value_type& x) { ignored = x.second; }};
                if (m.insert_or_assign_detached(dom, dom.detached(ts),
                                                &pardict::detail::wake_sleepers, hk, value_of(hk),
                                                keep) >= 0)
                  inside_decided.fetch_add(1);
              });
            }
          }
        });
      },
      watchdog_limit);
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_EQ(inside_decided.load(), 0u);
  EXPECT_GT(decided.load(), 0u);   // the fast path did run
  EXPECT_GT(grown.load(), 0u);     // reported the inserts that exhausted a budget
  EXPECT_GT(declined.load(), 0u);  // and handed what it cannot decide to the ordinary path
  EXPECT_EQ(audit(m, hot + threads * per_thread,
                  [](std::int64_t k, std::int64_t v) { return v == value_of(k); }),
            "");
}

// A detached insert (the numba fast path) cannot start a growth itself: the insert whose charge
// exhausts its table's budget is reported (2), and grow_after_detached_insert grows that table
// at once. Filled by detached inserts alone (the ordinary path only for what they decline), the
// map then keeps to its maximum load like one filled by insert().
TEST(Concurrency, DetachedInsertsReportTheInsertThatExhaustsTheBudget) {
  using pardict::detail::epoch_domain;
  using pardict::detail::leaf_fn;
  i64_map m;
  (void)m.contains(0);  // the thread's first operation takes its epoch slot
  epoch_domain& dom = epoch_domain::instance();
  epoch_domain::thread_state& ts = epoch_domain::this_thread();
  auto keep = leaf_fn{[](i64_map::value_type&) {}};
  std::uint64_t reported = 0, grew = 0;
  const std::uint64_t n = 200000;
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::int64_t k = key_of(i);
    const int r = m.insert_or_assign_detached(
        dom, dom.detached(ts), &pardict::detail::wake_sleepers, k, value_of(k), keep);
    if (r == 2) {
      ++reported;
      const std::size_t before = m.bucket_count();
      m.grow_after_detached_insert(k);
      if (m.bucket_count() > before) ++grew;
    } else if (r < 0) {
      ASSERT_TRUE(m.insert({k, value_of(k)}));
    } else {
      ASSERT_EQ(r, 1);
    }
    ASSERT_LE(m.load_factor(), i64_map::max_load_factor() + 0.01) << "after " << i + 1;
  }
  EXPECT_GT(reported, 0u);
  EXPECT_EQ(grew, reported);  // every report found its table still to be grown, and grew it
  EXPECT_EQ(m.size(), n);
  EXPECT_EQ(audit(m, n, [](std::int64_t k, std::int64_t v) { return v == value_of(k); }), "");
}

// find_many finds each key's table and home group in its first stage and uses them 2D keys later
// (read_pipeline). A migration can replace the table in between: the stale table must then send
// the lookup to the general path (its groups are marked moved), never answer from it. Here the
// key set never changes while one thread rehashes the map back and forth between two sizes, so
// every table is replaced over and over during the readers' calls; present keys must always be
// found with their values and absent keys never.
TEST(Concurrency, BulkReadersCarryingTablesAcrossStagesSurviveRehashes) {
  const std::uint64_t n = 20000;
  const std::uint64_t rounds = scaled(200, 20);
  i64_map m;
  for (std::uint64_t i = 0; i < n; ++i) ASSERT_TRUE(m.insert({key_of(i), value_of(key_of(i))}));
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> misses{0}, false_hits{0}, wrong{0}, calls{0};
  run_with_timeout(
      "bulk readers during rehashes",
      [&] {
        run_threads(3, [&](std::size_t t) {
          if (t == 0) {
            for (std::uint64_t r = 0; r < rounds; ++r) m.rehash(r % 2 ? n : 8 * n);
            done.store(true);
            return;
          }
          std::mt19937_64 rng(t + 77);
          std::vector<std::int64_t> keys(100);
          std::vector<std::int64_t> out(keys.size());
          auto found = std::make_unique<bool[]>(keys.size());
          std::uint64_t local_calls = 0;
          while (!done.load() || local_calls == 0) {
            // Even positions present, odd positions absent (indices n.. were never inserted).
            for (std::size_t i = 0; i < keys.size(); ++i)
              keys[i] = key_of(i % 2 == 0 ? rng() % n : n + rng() % n);
            m.find_many(keys, out, {found.get(), keys.size()});
            ++local_calls;
            for (std::size_t i = 0; i < keys.size(); ++i) {
              if (i % 2 == 0 && !found[i]) misses.fetch_add(1);
              if (i % 2 == 1 && found[i]) false_hits.fetch_add(1);
              if (i % 2 == 0 && found[i] && out[i] != value_of(keys[i])) wrong.fetch_add(1);
            }
          }
          calls.fetch_add(local_calls);
        });
      },
      watchdog_limit);
  EXPECT_EQ(misses.load(), 0u);
  EXPECT_EQ(false_hits.load(), 0u);
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_GT(calls.load(), 0u);
  EXPECT_EQ(m.size(), n);
}

// Erasing and re-inserting keys reuses slots at once. A reader racing with that must never pair a
// key with another key's value (value_of(k) is unique per key), whatever the read path.
template <class Map, class MakeKey, class ValueOf>
void readers_never_see_foreign_values(MakeKey make_key, ValueOf value_for) {
  constexpr std::size_t churners = 2, readers = 2;
  constexpr std::uint64_t key_space = 4096;
  const std::uint64_t rounds = scaled(300000, 20000);
  Map m;
  std::atomic<std::size_t> churners_done{0};
  std::atomic<std::uint64_t> foreign{0}, hits{0};
  run_with_timeout(
      "readers during slot reuse",
      [&] {
        run_threads(churners + readers, [&](std::size_t t) {
          std::mt19937_64 rng(t + 4242);
          if (t < churners) {
            for (std::uint64_t r = 0; r < rounds; ++r) {
              const auto k = make_key(rng() % key_space);
              if (rng() % 2) {
                m.insert({k, value_for(k)});
              } else {
                m.erase(k);
              }
            }
            churners_done.fetch_add(1);
            return;
          }
          std::uint64_t local_hits = 0;
          while (churners_done.load() < churners) {
            const auto k = make_key(rng() % key_space);
            if (const auto v = m.find(k)) {
              ++local_hits;
              if (!(*v == value_for(k))) foreign.fetch_add(1);
            }
            m.cvisit(k, [&](const typename Map::value_type& p) {
              if (!(p.second == value_for(p.first)) || !(p.first == k)) foreign.fetch_add(1);
            });
          }
          hits.fetch_add(local_hits);
        });
      },
      watchdog_limit);
  EXPECT_EQ(foreign.load(), 0u) << "a lookup returned a value stored under another key ("
                                << hits.load() << " hits)";
  EXPECT_EQ(audit(m, m.size(), [&](const auto& k, const auto& v) { return v == value_for(k); }),
            "");
}

TEST(Concurrency, ReadersNeverSeeAnotherKeysValueWhileSlotsAreReused) {
  readers_never_see_foreign_values<i64_map>([](std::uint64_t i) { return key_of(i); }, value_of);
}

TEST(Concurrency, StringKeyReadersNeverSeeAnotherKeysValueWhileSlotsAreReused) {
  using map_type = pardict::concurrent_map<std::string, std::string>;
  readers_never_see_foreign_values<map_type>(
      [](std::uint64_t i) {
        return "k" + std::to_string(i) + (i % 2 ? std::string(24, '-') : std::string());
      },
      [](const std::string& k) { return "value of " + k; });
}

// Two threads merge overlapping sources into one target at once: each key moves exactly once.
TEST(Concurrency, ConcurrentMergesIntoOneTargetMoveEachKeyOnce) {
  const std::int64_t n = static_cast<std::int64_t>(scaled(100000, 10000));
  i64_map target, a, b;
  for (std::int64_t i = 0; i < n; ++i) ASSERT_TRUE(a.insert({i, 1}));
  for (std::int64_t i = n / 2; i < n + n / 2; ++i) ASSERT_TRUE(b.insert({i, 2}));
  for (std::int64_t i = -100; i < 0; ++i) ASSERT_TRUE(target.insert({i, 0}));
  std::size_t moved_a = 0, moved_b = 0;
  run_with_timeout(
      "concurrent merges",
      [&] {
        run_threads(
            2, [&](std::size_t t) { (t == 0 ? moved_a : moved_b) = target.merge(t == 0 ? a : b); });
      },
      watchdog_limit);
  const std::size_t distinct = static_cast<std::size_t>(n + n / 2);
  EXPECT_EQ(moved_a + moved_b, distinct);
  EXPECT_EQ(target.size(), distinct + 100);
  EXPECT_EQ(a.size() + b.size(), static_cast<std::size_t>(n / 2))
      << "each overlapping key stays in exactly one source";
  EXPECT_EQ(a.size(), static_cast<std::size_t>(n) - moved_a);
  EXPECT_EQ(b.size(), static_cast<std::size_t>(n) - moved_b);
  // A key left in a source was delivered by the other source, whose value the target holds.
  a.cvisit_all([&](const i64_map::value_type& p) {
    EXPECT_EQ(target.find(p.first), std::optional<std::int64_t>(2));
  });
  b.cvisit_all([&](const i64_map::value_type& p) {
    EXPECT_EQ(target.find(p.first), std::optional<std::int64_t>(1));
  });
  EXPECT_EQ(audit(target, distinct + 100,
                  [&](std::int64_t k, std::int64_t v) {
                    if (k < 0) return v == 0;
                    if (k < n / 2) return v == 1;
                    if (k >= n) return v == 2;
                    return v == 1 || v == 2;
                  }),
            "");
}

// --- whole-table operations during inserts
// ---------------------------------------------------------------------

TEST(Concurrency, VisitAllAndSizeDuringInsertsStayWithinBounds) {
  constexpr std::size_t writers = 3;
  const std::uint64_t n = scaled(400000, 20000);
  i64_map m;
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::size_t> writers_done{0};
  std::string problem;
  std::uint64_t passes = 0;
  run_with_timeout(
      "visit_all during inserts",
      [&] {
        run_threads(writers + 1, [&](std::size_t t) {
          if (t < writers) {
            for (std::uint64_t i = t; i < n; i += writers) {
              const auto k = key_of(i);
              m.insert({k, value_of(k)});
              completed.fetch_add(1, std::memory_order_release);
            }
            writers_done.fetch_add(1);
            return;
          }
          while (writers_done.load() < writers && problem.empty()) {
            const std::uint64_t lower = completed.load(std::memory_order_acquire);
            const std::size_t s = m.size();
            if (s < lower || s > n)
              problem = "size() " + std::to_string(s) + " outside [" + std::to_string(lower) +
                        ", " + std::to_string(n) + "]";
            const std::uint64_t lower2 = completed.load(std::memory_order_acquire);
            std::unordered_set<std::int64_t> seen;
            std::size_t bad_values = 0, duplicates = 0;
            const bool mutate = passes % 2 == 0;
            const std::size_t visited = mutate ? m.visit_all([&](i64_map::value_type& p) {
              if (!seen.insert(p.first).second) ++duplicates;
              if (p.second != value_of(p.first)) ++bad_values;
            })
                                               : m.cvisit_all([&](const i64_map::value_type& p) {
                                                   if (!seen.insert(p.first).second) ++duplicates;
                                                   if (p.second != value_of(p.first)) ++bad_values;
                                                 });
            if (visited != seen.size() + duplicates)
              problem = "visit_all's return value differs from the visitor calls";
            if (duplicates)
              problem = "visit_all visited " + std::to_string(duplicates) + " elements twice";
            if (bad_values)
              problem = "visit_all saw " + std::to_string(bad_values) + " wrong values";
            if (visited < lower2 || visited > n)
              problem = "visit_all count " + std::to_string(visited) + " outside [" +
                        std::to_string(lower2) + ", " + std::to_string(n) + "]";
            ++passes;
          }
        });
      },
      watchdog_limit);
  EXPECT_EQ(problem, "");
  EXPECT_GT(passes, 0u);
  EXPECT_EQ(audit(m, n, [](std::int64_t k, std::int64_t v) { return v == value_of(k); }), "");
}

TEST(Concurrency, EraseIfPredicateConcurrentWithInsertsErasesEachMatchExactlyOnce) {
  constexpr std::size_t writers = 3;
  const std::uint64_t n = scaled(400000, 20000);
  i64_map m;
  std::atomic<std::size_t> writers_done{0};
  std::uint64_t erased_during = 0;
  run_with_timeout(
      "erase_if during inserts",
      [&] {
        run_threads(writers + 1, [&](std::size_t t) {
          if (t < writers) {
            for (std::uint64_t i = t; i < n; i += writers)
              ASSERT_TRUE(
                  m.insert({static_cast<std::int64_t>(i), value_of(static_cast<std::int64_t>(i))}));
            writers_done.fetch_add(1);
            return;
          }
          while (writers_done.load() < writers) {
            erased_during += m.erase_if([](i64_map::value_type& p) { return p.first % 2 == 1; });
          }
        });
      },
      watchdog_limit);
  const std::uint64_t erased_after =
      m.erase_if([](i64_map::value_type& p) { return p.first % 2 == 1; });
  EXPECT_EQ(erased_during + erased_after, n / 2)
      << "every odd key is inserted once and must be erased once";
  EXPECT_EQ(audit(m, n - n / 2,
                  [](std::int64_t k, std::int64_t v) { return k % 2 == 0 && v == value_of(k); }),
            "");
}

TEST(Concurrency, ReserveAndRehashDuringInsertsLoseNothing) {
  constexpr std::size_t writers = 3;
  const std::uint64_t n = scaled(400000, 20000);
  i64_map m;
  std::atomic<std::size_t> writers_done{0};
  std::atomic<std::uint64_t> lost{0};
  run_with_timeout(
      "reserve/rehash during inserts",
      [&] {
        run_threads(writers + 1, [&](std::size_t t) {
          if (t < writers) {
            std::uint64_t count = 0;
            for (std::uint64_t i = t; i < n; i += writers, ++count) {
              ASSERT_TRUE(m.insert({key_of(i), value_of(key_of(i))}));
              if (count % 1024 == 1023) {  // my own earlier keys must all still be there
                for (std::uint64_t j = t; j <= i; j += writers * 97) {
                  if (!m.contains(key_of(j))) lost.fetch_add(1);
                }
              }
            }
            writers_done.fetch_add(1);
            return;
          }
          std::mt19937_64 rng(77);
          while (writers_done.load() < writers) {
            switch (rng() % 4) {
              case 0:
                m.reserve(rng() % (2 * n));
                break;
              case 1:
                m.rehash(rng() % (2 * n));
                break;
              case 2:
                m.rehash(0);
                break;
              default:
                m.reserve(m.size() * 2);
                break;
            }
          }
        });
      },
      watchdog_limit);
  EXPECT_EQ(lost.load(), 0u);
  std::unordered_set<std::int64_t> keys;
  for (std::uint64_t i = 0; i < n; ++i) keys.insert(key_of(i));
  EXPECT_EQ(
      audit(m, n,
            [&](std::int64_t k, std::int64_t v) { return keys.count(k) && v == value_of(k); }),
      "");
}

TEST(Concurrency, ClearDuringInsertsLeavesAConsistentMap) {
  constexpr std::size_t writers = 3;
  const std::uint64_t n = scaled(300000, 15000);
  i64_map m;
  std::atomic<std::size_t> writers_done{0};
  run_with_timeout(
      "clear/reserve/rehash during inserts",
      [&] {
        run_threads(writers + 1, [&](std::size_t t) {
          if (t < writers) {
            for (std::uint64_t i = t; i < n; i += writers)
              m.insert({key_of(i), value_of(key_of(i))});
            writers_done.fetch_add(1);
            return;
          }
          std::mt19937_64 rng(78);
          while (writers_done.load() < writers) {
            switch (rng() % 3) {
              case 0:
                m.clear();
                break;
              case 1:
                m.reserve(rng() % n);
                break;
              default:
                m.rehash(rng() % n);
                break;
            }
            std::this_thread::yield();
          }
        });
      },
      watchdog_limit);
  // After quiescence: whatever survived is a subset of what was inserted, correctly valued, counted
  // and findable.
  std::unordered_set<std::int64_t> keys;
  for (std::uint64_t i = 0; i < n; ++i) keys.insert(key_of(i));
  const std::size_t survivors = m.size();
  EXPECT_LE(survivors, n);
  EXPECT_EQ(
      audit(m, survivors,
            [&](std::int64_t k, std::int64_t v) { return keys.count(k) && v == value_of(k); }),
      "");
  std::size_t present = 0;
  for (const auto k : keys) present += m.contains(k);
  EXPECT_EQ(present, survivors) << "contains() disagrees with size()/cvisit_all()";
  // Re-inserting everything inserts exactly the missing keys.
  std::size_t inserted = 0;
  for (const auto k : keys) inserted += m.insert({k, value_of(k)});
  EXPECT_EQ(inserted, n - survivors);
  EXPECT_EQ(m.size(), n);
}

// --- bulk upserts
// ----------------------------------------------------------------------------------------------

TEST(Concurrency, ConcurrentUpsertManyAddGivesExactSums) {
  constexpr std::size_t threads = 4;
  const std::size_t batch = 1000;
  const std::size_t batches = scaled(200, 10);
  const std::uint64_t pool = 5000;
  auto make_batch = [&](std::size_t t, std::size_t b, std::vector<std::int64_t>& keys,
                        std::vector<std::int64_t>& vals) {
    std::mt19937_64 rng(t * 100000 + b);
    keys.resize(batch);
    vals.resize(batch);
    for (std::size_t i = 0; i < batch; ++i) {
      keys[i] = key_of(rng() % pool);
      vals[i] = static_cast<std::int64_t>(rng() % 100);
    }
  };
  std::unordered_map<std::int64_t, std::int64_t> expected;
  {
    std::vector<std::int64_t> keys, vals;
    for (std::size_t t = 0; t < threads; ++t)
      for (std::size_t b = 0; b < batches; ++b) {
        make_batch(t, b, keys, vals);
        for (std::size_t i = 0; i < batch; ++i) expected[keys[i]] += vals[i];
      }
  }
  i64_map m;
  std::atomic<std::size_t> inserted{0};
  run_with_timeout(
      "concurrent upsert_many(add)",
      [&] {
        run_threads(threads, [&](std::size_t t) {
          std::vector<std::int64_t> keys, vals;
          for (std::size_t b = 0; b < batches; ++b) {
            make_batch(t, b, keys, vals);
            inserted.fetch_add(m.upsert_many(keys, vals, pardict::combine_op::add));
          }
        });
      },
      watchdog_limit);
  EXPECT_EQ(inserted.load(), expected.size())
      << "each distinct key must be reported as newly inserted exactly once";
  EXPECT_EQ(audit(m, expected.size(),
                  [&](std::int64_t k, std::int64_t v) {
                    const auto it = expected.find(k);
                    return it != expected.end() && it->second == v;
                  }),
            "");
}

TEST(Concurrency, ConcurrentUpsertManyAddOnFloatArraysGivesExactSums) {
  using vec4 = std::array<float, 4>;
  using map_type = pardict::concurrent_map<std::int64_t, vec4>;
  constexpr std::size_t threads = 4;
  const std::size_t rounds = scaled(1000, 50);
  const std::size_t keys_n = 300;
  map_type m;
  std::vector<std::int64_t> keys;
  for (std::size_t i = 0; i < keys_n; ++i) keys.push_back(key_of(i));
  run_with_timeout(
      "concurrent upsert_many(add) on arrays",
      [&] {
        run_threads(threads, [&](std::size_t t) {
          const vec4 v = {1.0f, 2.0f, static_cast<float>(t), -1.0f};
          const std::vector<vec4> vals(keys_n, v);
          for (std::size_t r = 0; r < rounds; ++r)
            m.upsert_many(keys, vals, pardict::combine_op::add);
        });
      },
      watchdog_limit);
  // Small integers: every partial sum is exact in float.
  const float r = static_cast<float>(rounds);
  const vec4 expected = {r * threads, 2 * r * threads, r * (0 + 1 + 2 + 3), -r * threads};
  ASSERT_EQ(m.size(), keys_n);
  for (const auto k : keys) ASSERT_EQ(m.find(k), std::optional<vec4>(expected));
}

// --- std::string keys (the locking read path)
// ------------------------------------------------------------------

TEST(Concurrency, StringKeysConcurrentInsertsAndLookups) {
  using map_type = pardict::concurrent_map<std::string, std::int64_t>;
  constexpr std::size_t threads = 4;
  const std::uint64_t n = scaled(200000, 10000);
  auto skey = [](std::uint64_t i) {
    std::string s = "item/" + std::to_string(i);
    if (i % 3 == 0) s += std::string(30, 'z');  // beyond the small-string buffer
    return s;
  };
  map_type m;
  std::array<std::atomic<std::uint64_t>, threads> published{};
  std::atomic<std::uint64_t> misses{0}, wrong{0}, total_true{0};
  run_with_timeout(
      "string keys",
      [&] {
        run_threads(threads, [&](std::size_t t) {
          std::mt19937_64 rng(t + 9);
          std::uint64_t mine = 0;
          for (std::uint64_t j = 0; j < n / threads; ++j) {
            const std::uint64_t i = j * threads + t;
            if (m.try_emplace(skey(i), static_cast<std::int64_t>(i))) ++mine;
            // Everyone also inserts a shared key set: exactly one insert per key may succeed.
            if (m.try_emplace(skey(n + j % 1000), static_cast<std::int64_t>(n + j % 1000))) ++mine;
            published[t].store(j + 1, std::memory_order_release);
            // Look up a key another thread has published.
            const std::size_t w = rng() % threads;
            const std::uint64_t done = published[w].load(std::memory_order_acquire);
            if (done > 0) {
              const std::uint64_t probe = (rng() % done) * threads + w;
              const auto v = m.find(skey(probe));
              if (!v)
                misses.fetch_add(1);
              else if (*v != static_cast<std::int64_t>(probe))
                wrong.fetch_add(1);
            }
          }
          total_true.fetch_add(mine);
        });
      },
      watchdog_limit);
  const std::uint64_t own = (n / threads) * threads;
  const std::uint64_t shared = std::min<std::uint64_t>(1000, n / threads);
  EXPECT_EQ(misses.load(), 0u);
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_EQ(total_true.load(), own + shared);
  EXPECT_EQ(audit(m, own + shared,
                  [&](const std::string& k, std::int64_t v) {
                    return k == skey(static_cast<std::uint64_t>(v));
                  }),
            "");
}

// --- instance accounting under concurrency
// ---------------------------------------------------------------------

class CountedConcurrency : public pardict_test::counted_leak_check {};

TEST_F(CountedConcurrency, ChurnNeitherLeaksNorDoubleDestroys) {
  using map_type = pardict::concurrent_map<std::int64_t, counted>;
  constexpr std::size_t threads = 4;
  const std::uint64_t steps = scaled(300000, 15000);
  std::atomic<std::uint64_t> dead_seen{0};
  const long long live_before = pardict_test::counted_counters().live.load();
  {
    map_type m;
    run_with_timeout(
        "counted churn",
        [&] {
          run_threads(threads, [&](std::size_t t) {
            std::mt19937_64 rng(300 + t);
            for (std::uint64_t s = 0; s < steps; ++s) {
              // A shared, contended key range that also grows: keys up to 4096 + s / 4.
              const std::int64_t k = static_cast<std::int64_t>(rng() % (4096 + s / 4));
              switch (rng() % 7) {
                case 0:
                  m.insert({k, counted(k)});
                  break;
                case 1:
                  m.try_emplace(k, k);
                  break;
                case 2:
                  m.insert_or_assign(k, counted(k + 1));
                  break;
                case 3:
                  m.erase(k);
                  break;
                case 4:
                  m.try_emplace_or_visit(k, k, [&](map_type::value_type& p) {
                    if (!p.second.is_alive()) dead_seen.fetch_add(1);
                    p.second.set(p.second.value() + 1);
                  });
                  break;
                case 5:
                  m.cvisit(k, [&](const map_type::value_type& p) {
                    if (!p.second.is_alive()) dead_seen.fetch_add(1);
                  });
                  break;
                default: {
                  const auto v = m.find(k);
                  if (v && !v->is_alive()) dead_seen.fetch_add(1);
                }
              }
            }
          });
        },
        watchdog_limit);
    EXPECT_EQ(dead_seen.load(), 0u) << "a visitor saw a destroyed value";
    const std::size_t size = m.size();
    std::size_t alive = 0;
    EXPECT_EQ(m.cvisit_all([&](const map_type::value_type& p) { alive += p.second.is_alive(); }),
              size);
    EXPECT_EQ(alive, size);
    // Exactly the elements in the map (and nothing else created by the test) are alive now.
    EXPECT_EQ(pardict_test::counted_counters().live.load() - live_before,
              static_cast<long long>(size));
  }
  // The fixture checks that destroying the map released every element exactly once.
}

TEST_F(CountedConcurrency, MergeAndEraseIfWhileOthersInsert) {
  using map_type = pardict::concurrent_map<std::int64_t, counted>;
  const std::uint64_t n = scaled(150000, 8000);
  map_type target;
  std::uint64_t merged = 0, erased = 0;
  std::atomic<bool> done{false};
  run_with_timeout(
      "merge/erase_if with counted values",
      [&] {
        run_threads(3, [&](std::size_t t) {
          if (t == 0) {
            for (std::uint64_t i = 0; i < n; ++i)
              target.insert({static_cast<std::int64_t>(i), counted(1)});
            done.store(true);
          } else if (t == 1) {
            while (!done.load()) {
              map_type source;
              for (std::int64_t i = 0; i < 64; ++i)
                source.try_emplace(
                    static_cast<std::int64_t>(n) + i + static_cast<std::int64_t>(merged), 2);
              merged += target.merge(source);
            }
          } else {
            while (!done.load())
              erased +=
                  target.erase_if([](map_type::value_type& p) { return p.second.value() == 2; });
          }
        });
      },
      watchdog_limit);
  erased += target.erase_if([](map_type::value_type& p) { return p.second.value() == 2; });
  EXPECT_EQ(erased, merged) << "every merged element (value 2) must be erased exactly once";
  EXPECT_EQ(target.size(), n);
}

// --- copying a map that is being modified
// ----------------------------------------------------------------------

TEST(Concurrency, CopyOfAMapUnderModificationIsAConsistentSubset) {
  constexpr std::size_t writers = 2;
  const std::uint64_t n = scaled(300000, 15000);
  i64_map m;
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::size_t> writers_done{0};
  std::vector<std::pair<std::uint64_t, std::unique_ptr<i64_map>>> copies;
  run_with_timeout(
      "copy during inserts",
      [&] {
        run_threads(writers + 1, [&](std::size_t t) {
          if (t < writers) {
            // `completed` counts finished inserts: a lower bound on the elements present.
            for (std::uint64_t i = t; i < n; i += writers) {
              m.insert({key_of(i), value_of(key_of(i))});
              completed.fetch_add(1, std::memory_order_release);
            }
            writers_done.fetch_add(1);
            return;
          }
          while (writers_done.load() < writers) {
            const std::uint64_t lower = completed.load(std::memory_order_acquire);
            copies.emplace_back(lower, std::make_unique<i64_map>(m));
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
          }
        });
      },
      watchdog_limit);
  ASSERT_FALSE(copies.empty());
  std::unordered_set<std::int64_t> keys;
  for (std::uint64_t i = 0; i < n; ++i) keys.insert(key_of(i));
  for (const auto& [lower, copy] : copies) {
    const std::size_t s = copy->size();
    EXPECT_GE(s, lower);
    EXPECT_LE(s, n);
    EXPECT_EQ(
        audit(*copy, s,
              [&](std::int64_t k, std::int64_t v) { return keys.count(k) && v == value_of(k); }),
        "");
  }
}

}  // namespace

// Guards nest: an operation run inside a visitor of another map (or of the same map, where
// allowed) must leave the outer operation announced, or a table the outer operation still reads
// could be freed under it. The outermost guard of a thread with a slot keeps no count (its
// slot's announcement tells it), nested guards and threads without a slot count in the thread's
// state: both kinds are checked here, while a second thread grows the inner map so that tables
// are retired and reclaimed meanwhile. A thread without a slot is made by keeping max_slots
// other threads alive (a thread holds its slot from its first operation until it exits).
TEST(Concurrency, NestedOperationsKeepTheOuterOneAnnounced) {
  using domain = pardict::detail::epoch_domain;
  struct seen {
    bool inside_before = false, inside_after = false, outside_at_end = true;
    std::int64_t without_slot_inside = -1, without_slot_at_end = -1;
    std::size_t index = 0;
    std::string contents;
  };
  // In a thread of its own: a visitor of `outer` inserts n keys into a fresh map (which grows,
  // retiring tables) and, with `grower`, reads a third map that another thread grows meanwhile.
  auto run_nested = [](std::uint64_t n, bool grower_thread) {
    seen r;
    i64_map outer, inner, grown;
    outer.insert({1, 1});
    std::atomic<bool> stop{false};
    std::thread grower;
    if (grower_thread) {
      grower = std::thread([&] {
        for (std::uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i)
          grown.insert({key_of(i), value_of(key_of(i))});
      });
    }
    outer.visit(1, [&](i64_map::value_type&) {
      r.index = domain::thread_index();
      r.inside_before = domain::this_thread_inside();
      for (std::uint64_t i = 0; i < n; ++i) {
        const std::int64_t k = key_of(i);
        inner.insert({k, value_of(k)});
        (void)grown.contains(k);  // reads tables the grower retires
      }
      r.inside_after = domain::this_thread_inside();
      r.without_slot_inside = domain::instance().threads_without_slot_inside();
    });
    stop.store(true);
    if (grower.joinable()) grower.join();
    r.outside_at_end = !domain::this_thread_inside();
    r.without_slot_at_end = domain::instance().threads_without_slot_inside();
    r.contents = audit(inner, n, [](std::int64_t k, std::int64_t v) { return v == value_of(k); });
    return r;
  };
  run_with_timeout(
      "nested operations",
      [&] {
        const std::uint64_t n = scaled(20000, 2000);
        seen with_slot;
        std::thread([&] { with_slot = run_nested(n, true); }).join();
        EXPECT_LT(with_slot.index, domain::max_slots);
        EXPECT_TRUE(with_slot.inside_before);
        EXPECT_TRUE(with_slot.inside_after);
        EXPECT_TRUE(with_slot.outside_at_end);
        EXPECT_EQ(with_slot.without_slot_inside, 0);
        EXPECT_EQ(with_slot.contents, "");

        // Every slot taken by threads that stay alive, outside any operation.
        std::vector<std::thread> holders;
        std::atomic<std::size_t> arrived{0};
        std::atomic<bool> release{false};
        i64_map first_use;
        for (std::size_t t = 0; t < domain::max_slots; ++t) {
          holders.emplace_back([&] {
            (void)first_use.contains(0);
            arrived.fetch_add(1);
            release.wait(false);  // asleep, not polling: 1024 pollers starve qemu-user
          });
        }
        while (arrived.load() < holders.size())
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        seen without_slot;
        // No grower here: it would be a second thread without a slot in the count.
        std::thread([&] { without_slot = run_nested(n / 4, false); }).join();
        release.store(true);
        release.notify_all();
        for (auto& h : holders) h.join();
        EXPECT_EQ(without_slot.index, domain::max_slots);  // the case this part is for
        EXPECT_TRUE(without_slot.inside_before);
        EXPECT_TRUE(without_slot.inside_after);
        EXPECT_TRUE(without_slot.outside_at_end);
        EXPECT_EQ(without_slot.without_slot_inside, 1);
        EXPECT_EQ(without_slot.without_slot_at_end, 0);
        EXPECT_EQ(without_slot.contents, "");
      },
      watchdog_limit);
}

// Each thread takes an epoch slot on its first operation and must give it back when it exits: a
// process that runs many short-lived threads (a new thread pool per parallel region) would
// otherwise run out of the domain's slots, and every later thread would fall back to the shared
// counter that holds back reclamation. 1.5x max_slots threads run one after another, each
// inserting while the table grows, and each must hold a real slot during its operations.
TEST(Concurrency, ShortLivedThreadsGiveTheirEpochSlotsBack) {
#if defined(__MINGW32__)
  // mingw-w64's GCC emulates thread_local (emutls), and tears a thread's emulated variables down
  // before the thread_local destructors run, so the releaser in epoch.hpp finds no slot to give
  // back. MSVC builds, which the Windows wheels are, have native TLS.
  GTEST_SKIP() << "thread_local destructors under emutls (mingw-w64) do not see the thread's slot";
#endif
  using domain = pardict::detail::epoch_domain;
  run_with_timeout(
      "short-lived threads",
      [] {
        i64_map m;
        const std::size_t n_threads = domain::max_slots + domain::max_slots / 2;
        std::size_t without_slot = 0;
        for (std::size_t t = 0; t < n_threads; ++t) {
          std::size_t index = 0;
          std::thread th([&] {
            for (std::uint64_t i = 0; i < 8; ++i) {
              const std::int64_t k = key_of(t * 8 + i);
              m.insert({k, value_of(k)});
            }
            index = domain::thread_index();  // the slot of this thread's last operation
          });
          th.join();
          if (index >= domain::max_slots) ++without_slot;
        }
        EXPECT_EQ(without_slot, 0u);
        EXPECT_EQ(audit(m, n_threads * 8,
                        [](std::int64_t k, std::int64_t v) { return v == value_of(k); }),
                  "");
      },
      watchdog_limit);
}
