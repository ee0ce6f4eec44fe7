// The C ABI under threads: refcounted values replaced, read and popped concurrently; at the end
// every reference is accounted for (none leaked, none released twice).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include "jit.hpp"
#include "pardict_capi.h"
#include "support/counting.hpp"
#include "support/fake_nrt.hpp"

using pardict_test::array1d;
using pardict_test::fake_meminfo;
using pardict_test::fake_release;
using pardict_test::float_array;

namespace {
// Joins `pool` while one more thread, released by `start` with the pool, clears d over and over.
void join_while_clearing(pardict_dict* d, pardict_test::start_latch& start,
                         std::vector<std::thread>& pool) {
  std::atomic<bool> done{false};
  std::thread clearer([&] {
    start.arrive_and_wait();
    while (!done.load()) {
      EXPECT_EQ(pardict_clear(d), PARDICT_OK);
      std::this_thread::yield();
    }
  });
  for (auto& th : pool) th.join();
  done.store(true);
  clearer.join();
}

struct CapiConcurrency : pardict_test::balanced_capi_test {};

// A dictionary of 1-D arrays stored as one word (their MemInfo), int64-sized keys.
pardict_dict* new_array_dict() {
  std::int32_t st = 99;
  pardict_dict* d = pardict_new(8, 8, 0, 0, 1u, 0, &st);
  EXPECT_EQ(st, PARDICT_OK);
  return d;
}

struct ref_value {
  void* mi;
  std::int64_t payload;
};
}  // namespace

TEST_F(CapiConcurrency, RefcountedValuesUnderContention) {
  constexpr int threads = 4, keys = 8, rounds = 4000;
  std::int32_t st;
  pardict_dict* d = pardict_new(8, 16, 0, 0, 1u, 0, &st);
  ASSERT_EQ(st, PARDICT_OK);
  // One meminfo per (thread, round): each starts with the writer's reference.
  std::vector<fake_meminfo> mis(threads * rounds);
  pardict_test::start_latch start(threads);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int r = 0; r < rounds; ++r) {
        const std::int64_t k = (r * 3 + t) % keys;
        fake_meminfo* mine = &mis[t * rounds + r];
        ref_value v{mine, r}, out{};
        switch (r % 4) {
          case 0:
          case 1:
            if (pardict_set(d, &k, &v, &out) == PARDICT_REPLACED) fake_release(out.mi);
            break;
          case 2:
            if (pardict_get(d, &k, &out) == PARDICT_FOUND) {
              // The reference we got keeps the value alive even if it is replaced now.
              EXPECT_GE(static_cast<fake_meminfo*>(out.mi)->refct.load(), 1u);
              fake_release(out.mi);
            }
            break;
          default:
            if (pardict_pop(d, &k, &out) == PARDICT_FOUND) fake_release(out.mi);
            break;
        }
        fake_release(mine);  // the writer drops its own reference
      }
    });
  }
  for (auto& t : ts) t.join();
  pardict_free(d);
  for (auto& m : mis) {
    EXPECT_EQ(m.refct.load(), 0u);
    EXPECT_EQ(m.destroyed.load(), 1);
  }
}

// pardict_combine is one atomic step: concurrent adds to a few hot keys (while the table grows
// under inserts of cold keys) lose no update, and min/max end at the true extremes.
TEST_F(CapiConcurrency, CombineLosesNoUpdate) {
  constexpr int threads = 4, rounds = 20000, hot = 3;
  std::int32_t st;
  pardict_dict* sum = pardict_new(8, 16, 0, 0, 0, 0, &st);
  pardict_dict* mx = pardict_new(8, 8, 0, 0, 0, 0, &st);
  ASSERT_EQ(st, PARDICT_OK);
  const std::int32_t f_sum[] = {0, PARDICT_KIND_I64, 8, PARDICT_KIND_F64};
  const std::int32_t f_max[] = {0, PARDICT_KIND_I64};
  pardict_test::start_latch start(threads);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int r = 0; r < rounds; ++r) {
        const std::int64_t k = r % hot;
        const struct {
          std::int64_t n;
          double x;
        } v{1, 0.5};
        EXPECT_GE(pardict_combine(sum, &k, &v, PARDICT_OP_ADD, f_sum, 2, nullptr), 0);
        const std::int64_t cold = 1000 + t * rounds + r, m = t * rounds + r;
        EXPECT_EQ(pardict_combine(sum, &cold, &v, PARDICT_OP_ADD, f_sum, 2, nullptr),
                  PARDICT_NEW_KEY);
        EXPECT_GE(pardict_combine(mx, &k, &m, PARDICT_OP_MAX, f_max, 1, nullptr), 0);
      }
    });
  }
  for (auto& t : ts) t.join();
  std::int64_t total = 0;
  for (std::int64_t k = 0; k < hot; ++k) {
    struct {
      std::int64_t n;
      double x;
    } out{};
    ASSERT_EQ(pardict_get(sum, &k, &out), PARDICT_FOUND);
    total += out.n;
    EXPECT_EQ(out.x, 0.5 * static_cast<double>(out.n));  // exact: small multiples of 0.5
    std::int64_t m = 0;
    ASSERT_EQ(pardict_get(mx, &k, &m), PARDICT_FOUND);
    // the largest m = t * rounds + r with r % hot == k
    std::int64_t want = 0;
    for (int r = rounds - 1; r >= 0; --r) {
      if (r % hot == k) {
        want = static_cast<std::int64_t>(threads - 1) * rounds + r;
        break;
      }
    }
    EXPECT_EQ(m, want);
  }
  EXPECT_EQ(total, static_cast<std::int64_t>(threads) * rounds);
  EXPECT_EQ(pardict_len(sum), hot + threads * rounds);
  pardict_free(sum);
  pardict_free(mx);
}

// Bulk operations split over threads: group-by sums equal a serial count, get_many finds exactly
// the keys present, and layouts with references are refused.
TEST_F(CapiConcurrency, BulkCombineAndGetManyMatchASerialModel) {
  constexpr std::int64_t n = 200000, distinct = 5000;
  std::vector<std::int64_t> keys(n), ones(n, 1);
  std::vector<std::int64_t> model(distinct, 0);
  std::uint64_t x = 88172645463325252ULL;
  for (auto& k : keys) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    k = static_cast<std::int64_t>(x % distinct);
    ++model[k];
  }
  std::int32_t st;
  pardict_dict* d = pardict_new(8, 8, 0, 0, 0, 0, &st);
  const std::int32_t fields[] = {0, PARDICT_KIND_I64};
  std::int64_t inserted = -1;
  for (int rep = 0; rep < 2; ++rep) {
    ASSERT_EQ(pardict_combine_many(d, keys.data(), ones.data(), n, PARDICT_OP_ADD, fields, 1, 4,
                                   &inserted),
              PARDICT_OK);
    EXPECT_EQ(inserted, rep == 0 ? std::count_if(model.begin(), model.end(),
                                                 [](std::int64_t c) { return c > 0; })
                                 : 0);
  }
  std::vector<std::int64_t> probe(2 * distinct), got(2 * distinct, -1);
  for (std::int64_t i = 0; i < 2 * distinct; ++i) probe[i] = i;
  std::vector<std::uint8_t> found(2 * distinct, 7);
  std::int64_t n_found = -1;
  ASSERT_EQ(pardict_get_many(d, probe.data(), 2 * distinct, got.data(), found.data(), 3, &n_found),
            PARDICT_OK);
  std::int64_t present = 0;
  for (std::int64_t i = 0; i < 2 * distinct; ++i) {
    const bool want = i < distinct && model[i] > 0;
    present += want;
    EXPECT_EQ(found[i], want ? 1 : 0) << i;
    EXPECT_EQ(got[i], want ? 2 * model[i] : -1) << i;
  }
  EXPECT_EQ(n_found, present);
  // assign
  ASSERT_EQ(pardict_combine_many(d, probe.data(), probe.data(), 2 * distinct, PARDICT_OP_ASSIGN,
                                 nullptr, 0, 2, nullptr),
            PARDICT_OK);
  ASSERT_EQ(pardict_get_many(d, probe.data(), 2 * distinct, got.data(), nullptr, 2, nullptr),
            PARDICT_OK);
  EXPECT_EQ(got, probe);
  EXPECT_EQ(pardict_len(d), 2 * distinct);
  pardict_free(d);

  // Values holding references cannot be copied out in bulk; a membership test reads none.
  pardict_dict* r = pardict_new(8, 16, 0, 0, 1u, 0, &st);
  std::vector<std::int64_t> out(2);
  EXPECT_EQ(pardict_get_many(r, probe.data(), 1, out.data(), nullptr, 1, nullptr),
            PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_get_many(r, probe.data(), 1, nullptr, nullptr, 1, nullptr), PARDICT_OK);
  pardict_free(r);
}

// Batches large enough to be applied shard by shard (more than 2^17 rows per worker), with
// repeated keys: sums are exact on every thread count, and with one thread an assign keeps each
// key's last row (the partition by shard is stable).
TEST_F(CapiConcurrency, LargeBatchesGoShardByShardAndKeepEachKeysOrder) {
  constexpr std::int64_t n = 700000, distinct = 90000;
  std::vector<std::int64_t> keys(n), vals(n);
  std::vector<std::int64_t> sum(distinct, 0), last(distinct, -1);
  std::uint64_t x = 0x243f6a8885a308d3ULL;
  for (std::int64_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    keys[i] = static_cast<std::int64_t>(x % distinct) * 1000003;
    vals[i] = static_cast<std::int64_t>(x >> 40) % 1000;
    sum[keys[i] / 1000003] += vals[i];
    last[keys[i] / 1000003] = vals[i];
  }
  const std::int32_t fields[] = {0, PARDICT_KIND_I64};
  for (const std::int32_t threads : {1, 2, 4}) {
    std::int32_t st;
    pardict_dict* add = pardict_new(8, 8, 0, 0, 0, 0, &st);
    pardict_dict* set = pardict_new(8, 8, 0, 0, 0, 0, &st);
    std::int64_t added = -1, assigned = -1;
    ASSERT_EQ(pardict_combine_many(add, keys.data(), vals.data(), n, PARDICT_OP_ADD, fields, 1,
                                   threads, &added),
              PARDICT_OK);
    ASSERT_EQ(pardict_combine_many(set, keys.data(), vals.data(), n, PARDICT_OP_ASSIGN, nullptr, 0,
                                   threads, &assigned),
              PARDICT_OK);
    const auto present = static_cast<std::int64_t>(
        std::count_if(last.begin(), last.end(), [](std::int64_t v) { return v >= 0; }));
    EXPECT_EQ(added, present);
    EXPECT_EQ(assigned, present);
    for (std::int64_t k = 0; k < distinct; ++k) {
      if (last[k] < 0) continue;
      const std::int64_t key = k * 1000003;
      std::int64_t v = 0;
      ASSERT_EQ(pardict_get(add, &key, &v), PARDICT_FOUND);
      EXPECT_EQ(v, sum[k]) << k;
      if (threads == 1) {
        ASSERT_EQ(pardict_get(set, &key, &v), PARDICT_FOUND);
        EXPECT_EQ(v, last[k]) << k;
      }
    }
    pardict_free(add);
    pardict_free(set);
  }
}

// pardict_load_many builds what pardict_combine_many with PARDICT_OP_ASSIGN would, on several
// threads, from another dictionary's export (shards loaded in one pass, with or without the
// exporter's geometry), from rows in no useful order (every shard refused, the ordinary path),
// and into a dictionary that already holds some keys (their shards refused).
TEST_F(CapiConcurrency, LoadManyBuildsWhatAnAssignWouldFromAnyOrder) {
  constexpr std::int64_t n = 120000;
  std::vector<std::int64_t> keys(n), vals(n);
  for (std::int64_t i = 0; i < n; ++i) {
    keys[i] = static_cast<std::int64_t>(static_cast<std::uint64_t>(i) * 0x9e3779b97f4a7c15ULL);
    vals[i] = 3 * i + 1;
  }
  std::int32_t st;
  pardict_dict* src = pardict_new(8, 8, 0, 0, 0, 0, &st);
  ASSERT_EQ(pardict_combine_many(src, keys.data(), vals.data(), n, PARDICT_OP_ASSIGN, nullptr, 0, 2,
                                 nullptr),
            PARDICT_OK);
  std::vector<std::int64_t> ek(n), ev(n);
  std::int64_t met = 0;
  ASSERT_EQ(pardict_export_many(src, ek.data(), ev.data(), n, &met), PARDICT_OK);
  ASSERT_EQ(met, n);
  std::array<std::uint32_t, PARDICT_SHARDS> seeds{};
  std::array<std::uint64_t, PARDICT_SHARDS> groups{};
  ASSERT_EQ(pardict_shard_geometry(src, seeds.data(), groups.data()), PARDICT_OK);
  for (std::size_t s = 0; s < PARDICT_SHARDS; ++s) EXPECT_GT(groups[s], 0u);
  std::vector<std::int64_t> rk(ek.rbegin(), ek.rend()), rv(ev.rbegin(), ev.rend());

  struct load_case {
    const char* name;
    const std::vector<std::int64_t>& k;
    const std::vector<std::int64_t>& v;
    bool geometry;
    std::int64_t prefill;
  };
  const load_case cases[] = {{"export, geometry", ek, ev, true, 0},
                             {"export", ek, ev, false, 0},
                             {"reversed", rk, rv, true, 0},
                             {"export into a non-empty dict", ek, ev, true, 500}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    pardict_dict* d = pardict_new(8, 8, 0, 0, 0, 0, &st);
    for (std::int64_t i = 0; i < c.prefill; ++i) {
      const std::int64_t other = -1;
      pardict_set(d, &keys[i], &other, nullptr);
    }
    std::int64_t added = -1;
    ASSERT_EQ(pardict_load_many(d, c.k.data(), c.v.data(), n, c.geometry ? seeds.data() : nullptr,
                                c.geometry ? groups.data() : nullptr, 4, &added),
              PARDICT_OK);
    EXPECT_EQ(added, n - c.prefill);
    EXPECT_EQ(pardict_len(d), n);
    std::vector<std::int64_t> got(n, -7);
    std::int64_t found = 0;
    ASSERT_EQ(pardict_get_many(d, keys.data(), n, got.data(), nullptr, 2, &found), PARDICT_OK);
    EXPECT_EQ(found, n);
    EXPECT_EQ(got, vals);
    // The loaded tables are ordinary ones: n more keys make every shard grow.
    std::vector<std::int64_t> more(n);
    for (std::int64_t i = 0; i < n; ++i) more[i] = keys[i] + 1;
    ASSERT_EQ(pardict_combine_many(d, more.data(), vals.data(), n, PARDICT_OP_ASSIGN, nullptr, 0, 2,
                                   &added),
              PARDICT_OK);
    EXPECT_EQ(added, n);
    EXPECT_EQ(pardict_len(d), 2 * n);
    pardict_free(d);
  }

  // Rows repeated (the second copy out of shard order): assigned once, counted once.
  std::vector<std::int64_t> twice(ek), twice_v(ev);
  twice.insert(twice.end(), ek.begin(), ek.begin() + 1000);
  twice_v.insert(twice_v.end(), 1000, 5);
  pardict_dict* d = pardict_new(8, 8, 0, 0, 0, 0, &st);
  std::int64_t added = -1;
  ASSERT_EQ(
      pardict_load_many(d, twice.data(), twice_v.data(), static_cast<std::int64_t>(twice.size()),
                        seeds.data(), groups.data(), 2, &added),
      PARDICT_OK);
  EXPECT_EQ(added, n);
  EXPECT_EQ(pardict_len(d), n);
  std::int64_t v = 0;
  ASSERT_EQ(pardict_get(d, &ek[10], &v), PARDICT_FOUND);
  EXPECT_EQ(v, 5);
  pardict_free(d);

  // Bad arguments: status codes, nothing touched.
  d = pardict_new(8, 8, 0, 0, 0, 0, &st);
  EXPECT_EQ(pardict_load_many(d, nullptr, ev.data(), 1, nullptr, nullptr, 1, nullptr),
            PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_load_many(d, ek.data(), ev.data(), -1, nullptr, nullptr, 1, nullptr),
            PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_shard_geometry(d, nullptr, groups.data()), PARDICT_ERR_INVALID);
  // An absurd exporter group count only costs a capped amount of memory.
  std::array<std::uint64_t, PARDICT_SHARDS> huge{};
  huge.fill(std::uint64_t{1} << 40);
  ASSERT_EQ(pardict_load_many(d, ek.data(), ev.data(), 1000, seeds.data(), huge.data(), 1, &added),
            PARDICT_OK);
  EXPECT_EQ(added, 1000);
  EXPECT_EQ(pardict_len(d), 1000);
  pardict_free(d);
  pardict_dict* r = pardict_new(8, 16, 0, 0, 1u, 0, &st);  // values hold a reference
  EXPECT_EQ(pardict_load_many(r, ek.data(), ev.data(), 1, nullptr, nullptr, 1, nullptr),
            PARDICT_ERR_INVALID);
  pardict_free(r);
  pardict_free(src);
}

// Threads finding and remembering copies of one source at once (more threads than stripes, so
// some share one): every reference handed out or kept is released exactly once.
TEST_F(CapiConcurrency, UnownedCopiesFromManyThreads) {
  std::int32_t st;
  pardict_dict* d = pardict_new(8, sizeof(array1d), 0, 0, 1u, 0, &st);
  ASSERT_EQ(st, PARDICT_OK);
  float src_data[3] = {1, 2, 3};
  const array1d src = float_array(nullptr, src_data, 3);
  constexpr int threads = 80, rounds = 200;
  std::vector<fake_meminfo> mis(threads * rounds);
  std::vector<std::array<float, 3>> datas(threads * rounds, {1, 2, 3});
  std::atomic<long> hits{0};
  pardict_test::start_latch start(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int r = 0; r < rounds; ++r) {
        array1d out{};
        if (pardict_unowned_find(d, &src, 1, &out) == PARDICT_FOUND) {
          EXPECT_EQ(static_cast<float*>(out.data)[2], 3.0f);
          fake_release(out.mi);
          hits.fetch_add(1);
          continue;
        }
        const int i = t * rounds + r;
        const array1d copy = float_array(&mis[i], datas[i].data(), 3);
        EXPECT_EQ(pardict_unowned_remember(d, &src, 1, &copy), PARDICT_OK);
      }
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_GT(hits.load(), 0);
  pardict_free(d);
  for (auto& mi : mis) EXPECT_EQ(mi.refct.load(), 1u);
}

// Threads storing through, finding and remembering views of one array in a one-word dictionary
// of arrays (more threads than stripes), while another clears it: every reference handed out,
// stored or kept is released exactly once.
TEST_F(CapiConcurrency, ViewsFromManyThreadsWithClears) {
  pardict_dict* d = new_array_dict();
  ASSERT_NE(d, nullptr);
  fake_meminfo owner;
  float data[3] = {1, 2, 3};
  const array1d a = float_array(&owner, data, 3);
  constexpr int threads = 80, rounds = 200;
  std::vector<fake_meminfo> views(threads * rounds);
  std::atomic<long> stored{0};
  pardict_test::start_latch start(threads + 1);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int r = 0; r < rounds; ++r) {
        const std::uint64_t key = static_cast<std::uint64_t>(t * rounds + r);
        const std::int32_t s = pardict_set_view(d, &key, &a);
        if (s == PARDICT_INSERTED || s == PARDICT_REPLACED) {
          stored.fetch_add(1);
          continue;
        }
        EXPECT_EQ(s, PARDICT_NEED_COPY);
        void* out = nullptr;
        if (pardict_view_find(d, &a, &out) == PARDICT_FOUND) {
          fake_release(out);
          continue;
        }
        EXPECT_EQ(pardict_view_remember(d, &a, &views[key]), PARDICT_OK);
      }
    });
  }
  join_while_clearing(d, start, pool);
  EXPECT_GT(stored.load(), 0);
  pardict_free(d);
  for (auto& mi : views) EXPECT_EQ(mi.refct.load(), 1u);
}

// The numba fast path's array store (capi/jit.hpp, jit_set_array; in jitted code it is inlined
// from the bitcode, here it is compiled into the test) from more threads than stripes, while
// another thread clears: an array stored as its own MemInfo, an owner-less one stored as the
// thread's copy of it, and one stored as the thread's view of it, under keys that collide so that
// values are replaced. Every reference stored, handed back (old_out) or remembered is released
// exactly once.
// A thread's stripe of unowned copies and its cell of the books are its epoch slot's: taken with
// plain stores, passed to the next thread that takes the slot after the owner exits. Waves of
// threads store one owner-less array (through the numba fast path, as prange does) and pop half of
// their keys: from the second wave on, every thread's first store finds the copy its slot's
// previous owner left (it is the same source with the same contents), so no wave after the first
// makes a copy. Then every slot is held by a sleeping thread, and one more thread, without a
// slot, stores: it uses a shared stripe (taken with an exchange) and counts in the shared cell.
// The books stay exact throughout: every reference the dictionary holds is counted once.
TEST_F(CapiConcurrency, StripesAndBooksPassWithTheirSlots) {
#if defined(__MINGW32__)
  // Under emutls (mingw-w64) a thread cannot give its epoch slot back (see
  // Concurrency.ShortLivedThreadsGiveTheirEpochSlotsBack), so no slot passes to a new thread, and
  // earlier tests have used every slot: all threads here would be without one.
  GTEST_SKIP() << "thread_local destructors under emutls (mingw-w64) do not see the thread's slot";
#endif
  using domain = pardict::detail::epoch_domain;
  ASSERT_EQ(pardict_jit_thread_ctx()->abi_id, pardict::capi::jit_abi_id());
  pardict_dict* d = new_array_dict();
  ASSERT_NE(d, nullptr);
  float data[3] = {1, 2, 3};
  const array1d borrowed = float_array(nullptr, data, 3);
  constexpr int waves = 3, threads = 24, rounds = 200;
  std::vector<fake_meminfo> made(waves * threads + 64);  // one copy per thread of wave 0 at most
  std::vector<std::array<float, 3>> copies(made.size(), {1, 2, 3});
  std::atomic<std::size_t> next_copy{0};
  // d[key] = borrowed, as jitted code does it: a miss makes a copy, remembers it and stores it.
  // True on a miss.
  auto store = [&](std::uint64_t key) -> bool {
    void* old = nullptr;
    std::int32_t s = pardict::capi::jit_set_array<std::uint64_t>(d, &key, &borrowed, &old, true,
                                                                 pardict_jit_fences());
    EXPECT_EQ(old, nullptr);
    if (s != PARDICT_NEED_COPY) {
      EXPECT_EQ(s, PARDICT_INSERTED);
      return false;
    }
    const std::size_t i = next_copy.fetch_add(1);
    if (i >= made.size()) {
      ADD_FAILURE() << "more copies than expected";
      return true;
    }
    const array1d copy = float_array(&made[i], copies[i].data(), 3);
    EXPECT_EQ(pardict_unowned_remember(d, &borrowed, 1, &copy), PARDICT_OK);
    EXPECT_EQ(pardict_set_array(d, &key, &copy, 1), PARDICT_INSERTED);
    return true;
  };
  // Per thread: its slot and its misses. A slot whose stripe holds a copy of `borrowed` (left by
  // an earlier thread) gives its next owner no miss; any other slot exactly one.
  std::vector<bool> holds_copy(domain::max_slots, false);
  std::int64_t expected_len = 0;
  std::size_t later_hits = 0;
  for (int w = 0; w < waves; ++w) {
    std::vector<std::size_t> slot(threads), missed(threads, 0);
    // The wave's threads exit together: one that exited early would hand its slot to another.
    pardict_test::start_latch start(threads), finish(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, w, t] {
        start.arrive_and_wait();
        for (int r = 0; r < rounds; ++r) {
          const auto key = static_cast<std::uint64_t>((w * threads + t) * rounds + r);
          if (store(key)) ++missed[t];
          if (r % 2 == 1) {
            void* out = nullptr;
            EXPECT_EQ(pardict_pop(d, &key, &out), PARDICT_FOUND);
            if (out != nullptr) fake_release(out);
          }
        }
        slot[t] = domain::thread_index();
        finish.arrive_and_wait();
      });
    }
    for (auto& th : pool) th.join();
    for (int t = 0; t < threads; ++t) {
      ASSERT_LT(slot[t], domain::max_slots);
      EXPECT_EQ(missed[t], holds_copy[slot[t]] ? 0u : 1u) << "wave " << w << " slot " << slot[t];
      if (holds_copy[slot[t]]) ++later_hits;
      holds_copy[slot[t]] = true;
    }
    expected_len += threads * rounds / 2;
    ASSERT_EQ(pardict_len(d), expected_len);
  }
  // Slots go to the lowest free index, so later waves reuse the first one's (a worker thread of
  // the library may take or free one between waves).
  EXPECT_GT(later_hits, static_cast<std::size_t>(threads));
  // The dictionary's references (one per key) and the stripes' (one per remembered copy).
  EXPECT_EQ(pardict_live_refs() - refs0, expected_len + static_cast<std::int64_t>(next_copy));

  // Every slot held by a sleeping thread: the next thread has none.
  std::vector<std::thread> holders;
  std::atomic<std::size_t> arrived{0};
  std::atomic<bool> release{false};
  for (std::size_t t = 0; t < domain::max_slots; ++t) {
    holders.emplace_back([&] {
      (void)pardict_len(d);
      const std::uint64_t k = ~std::uint64_t{0};
      (void)pardict_contains(d, &k);
      arrived.fetch_add(1);
      release.wait(false);  // asleep, not polling
    });
  }
  while (arrived.load() < holders.size()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::size_t slotless_index = 0, slotless_misses = 0;
  const std::size_t copies_before = next_copy.load();
  std::thread([&] {
    for (int r = 0; r < 8; ++r) {
      const auto key = static_cast<std::uint64_t>(1'000'000 + r);
      if (store(key)) ++slotless_misses;
    }
    slotless_index = domain::thread_index();
  }).join();
  release.store(true);
  release.notify_all();
  for (auto& h : holders) h.join();
  EXPECT_EQ(slotless_index, domain::max_slots);  // the case this part is for
  EXPECT_EQ(slotless_misses, 1u);  // its shared stripe, new in d: a copy made once, then found
  EXPECT_EQ(next_copy.load(), copies_before + 1);
  expected_len += 8;
  EXPECT_EQ(pardict_len(d), expected_len);
  // + the copy the shared stripe remembers.
  EXPECT_EQ(pardict_live_refs() - refs0,
            expected_len + static_cast<std::int64_t>(copies_before) + 1);

  std::thread([&] { pardict_free(d); }).join();  // a fresh thread: no slot yet when it counts
  for (std::size_t i = 0; i < next_copy.load(); ++i) EXPECT_EQ(made[i].refct.load(), 1u) << i;
}

// pardict_jit_thread_for hands the thread's block only to code made for the loaded layouts.
TEST_F(CapiConcurrency, JitThreadBlockOnlyForTheLoadedAbi) {
  const pardict_jit_thread* th = pardict_jit_thread_ctx();
  EXPECT_EQ(pardict_jit_thread_for(pardict::capi::jit_abi_id()), th);
  EXPECT_EQ(pardict_jit_thread_for(pardict::capi::jit_abi_id() + 1), nullptr);
  EXPECT_EQ(pardict_jit_thread_for(0), nullptr);
  const pardict_jit_thread* other = nullptr;
  std::thread([&] { other = pardict_jit_thread_for(pardict::capi::jit_abi_id()); }).join();
  EXPECT_NE(other, nullptr);
  EXPECT_NE(other, th);  // one block per thread
}

// pardict_jit_slot_for hands the thread's epoch slot only to code made for the loaded layouts and
// the process's kind of light fence (pardict_jit_fences), takes the slot for a thread that has none
// yet, and answers the same for the thread's whole life; other threads get other slots.
TEST_F(CapiConcurrency, JitSlotOnlyForTheLoadedAbiAndFences) {
  using pardict::detail::epoch_domain;
  const std::uint64_t flip = pardict::capi::jit_symmetric_fences;
  const std::uint64_t id = pardict::capi::jit_abi_id() ^ (pardict_jit_fences() != 0 ? 0 : flip);
  EXPECT_EQ(pardict_jit_fences(), epoch_domain::instance().asymmetric() ? 1 : 0);
  EXPECT_EQ(pardict_jit_domain(), static_cast<void*>(&epoch_domain::instance()));
  EXPECT_EQ(pardict_jit_slot_for(id ^ flip), nullptr);  // compiled for the other fence
  EXPECT_EQ(pardict_jit_slot_for(id + 2), nullptr);
  void* const mine = pardict_jit_slot_for(id);
  ASSERT_NE(mine, nullptr);
  EXPECT_EQ(mine, static_cast<void*>(epoch_domain::this_thread().my_slot));
  EXPECT_EQ(pardict_jit_slot_for(id), mine);
#if defined(__MINGW32__)
  // mingw-w64's emulated TLS gives no slot back at thread exit: after the suite's earlier tests
  // a new thread may find none free (and then rightly gets nullptr).
  GTEST_SKIP() << "slots of exited threads are not reused under mingw-w64";
#endif
  void* theirs = nullptr;
  void* theirs_slot = nullptr;
  std::thread([&] {
    // A fresh thread has no slot before its first operation: asking takes one.
    EXPECT_EQ(epoch_domain::this_thread().my_slot, nullptr);
    theirs = pardict_jit_slot_for(id);
    theirs_slot = epoch_domain::this_thread().my_slot;
    EXPECT_FALSE(epoch_domain::this_thread_inside());
  }).join();
  EXPECT_NE(theirs, nullptr);
  EXPECT_EQ(theirs, theirs_slot);
  EXPECT_NE(theirs, mine);
}

TEST_F(CapiConcurrency, JitArrayStoresFromManyThreadsWithClears) {
  ASSERT_EQ(pardict_jit_thread_ctx()->abi_id, pardict::capi::jit_abi_id())
      << "the test must see the library's layouts, or every store takes the C call";
  pardict_dict* d = new_array_dict();
  ASSERT_NE(d, nullptr);
  float data[3] = {1, 2, 3};
  fake_meminfo owner, viewed;
  const array1d own = float_array(&owner, data, 3);        // described by its MemInfo
  const array1d borrowed = float_array(nullptr, data, 3);  // no owner: stored as a copy
  const array1d view = float_array(&viewed, data, 3);      // not described: stored as a view
  constexpr int threads = 80, rounds = 300, keys = 97;
  std::vector<fake_meminfo> made(threads * rounds);  // copies and views, one per miss at most
  std::vector<std::array<float, 3>> copies(threads * rounds, {1, 2, 3});
  std::atomic<long> stored{0}, misses{0};
  pardict_test::start_latch start(threads + 1);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int r = 0; r < rounds; ++r) {
        const int i = t * rounds + r;
        const std::uint64_t key = static_cast<std::uint64_t>(i % keys);
        const int kind = (t + r) % 3;
        const array1d& a = kind == 0 ? own : kind == 1 ? borrowed : view;
        void* old = nullptr;
        const std::int32_t s = pardict::capi::jit_set_array<std::uint64_t>(
            reinterpret_cast<pardict_dict*>(d), &key, &a, &old, kind != 2, pardict_jit_fences());
        if (old != nullptr) fake_release(old);  // replaced inline: the caller's to release
        if (s == PARDICT_INSERTED || s == PARDICT_REPLACED) {
          stored.fetch_add(1);
          continue;
        }
        ASSERT_EQ(s, PARDICT_NEED_COPY);
        ASSERT_EQ(old, nullptr);
        misses.fetch_add(1);
        if (kind == 1) {
          const array1d copy = float_array(&made[i], copies[i].data(), 3);
          EXPECT_EQ(pardict_unowned_remember(d, &borrowed, 1, &copy), PARDICT_OK);
        } else {
          EXPECT_EQ(pardict_view_remember(d, &view, &made[i]), PARDICT_OK);
        }
      }
    });
  }
  join_while_clearing(d, start, pool);
  // Owned arrays, a third of the stores, are always stored; more than that means copies and views
  // were found as well. A clear() in progress turns the slots' stripes off for every thread
  // (unowned_copies.hpp: revoked_), and this clearer clears without pause: under qemu-user and
  // wine, 9845 and 9305 of the 24000 stores were stored.
  EXPECT_GT(stored.load(), threads * rounds / 3 + threads);
  EXPECT_GT(misses.load(), 0);
  pardict_free(d);
  EXPECT_EQ(owner.refct.load(), 1u);
  EXPECT_EQ(viewed.refct.load(), 1u);
  for (auto& mi : made) EXPECT_EQ(mi.refct.load(), 1u);
}

// The numba fast path's d.add / d.max (capi/jit.hpp, jit_combine, compiled into the test) from
// many threads into a dictionary that grows from empty: inserts that exhaust a table's budget
// start its growth through pardict_jit_grow, and every add lands exactly once. A second thread
// group takes the C call (a tuple-like two-field description) into the same keys, so the two paths
// interleave on one element. Totals are checked against the arithmetic.
TEST_F(CapiConcurrency, JitCombinesFromManyThreadsAddUpExactly) {
  ASSERT_EQ(pardict_jit_thread_ctx()->abi_id, pardict::capi::jit_abi_id())
      << "the test must see the library's layouts, or every combine takes the C call";
  std::int32_t st;
  pardict_dict* sums = pardict_new(8, 8, 0, 0, 0, 0, &st);  // int64 -> int64, d.add
  ASSERT_EQ(st, PARDICT_OK);
  pardict_dict* maxes = pardict_new(8, 8, 0, 0, 0, 0, &st);  // int64 -> float64, d.max
  ASSERT_EQ(st, PARDICT_OK);
  constexpr int threads = 8;
  constexpr std::int64_t keys = 50000, rounds = 3;
  const std::int32_t add_i64[2] = {0, PARDICT_KIND_I64};
  const std::int32_t max_f64[2] = {0, PARDICT_KIND_F64};
  const std::int32_t two_i32[4] = {0, PARDICT_KIND_I32, 4, PARDICT_KIND_I32};  // the C call
  std::atomic<long> wrong{0}, inserted{0};
  pardict_test::start_latch start(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      start.arrive_and_wait();
      for (std::int64_t r = 0; r < rounds; ++r) {
        for (std::int64_t i = 0; i < keys; ++i) {
          const std::int64_t k = (i * 7919 + t * 104729) % keys;  // threads in different orders
          std::int64_t one = 1, out = 0;
          // Threads 0-5 take the inline path; 6 and 7 add 1 to the low int32 field (and 0 to the
          // high one) through the C call, which is the same +1 on a non-negative int64 < 2^31.
          const std::int32_t s =
              t < 6 ? pardict::capi::jit_combine<std::uint64_t, std::uint64_t>(
                          sums, &k, &one, PARDICT_OP_ADD, add_i64, 1, &out, pardict_jit_fences())
                    : pardict_combine(sums, &k, &one, PARDICT_OP_ADD, two_i32, 2, &out);
          if (s == PARDICT_NEW_KEY) inserted.fetch_add(1);
          if ((s != PARDICT_NEW_KEY && s != PARDICT_OLD_KEY) || out < 1) wrong.fetch_add(1);
          const double x = static_cast<double>(t * rounds + r);
          double m = 0;
          const std::int32_t s2 = pardict::capi::jit_combine<std::uint64_t, std::uint64_t>(
              maxes, &k, &x, PARDICT_OP_MAX, max_f64, 1, &m, pardict_jit_fences());
          if ((s2 != PARDICT_NEW_KEY && s2 != PARDICT_OLD_KEY) || m < x) wrong.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(inserted.load(), keys);
  EXPECT_EQ(pardict_len(sums), keys);
  EXPECT_EQ(pardict_len(maxes), keys);
  for (std::int64_t k = 0; k < keys; ++k) {
    std::int64_t n = 0;
    double m = 0;
    ASSERT_EQ(pardict_get(sums, &k, &n), PARDICT_FOUND);
    ASSERT_EQ(n, threads * rounds) << "key " << k;
    ASSERT_EQ(pardict_get(maxes, &k, &m), PARDICT_FOUND);
    ASSERT_EQ(m, static_cast<double>(threads * rounds - 1)) << "key " << k;
  }
  pardict_free(sums);
  pardict_free(maxes);
}

// A key change costs the same whatever the number of live iterators (it compares a per-dictionary
// clock with the changing thread's own cell): with 20,000 half-consumed iterators alive, 200,000
// inserts and erases must take less than 5 times as long as with none (a walk over every live
// iterator per change made it ~1000 times slower). Each side is the fastest of three runs.
TEST_F(CapiConcurrency, KeyChangesCostTheSameWithManyLiveIterators) {
  std::int32_t st;
  pardict_dict* d = pardict_new(8, 8, 0, 0, 0, 0, &st);
  ASSERT_EQ(st, PARDICT_OK);
  for (std::int64_t k = 0; k < 4; ++k) pardict_set(d, &k, &k, nullptr);
  auto churn = [&] {  // 200k key changes, the dictionary back as it was
    const auto t0 = std::chrono::steady_clock::now();
    std::int64_t old;
    for (std::int64_t i = 0; i < 100000; ++i) {
      const std::int64_t k = 100 + i % 1000;
      EXPECT_EQ(pardict_set(d, &k, &i, &old), PARDICT_INSERTED);
      EXPECT_EQ(pardict_pop(d, &k, &old), PARDICT_FOUND);
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  auto fastest_of_3 = [&] { return std::min({churn(), churn(), churn()}); };
  const double without = fastest_of_3();

  constexpr int n_iters = 20000;
  std::vector<pardict_iter*> iters(n_iters);
  void *kp, *vp;
  for (auto& it : iters) {
    it = pardict_iter_new(d, nullptr, &st);
    ASSERT_EQ(st, PARDICT_OK);
    ASSERT_EQ(pardict_iter_next(it, &kp, &vp), PARDICT_FOUND);
  }
  const double with = fastest_of_3();
  EXPECT_LT(with, 5 * without + 0.05) << "without iterators " << without << " s, with " << n_iters
                                      << " live iterators " << with << " s";
  // This thread changed keys after making them: every one of them reports it.
  for (auto* it : iters) EXPECT_EQ(pardict_iter_next(it, &kp, &vp), PARDICT_ERR_MUTATED);
  for (auto* it : iters) pardict_iter_free(it);
  pardict_free(d);
}

// pardict_copy while other threads keep inserting into the dictionary and growing it. The copy
// walks the dictionary shard by shard (holding a shard's resize mutex) and inserts into a clone
// presized for the size at the start; the shards not yet walked keep growing meanwhile, so the
// clone's shards overfill and grow while fed in the source's iteration order. With the group index
// a function of the hash alone that order piled up in the clone's first groups and the copy went
// quadratic (minutes at 1M entries, the writers blocked on the shard it held); each table's own
// seed makes it linear. A deadline, not a speed target: the copy must end, hold every key present
// throughout, and the writers must get on with their inserts afterwards.
TEST_F(CapiConcurrency, CopyWhileOthersInsertAndGrowFinishes) {
  const auto n = static_cast<std::int64_t>(pardict_test::scaled(1 << 20, 1 << 15));
  std::int32_t st;
  pardict_dict* d = pardict_new(8, 8, 0, 0, 0, 0, &st);
  ASSERT_EQ(st, PARDICT_OK);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::int64_t>(pardict_test::mix64(static_cast<std::uint64_t>(i)));
    ASSERT_EQ(pardict_set(d, &k, &i, nullptr), PARDICT_INSERTED);
  }
  constexpr int writers = 2;
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> inserted{0};
  std::vector<std::thread> ws;
  for (int w = 0; w < writers; ++w) {
    ws.emplace_back([&, w] {
      std::uint64_t i = (std::uint64_t{1} << 40) * static_cast<std::uint64_t>(w + 1);
      while (!stop.load(std::memory_order_relaxed)) {
        const auto k = static_cast<std::int64_t>(pardict_test::mix64(i++));
        std::int64_t old;
        EXPECT_EQ(pardict_set(d, &k, &k, &old), PARDICT_INSERTED);
        inserted.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  while (inserted.load() < n / 4) std::this_thread::yield();  // the writers are under way

  std::atomic<bool> done{false};
  pardict_dict* c = nullptr;
  std::int32_t cst = PARDICT_ERR_INTERNAL;
  double seconds = 0;
  std::thread copier([&] {
    const auto t0 = std::chrono::steady_clock::now();
    c = pardict_copy(d, &cst);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    done.store(true);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!done.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const bool in_time = done.load();
  const std::int64_t during = inserted.load();
  stop.store(true);
  for (auto& w : ws) w.join();
  copier.join();
  EXPECT_TRUE(in_time) << "pardict_copy of " << n << "+ entries under inserts took over 60 s";
  ASSERT_EQ(cst, PARDICT_OK);
  ASSERT_NE(c, nullptr);
  std::printf("copy of %lld entries under %d inserting threads: %.3f s (%lld inserts so far)\n",
              static_cast<long long>(pardict_len(c)), writers, seconds,
              static_cast<long long>(during));
  EXPECT_GE(pardict_len(c), n);
  EXPECT_LE(pardict_len(c), pardict_len(d));
  for (std::int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::int64_t>(pardict_test::mix64(static_cast<std::uint64_t>(i)));
    std::int64_t v = -1;
    ASSERT_EQ(pardict_get(c, &k, &v), PARDICT_FOUND) << i;
    ASSERT_EQ(v, i);
  }
  // Both go on working: the writers' keys land in d, not in the copy.
  const std::int64_t extra = -12345;
  ASSERT_EQ(pardict_set(d, &extra, &extra, nullptr), PARDICT_INSERTED);
  std::int64_t v = 0;
  ASSERT_EQ(pardict_get(c, &extra, &v), PARDICT_ABSENT);
  pardict_free(c);
  pardict_free(d);
}
