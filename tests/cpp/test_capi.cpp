// The C ABI (capi/pardict_capi.h): size classes, status codes, every operation, and the
// reference protocol (borrow inputs, hand out new references, release exactly once).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>
#if defined(__linux__)
#include <sched.h>
#endif

#include "jit.hpp"
#include "pardict_capi.h"
#include "support/fake_nrt.hpp"

using pardict_test::array1d;
using pardict_test::fake_meminfo;
using pardict_test::fake_release;
using pardict_test::fake_unicode;
using pardict_test::float_array;

namespace {

struct CapiTest : pardict_test::balanced_capi_test {};

pardict_dict* make(std::uint32_t ks, std::uint32_t vs, std::uint32_t krefs = 0,
                   std::uint32_t kstrs = 0, std::uint32_t vrefs = 0, std::int64_t n = 0) {
  std::int32_t st = 99;
  pardict_dict* d = pardict_new(ks, vs, krefs, kstrs, vrefs, n, &st);
  EXPECT_EQ(st, PARDICT_OK);
  EXPECT_NE(d, nullptr);
  return d;
}

// A string key as it travels: in a buffer of its size class (64 bytes), zero past the struct.
struct key_buf {
  fake_unicode s;
  std::uint64_t pad[2] = {0, 0};
};

// A value holding one reference: {meminfo, payload}.
struct ref_value {
  void* mi;
  std::int64_t payload;
};

}  // namespace

TEST_F(CapiTest, SizeClasses) {
  EXPECT_EQ(pardict_key_class(0), 0u);
  EXPECT_EQ(pardict_key_class(1), 4u);
  EXPECT_EQ(pardict_key_class(4), 4u);
  EXPECT_EQ(pardict_key_class(5), 8u);
  EXPECT_EQ(pardict_key_class(9), 16u);
  EXPECT_EQ(pardict_key_class(48), 64u);
  EXPECT_EQ(pardict_key_class(128), 128u);
  EXPECT_EQ(pardict_key_class(129), 0u);
  EXPECT_EQ(pardict_key_class(UINT32_MAX), 0u);  // no wrap-around in the doubling
  EXPECT_EQ(pardict_value_class(UINT32_MAX), 0u);
  EXPECT_EQ(pardict_value_class(0), 4u);
  EXPECT_EQ(pardict_value_class(48), 64u);
  EXPECT_EQ(pardict_value_class(49), 56u);  // a 1-d numba array
  EXPECT_EQ(pardict_value_class(56), 56u);
  EXPECT_EQ(pardict_value_class(57), 64u);
  EXPECT_EQ(pardict_value_class(256), 256u);
  EXPECT_EQ(pardict_value_class(257), 0u);
}

TEST_F(CapiTest, BadArgumentsGiveStatusCodes) {
  std::int32_t st = 0;
  EXPECT_EQ(pardict_new(0, 8, 0, 0, 0, 0, &st), nullptr);
  EXPECT_EQ(st, PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_new(8, 300, 0, 0, 0, 0, &st), nullptr);
  EXPECT_EQ(st, PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_new(8, 8, 0, 0, 0, -1, &st), nullptr);
  EXPECT_EQ(st, PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_new(8, 8, 0, 0, 1u << 3, 0, &st), nullptr);  // ref word outside the value
  EXPECT_EQ(st, PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_new(16, 8, 0, 1, 0, 0, &st), nullptr);  // a string does not fit 16 bytes
  EXPECT_EQ(st, PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_new(8, 8, 0, 0, 0, std::int64_t{1} << 60, &st), nullptr);
  EXPECT_EQ(st, PARDICT_ERR_NOMEM);
  pardict_dict* d = make(8, 8);
  EXPECT_EQ(pardict_reserve(d, std::int64_t{1} << 60), PARDICT_ERR_NOMEM);
  EXPECT_EQ(pardict_reserve(d, -5), PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_len(d), 0);
  pardict_free(d);
}

TEST_F(CapiTest, ScalarOperationsMatchAModel) {
  pardict_dict* d = make(8, 8);
  std::map<std::int64_t, std::int64_t> model;
  std::int64_t old = 0, out = 0;
  for (std::int64_t i = 0; i < 2000; ++i) {
    const std::int64_t k = (i * 7919) % 1500, v = i;
    const int st = pardict_set(d, &k, &v, &old);
    EXPECT_EQ(st, model.count(k) ? PARDICT_REPLACED : PARDICT_INSERTED);
    if (st == PARDICT_REPLACED) {
      EXPECT_EQ(old, model[k]);
    }
    model[k] = v;
  }
  EXPECT_EQ(pardict_len(d), static_cast<std::int64_t>(model.size()));
  for (auto [k, v] : model) {
    ASSERT_EQ(pardict_get(d, &k, &out), PARDICT_FOUND);
    EXPECT_EQ(out, v);
    EXPECT_EQ(pardict_contains(d, &k), PARDICT_FOUND);
  }
  const std::int64_t missing = -1;
  EXPECT_EQ(pardict_get(d, &missing, &out), PARDICT_ABSENT);
  EXPECT_EQ(pardict_pop(d, &missing, &out), PARDICT_ABSENT);
  const std::int64_t k0 = 0;
  ASSERT_EQ(pardict_pop(d, &k0, &out), PARDICT_FOUND);
  EXPECT_EQ(out, model[0]);
  model.erase(0);
  EXPECT_EQ(pardict_contains(d, &k0), PARDICT_ABSENT);
  const std::int64_t dflt = 42;
  EXPECT_EQ(pardict_setdefault(d, &k0, &dflt, &out), PARDICT_NEW_KEY);
  EXPECT_EQ(out, 42);
  const std::int64_t other = 43;
  EXPECT_EQ(pardict_setdefault(d, &k0, &other, &out), PARDICT_OLD_KEY);
  EXPECT_EQ(out, 42);
  EXPECT_EQ(pardict_insert(d, &k0, &other), PARDICT_OLD_KEY);
  model[0] = 42;

  pardict_dict* c = pardict_copy(d, nullptr);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(pardict_len(c), pardict_len(d));

  // Iteration sees every element once.
  std::int32_t st = 0;
  pardict_iter* it = pardict_iter_new(d, nullptr, &st);
  ASSERT_EQ(st, PARDICT_OK);
  EXPECT_EQ(pardict_iter_len(it), static_cast<std::int64_t>(model.size()));
  std::map<std::int64_t, std::int64_t> seen;
  void *kp, *vp;
  while (pardict_iter_next(it, &kp, &vp) == PARDICT_FOUND) {
    std::int64_t k, v;
    std::memcpy(&k, kp, 8);
    std::memcpy(&v, vp, 8);
    EXPECT_TRUE(seen.emplace(k, v).second);
  }
  pardict_iter_free(it);
  EXPECT_EQ(seen, model);

  // popitem drains.
  std::size_t popped = 0;
  std::int64_t pk, pv;
  while (pardict_popitem(d, &pk, &pv) == PARDICT_FOUND) {
    EXPECT_EQ(model.at(pk), pv);
    ++popped;
  }
  EXPECT_EQ(popped, model.size());
  EXPECT_EQ(pardict_len(d), 0);
  EXPECT_EQ(pardict_clear(c), PARDICT_OK);
  EXPECT_EQ(pardict_len(c), 0);
  pardict_free(c);
  pardict_free(d);
}

TEST_F(CapiTest, SameThreadKeyChangeFlagsTheIterator) {
  pardict_dict* d = make(4, 4);
  for (std::int32_t i = 0; i < 5; ++i) pardict_set(d, &i, &i, nullptr);
  std::int32_t st;
  pardict_iter* it = pardict_iter_new(d, nullptr, &st);
  void *kp, *vp;
  ASSERT_EQ(pardict_iter_next(it, &kp, &vp), PARDICT_FOUND);
  const std::int32_t k = 1, v = 100;
  std::int32_t old;
  EXPECT_EQ(pardict_set(d, &k, &v, &old),
            PARDICT_REPLACED);  // replacing a value is not a key change
  EXPECT_EQ(pardict_iter_next(it, &kp, &vp), PARDICT_FOUND);
  const std::int32_t k2 = 77;
  EXPECT_EQ(pardict_set(d, &k2, &v, &old), PARDICT_INSERTED);
  EXPECT_EQ(pardict_iter_next(it, &kp, &vp), PARDICT_ERR_MUTATED);
  pardict_iter_free(it);
  pardict_free(d);
}

// The check is about the thread that advances the iterator, wherever the iterator was made: an
// iterator made on one thread and advanced by another reports MUTATED once that other thread has
// inserted or erased a key of the dictionary after the iterator was made, and only then.
TEST_F(CapiTest, KeyChangeFlagsTheIteratorForTheThreadThatAdvancesIt) {
  pardict_dict* d = make(8, 8);
  for (std::int64_t i = 0; i < 10; ++i) pardict_set(d, &i, &i, nullptr);
  const std::int64_t before = 1000;
  std::int64_t old;
  // A key change by the other thread before the iterator exists does not count.
  std::thread([&] { EXPECT_EQ(pardict_set(d, &before, &before, &old), PARDICT_INSERTED); }).join();
  std::int32_t st;
  pardict_iter* it = pardict_iter_new(d, nullptr, &st);
  ASSERT_EQ(st, PARDICT_OK);
  void *kp, *vp;
  ASSERT_EQ(pardict_iter_next(it, &kp, &vp), PARDICT_FOUND);
  std::thread([&] {
    // This thread has changed nothing since the iterator was made, and replacing a value is no
    // key change.
    const std::int64_t k = 3, v = 33;
    EXPECT_EQ(pardict_set(d, &k, &v, &old), PARDICT_REPLACED);
    EXPECT_EQ(pardict_iter_next(it, &kp, &vp), PARDICT_FOUND);
    // Now it inserts a key, and its next step reports it.
    const std::int64_t k2 = 2000;
    EXPECT_EQ(pardict_set(d, &k2, &k2, &old), PARDICT_INSERTED);
    EXPECT_EQ(pardict_iter_next(it, &kp, &vp), PARDICT_ERR_MUTATED);
  }).join();
  EXPECT_EQ(pardict_iter_next(it, &kp, &vp), PARDICT_ERR_MUTATED);  // it stays flagged
  pardict_iter_free(it);

  // The making thread changes nothing; another thread erases a key. Steps on the making thread
  // go on; a step on a thread that changed keys before, but not since, goes on as well.
  it = pardict_iter_new(d, nullptr, &st);
  ASSERT_EQ(pardict_iter_next(it, &kp, &vp), PARDICT_FOUND);
  std::thread([&] {
    const std::int64_t k = 2000;
    EXPECT_EQ(pardict_pop(d, &k, &old), PARDICT_FOUND);
  }).join();
  EXPECT_EQ(pardict_iter_next(it, &kp, &vp), PARDICT_FOUND);
  pardict_iter* it2 = pardict_iter_new(d, nullptr, &st);  // made after that erase
  std::thread([&] { EXPECT_EQ(pardict_iter_next(it2, &kp, &vp), PARDICT_FOUND); }).join();
  pardict_iter_free(it2);
  // Threads that end are replaced by new ones that may take over their per-thread state: a new
  // thread does not inherit a finished thread's key changes.
  for (int round = 0; round < 20; ++round) {
    const std::int64_t k = 3000 + round;
    std::thread([&] { EXPECT_EQ(pardict_set(d, &k, &k, &old), PARDICT_INSERTED); }).join();
    std::thread([&] { EXPECT_GE(pardict_iter_next(it, &kp, &vp), 0); }).join();  // or the end
    std::thread([&] { EXPECT_EQ(pardict_pop(d, &k, &old), PARDICT_FOUND); }).join();
  }
  pardict_iter_free(it);
  pardict_free(d);
}

// Jitted code that raises never frees its iterator: the iterator must already have let go of its
// snapshot and of the dictionary when it reports the mutation.
TEST_F(CapiTest, MutatedIteratorReleasesEverythingBeforeReporting) {
  pardict_dict* d = make(8, 16, 0, 0, /*vrefs=*/1u);
  fake_meminfo a, dict_mi;
  ref_value va{&a, 1};
  for (std::int64_t k = 0; k < 3; ++k) pardict_set(d, &k, &va, nullptr);
  EXPECT_EQ(a.refct.load(), 4u);
  std::int32_t st;
  pardict_iter* it = pardict_iter_new(d, &dict_mi, &st);
  EXPECT_EQ(a.refct.load(), 7u);  // + the snapshot's three
  EXPECT_EQ(dict_mi.refct.load(), 2u);
  void *kp, *vp;
  ASSERT_EQ(pardict_iter_next(it, &kp, &vp), PARDICT_FOUND);
  const std::int64_t k3 = 3;
  pardict_set(d, &k3, &va, nullptr);
  EXPECT_EQ(a.refct.load(), 8u);
  EXPECT_EQ(pardict_iter_next(it, &kp, &vp), PARDICT_ERR_MUTATED);
  EXPECT_EQ(a.refct.load(), 5u);  // snapshot released at once
  EXPECT_EQ(dict_mi.refct.load(), 1u);
  EXPECT_EQ(pardict_iter_len(it), 0);
  EXPECT_EQ(pardict_iter_next(it, &kp, &vp), PARDICT_ERR_MUTATED);  // stays flagged
  pardict_iter_free(it);                                            // nothing left to release twice
  EXPECT_EQ(a.refct.load(), 5u);
  EXPECT_EQ(dict_mi.refct.load(), 1u);
  pardict_free(d);
  EXPECT_EQ(a.refct.load(), 1u);
}

TEST_F(CapiTest, CombineInsertsThenAddsMinsMaxes) {
  // value: struct {int32 a; float64 b;} -> 16 bytes, b at offset 8
  pardict_dict* d = make(8, 16);
  const std::int32_t fields[] = {0, PARDICT_KIND_I32, 8, PARDICT_KIND_F64};
  struct val {
    std::int32_t a;
    std::int32_t pad;
    double b;
  };
  const std::int64_t k = 3;
  val x{5, 0, 1.5}, out{};
  EXPECT_EQ(pardict_combine(d, &k, &x, PARDICT_OP_ADD, fields, 2, &out), PARDICT_NEW_KEY);
  EXPECT_EQ(out.a, 5);
  x = {-7, 0, 2.0};
  EXPECT_EQ(pardict_combine(d, &k, &x, PARDICT_OP_ADD, fields, 2, &out), PARDICT_OLD_KEY);
  EXPECT_EQ(out.a, -2);
  EXPECT_EQ(out.b, 3.5);
  x = {-9, 0, 10.0};
  EXPECT_EQ(pardict_combine(d, &k, &x, PARDICT_OP_MIN, fields, 2, &out), PARDICT_OLD_KEY);
  EXPECT_EQ(out.a, -9);
  EXPECT_EQ(out.b, 3.5);
  x = {0, 0, std::nan("")};
  EXPECT_EQ(pardict_combine(d, &k, &x, PARDICT_OP_MAX, fields, 2, &out), PARDICT_OLD_KEY);
  EXPECT_EQ(out.a, 0);
  EXPECT_EQ(out.b, 3.5);  // NaN never compares greater
  // integers wrap around
  pardict_dict* e = make(8, 1);
  const std::int32_t f8[] = {0, PARDICT_KIND_I8};
  // value and out buffers have the value class's size (4)
  std::array<std::int8_t, 4> b{127, 0, 0, 0}, o{};
  EXPECT_EQ(pardict_combine(e, &k, b.data(), PARDICT_OP_ADD, f8, 1, o.data()), PARDICT_NEW_KEY);
  b[0] = 1;
  EXPECT_EQ(pardict_combine(e, &k, b.data(), PARDICT_OP_ADD, f8, 1, nullptr), PARDICT_OLD_KEY);
  EXPECT_EQ(pardict_get(e, &k, o.data()), PARDICT_FOUND);
  EXPECT_EQ(o[0], -128);
  // bad arguments
  const std::int32_t beyond[] = {12, PARDICT_KIND_I64};
  const std::int32_t bad_kind[] = {0, 99};
  EXPECT_EQ(pardict_combine(d, &k, &x, PARDICT_OP_ADD, beyond, 1, nullptr), PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_combine(d, &k, &x, PARDICT_OP_ADD, bad_kind, 1, nullptr), PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_combine(d, &k, &x, 7, fields, 2, nullptr), PARDICT_ERR_INVALID);
  pardict_dict* r = make(8, 16, 0, 0, /*vrefs=*/1u);
  EXPECT_EQ(pardict_combine(r, &k, &x, PARDICT_OP_ADD, fields, 1, nullptr), PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_len(r), 0);
  pardict_free(r);
  pardict_free(e);
  pardict_free(d);
}

TEST_F(CapiTest, BlobKeysCompareAllBytes) {
  pardict_dict* d = make(12, 8);  // class 16
  std::array<std::uint64_t, 2> a{1, 2}, b{1, 3};
  std::int64_t v = 5, out;
  EXPECT_EQ(pardict_set(d, a.data(), &v, nullptr), PARDICT_INSERTED);
  EXPECT_EQ(pardict_contains(d, a.data()), PARDICT_FOUND);
  EXPECT_EQ(pardict_contains(d, b.data()), PARDICT_ABSENT);
  EXPECT_EQ(pardict_get(d, a.data(), &out), PARDICT_FOUND);
  EXPECT_EQ(out, 5);
  pardict_free(d);
}

TEST_F(CapiTest, ValueReferencesAreAcquiredAndReleasedExactlyOnce) {
  pardict_dict* d = make(8, 16, 0, 0, /*vrefs=*/1u);
  fake_meminfo a, b, c;
  const std::int64_t k = 7;
  ref_value va{&a, 1}, vb{&b, 2}, out{};
  EXPECT_EQ(pardict_set(d, &k, &va, &out), PARDICT_INSERTED);
  EXPECT_EQ(a.refct.load(), 2u);  // ours + the table's
  EXPECT_EQ(pardict_set(d, &k, &vb, &out), PARDICT_REPLACED);
  EXPECT_EQ(out.mi, &a);  // handed to us: a still has 2 until we release it
  EXPECT_EQ(a.refct.load(), 2u);
  fake_release(out.mi);
  EXPECT_EQ(a.refct.load(), 1u);
  EXPECT_EQ(b.refct.load(), 2u);
  ASSERT_EQ(pardict_get(d, &k, &out), PARDICT_FOUND);  // a new reference
  EXPECT_EQ(out.mi, &b);
  EXPECT_EQ(b.refct.load(), 3u);
  fake_release(out.mi);
  ref_value vc{&c, 3};
  EXPECT_EQ(pardict_setdefault(d, &k, &vc, &out),
            PARDICT_OLD_KEY);  // present: returns b, c untouched
  EXPECT_EQ(out.mi, &b);
  EXPECT_EQ(c.refct.load(), 1u);
  fake_release(out.mi);
  EXPECT_EQ(pardict_insert(d, &k, &vc), PARDICT_OLD_KEY);
  EXPECT_EQ(c.refct.load(), 1u);
  const std::int64_t k2 = 8;
  EXPECT_EQ(pardict_setdefault(d, &k2, &vc, &out), PARDICT_NEW_KEY);  // stored + returned
  EXPECT_EQ(c.refct.load(), 3u);
  fake_release(out.mi);

  pardict_dict* cp = pardict_copy(d, nullptr);
  EXPECT_EQ(b.refct.load(), 3u);
  std::int32_t st;
  pardict_iter* it = pardict_iter_new(cp, nullptr, &st);
  EXPECT_EQ(b.refct.load(), 4u);  // the snapshot holds one
  pardict_iter_free(it);
  EXPECT_EQ(b.refct.load(), 3u);
  pardict_free(cp);
  EXPECT_EQ(b.refct.load(), 2u);

  ASSERT_EQ(pardict_pop(d, &k, &out), PARDICT_FOUND);
  EXPECT_EQ(out.mi, &b);
  fake_release(out.mi);
  EXPECT_EQ(b.refct.load(), 1u);
  EXPECT_EQ(pardict_clear(d), PARDICT_OK);
  EXPECT_EQ(c.refct.load(), 1u);
  EXPECT_EQ(pardict_set(d, &k, &va, &out), PARDICT_INSERTED);
  pardict_free(d);  // releases what it still holds
  EXPECT_EQ(a.refct.load(), 1u);
  EXPECT_EQ(a.destroyed.load() + b.destroyed.load() + c.destroyed.load(), 0);
}

TEST_F(CapiTest, StringKeysCompareByCodePointsAcrossKinds) {
  // Key: one unicode struct, its meminfo in word 4.
  pardict_dict* d = make(48, 8, /*krefs=*/1u << 4, /*kstrs=*/1u);
  fake_meminfo m1, m2, m3;
  const char narrow[] = "h\xe9llo";  // kind 1 (latin-1)
  const std::uint32_t wide[] = {'h', 0xe9, 'l', 'l', 'o'};
  const std::uint16_t other[] = {'h', 0xe9, 'l', 'l', 'x'};
  key_buf s1{{narrow, 5, 1, 0, -1, &m1, nullptr}};
  key_buf s2{{wide, 5, 4, 0, -1, &m2, nullptr}};
  key_buf s3{{other, 5, 2, 0, -1, &m3, nullptr}};
  std::int64_t v = 1, out;
  EXPECT_EQ(pardict_set(d, &s1, &v, nullptr), PARDICT_INSERTED);
  EXPECT_EQ(m1.refct.load(), 2u);  // the stored key holds its string
  v = 2;
  EXPECT_EQ(pardict_set(d, &s2, &v, &out), PARDICT_REPLACED);  // same text, other kind: same key
  EXPECT_EQ(m2.refct.load(), 1u);                              // the existing key is kept
  EXPECT_EQ(pardict_contains(d, &s3), PARDICT_ABSENT);
  EXPECT_EQ(pardict_get(d, &s2, &out), PARDICT_FOUND);
  EXPECT_EQ(out, 2);
  ASSERT_EQ(pardict_pop(d, &s2, &out), PARDICT_FOUND);
  EXPECT_EQ(m1.refct.load(), 1u);  // the stored key's reference was released
  pardict_free(d);
}

// pardict_merge with string keys: stored keys hold their own references, the snapshot's are all
// released, counts and sums are exact, and mismatched layouts or ops are refused.
TEST_F(CapiTest, MergeCombinesStringKeyedDictsAndReleasesItsSnapshot) {
  constexpr int n = 300;
  std::vector<std::string> text(n);
  std::vector<fake_meminfo> mis(n);
  std::vector<key_buf> keys(n);
  for (int i = 0; i < n; ++i) {
    text[i] = "word " + std::to_string(i);
    keys[i] = key_buf{
        {text[i].data(), static_cast<std::int64_t>(text[i].size()), 1, 1, -1, &mis[i], nullptr}};
  }
  pardict_dict* a = make(48, 8, 1u << 4, 1u);
  pardict_dict* b = make(48, 8, 1u << 4, 1u);
  for (int i = 0; i < 200; ++i) {  // a: words 0..199 -> i; b: words 100..299 -> 1000 + i
    const std::int64_t va = i, vb = 1000 + i + 100;
    ASSERT_EQ(pardict_set(a, &keys[i], &va, nullptr), PARDICT_INSERTED);
    ASSERT_EQ(pardict_set(b, &keys[i + 100], &vb, nullptr), PARDICT_INSERTED);
  }
  const std::int32_t fields[] = {0, PARDICT_KIND_I64};
  std::int64_t added = -1;
  ASSERT_EQ(pardict_merge(a, b, PARDICT_OP_ADD, fields, 1, 2, &added), PARDICT_OK);
  EXPECT_EQ(added, 100);
  EXPECT_EQ(pardict_len(a), n);
  for (int i = 0; i < n; ++i) {
    std::int64_t v = 0;
    ASSERT_EQ(pardict_get(a, &keys[i], &v), PARDICT_FOUND);
    EXPECT_EQ(v, (i < 200 ? i : 0) + (i >= 100 ? 1000 + i : 0)) << i;
    // The test's reference, a's, and b's for the words b holds.
    EXPECT_EQ(mis[i].refct.load(), 1u + 1u + (i >= 100 ? 1u : 0u)) << i;
  }
  ASSERT_EQ(pardict_merge(a, a, PARDICT_OP_ASSIGN, nullptr, 0, 1, &added), PARDICT_OK);
  EXPECT_EQ(added, 0);
  pardict_dict* other = make(48, 16, 1u << 4, 1u);
  EXPECT_EQ(pardict_merge(a, other, PARDICT_OP_ASSIGN, nullptr, 0, 1, &added), PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_merge(a, b, PARDICT_OP_ADD, nullptr, -1, 1, &added), PARDICT_ERR_INVALID);
  pardict_free(other);
  pardict_free(a);
  pardict_free(b);
  for (int i = 0; i < n; ++i) EXPECT_EQ(mis[i].refct.load(), 1u) << i;
}

namespace {
// ctx: {dict, calls}. Adds 10; fails when the value reaches 25; key 99 tries to reenter the dict.
struct upd_ctx {
  pardict_dict* d;
  int calls = 0;
  std::int32_t reentry_status = 1;
};
std::int32_t add_ten(void* c, void* v) {
  auto* ctx = static_cast<upd_ctx*>(c);
  ++ctx->calls;
  std::int64_t x;
  std::memcpy(&x, v, 8);
  if (x == 99) {
    const std::int64_t k = 1;
    std::int64_t out;
    ctx->reentry_status = pardict_get(ctx->d, &k, &out);
    return 1;
  }
  if (x + 10 == 25) return 1;
  x += 10;
  std::memcpy(v, &x, 8);
  return 0;
}
}  // namespace

TEST_F(CapiTest, UpdateRunsTheCallbackAtomicallyAndAbandonsOnFailure) {
  pardict_dict* d = make(8, 8);
  upd_ctx ctx{d};
  const std::int64_t k = 1, dflt = 5;
  std::int64_t out = 0;
  EXPECT_EQ(pardict_update(d, &k, &dflt, &add_ten, &ctx, &out),
            PARDICT_NEW_KEY);  // absent: cb(dflt) stored
  EXPECT_EQ(out, 15);
  EXPECT_EQ(pardict_update(d, &k, &dflt, &add_ten, &ctx, &out), PARDICT_ERR_CALLBACK);  // 25
  EXPECT_EQ(pardict_get(d, &k, &out), PARDICT_FOUND);
  EXPECT_EQ(out, 15);  // unchanged
  const std::int64_t k2 = 2, bad = 15;
  EXPECT_EQ(pardict_update(d, &k2, &bad, &add_ten, &ctx, nullptr), PARDICT_ERR_CALLBACK);
  EXPECT_EQ(pardict_contains(d, &k2), PARDICT_ABSENT);  // a failed insert leaves no element
  EXPECT_EQ(pardict_len(d), 1);
  const std::int64_t reenter = 99;
  EXPECT_EQ(pardict_update(d, &k2, &reenter, &add_ten, &ctx, nullptr), PARDICT_ERR_CALLBACK);
  EXPECT_EQ(ctx.reentry_status, PARDICT_ERR_REENTRANT);  // no deadlock: a clear status
  EXPECT_EQ(pardict_update(d, &k, &dflt, nullptr, &ctx, nullptr), PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_get(d, &k, &out), PARDICT_FOUND);  // the table still works
  EXPECT_EQ(ctx.calls, 4);
  pardict_free(d);
}

TEST_F(CapiTest, VisitRunsTheCallbackUnderTheLockOnlyWhenPresent) {
  pardict_dict* d = make(8, 8);
  upd_ctx ctx{d};
  const std::int64_t k = 1, v = 5, missing = 2, reenter = 99, k3 = 3;
  EXPECT_EQ(pardict_visit(d, &k, &add_ten, &ctx), PARDICT_ABSENT);  // absent: not called
  EXPECT_EQ(ctx.calls, 0);
  ASSERT_EQ(pardict_set(d, &k, &v, nullptr), PARDICT_INSERTED);
  EXPECT_EQ(pardict_visit(d, &k, &add_ten, &ctx), PARDICT_FOUND);
  std::int64_t out = 0;
  ASSERT_EQ(pardict_get(d, &k, &out), PARDICT_FOUND);
  EXPECT_EQ(out, 5);  // the callback saw a copy: the stored bytes are unchanged
  ASSERT_EQ(pardict_set(d, &k3, &reenter, nullptr), PARDICT_INSERTED);
  EXPECT_EQ(pardict_visit(d, &k3, &add_ten, &ctx), PARDICT_ERR_CALLBACK);
  EXPECT_EQ(ctx.reentry_status, PARDICT_ERR_REENTRANT);
  EXPECT_EQ(pardict_visit(d, &missing, nullptr, &ctx), PARDICT_ERR_INVALID);
  EXPECT_EQ(ctx.calls, 2);
  pardict_free(d);
}

TEST_F(CapiTest, CombinePresentNeverInserts) {
  pardict_dict* d = make(8, 8);
  const std::int32_t fields[] = {0, PARDICT_KIND_I64};
  const std::int64_t k = 4, one = 1;
  std::int64_t out = 0;
  EXPECT_EQ(pardict_combine_present(d, &k, &one, PARDICT_OP_ADD, fields, 1, &out), PARDICT_ABSENT);
  EXPECT_EQ(pardict_len(d), 0);
  ASSERT_EQ(pardict_combine(d, &k, &one, PARDICT_OP_ADD, fields, 1, nullptr), PARDICT_NEW_KEY);
  EXPECT_EQ(pardict_combine_present(d, &k, &one, PARDICT_OP_ADD, fields, 1, &out), PARDICT_FOUND);
  EXPECT_EQ(out, 2);
  EXPECT_EQ(pardict_combine_present(d, &k, &one, 9, fields, 1, &out), PARDICT_ERR_INVALID);
  pardict_free(d);
}

TEST_F(CapiTest, CombineManyUcs4AggregatesPerWordAndReportsNewWords) {
  // A str -> int64 dict holding "ab" (a kind-1 numba string), fed a NumPy U3 array.
  pardict_dict* d = make(48, 8, /*krefs=*/1u << 4, /*kstrs=*/1u);
  fake_meminfo m;
  const char ab[] = "ab";
  key_buf stored{{ab, 2, 1, 0, -1, &m, nullptr}};
  std::int64_t v = 100;
  ASSERT_EQ(pardict_set(d, &stored, &v, nullptr), PARDICT_INSERTED);
  // Rows: "ab", "x", "ab", "", "x\0\0" (padding), "ab", "é"; width 3 code points.
  const std::uint32_t rows[][3] = {{'a', 'b', 0}, {'x', 0, 0},   {'a', 'b', 0}, {0, 0, 0},
                                   {'x', 0, 0},   {'a', 'b', 0}, {0xe9, 0, 0}};
  const std::int64_t n = 7;
  const std::int64_t vals[] = {1, 2, 3, 4, 5, 6, 7};
  const std::int32_t fields[] = {0, PARDICT_KIND_I64};
  std::vector<std::int64_t> miss_rows(n, -1), miss_vals(n, -1);
  std::int64_t n_miss = -1;
  ASSERT_EQ(pardict_combine_many_ucs4(d, rows, 3, n, vals, 8, PARDICT_OP_ADD, fields, 1, 1,
                                      miss_rows.data(), miss_vals.data(), &n_miss),
            PARDICT_OK);
  std::int64_t out = 0;
  ASSERT_EQ(pardict_get(d, &stored, &out), PARDICT_FOUND);
  EXPECT_EQ(out, 100 + 1 + 3 + 6);  // combined in place
  EXPECT_EQ(pardict_len(d), 1);     // nothing inserted
  ASSERT_EQ(n_miss, 3);             // "x", "" and "é", each with its aggregated value
  std::map<std::int64_t, std::int64_t> by_first_row;
  for (std::int64_t i = 0; i < n_miss; ++i) by_first_row[miss_rows[i]] = miss_vals[i];
  EXPECT_EQ(by_first_row, (std::map<std::int64_t, std::int64_t>{{1, 2 + 5}, {3, 4}, {6, 7}}));

  // One value for every row (stride 0), split over threads: every row counted once.
  std::vector<std::uint32_t> many(3 * 40000, 0);
  for (std::size_t i = 0; i < 40000; ++i) {
    many[3 * i] = 'a';
    many[3 * i + 1] = i % 2 == 0 ? 'b' : 'c';  // "ab" present, "ac" new
  }
  const std::int64_t one = 1;
  miss_rows.assign(40000, -1);  // room for n, as the call requires
  miss_vals.assign(40000, -1);
  ASSERT_EQ(pardict_combine_many_ucs4(d, many.data(), 3, 40000, &one, 0, PARDICT_OP_ADD, fields, 1,
                                      4, miss_rows.data(), miss_vals.data(), &n_miss),
            PARDICT_OK);
  ASSERT_EQ(pardict_get(d, &stored, &out), PARDICT_FOUND);
  EXPECT_EQ(out, 110 + 20000);
  std::int64_t new_total = 0;
  for (std::int64_t i = 0; i < n_miss; ++i) {
    EXPECT_EQ(miss_rows[i] % 2, 1);  // only "ac" is missing (reported once per worker)
    new_total += miss_vals[i];
  }
  EXPECT_EQ(new_total, 20000);

  // Bad arguments: a stride that is not the value class, an assign op, a non-string key layout.
  EXPECT_EQ(pardict_combine_many_ucs4(d, rows, 3, n, vals, 4, PARDICT_OP_ADD, fields, 1, 1,
                                      miss_rows.data(), miss_vals.data(), &n_miss),
            PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_combine_many_ucs4(d, rows, 3, n, vals, 8, PARDICT_OP_ASSIGN, fields, 1, 1,
                                      miss_rows.data(), miss_vals.data(), &n_miss),
            PARDICT_ERR_INVALID);
  pardict_dict* ints = make(8, 8);
  EXPECT_EQ(pardict_combine_many_ucs4(ints, rows, 3, n, vals, 8, PARDICT_OP_ADD, fields, 1, 1,
                                      miss_rows.data(), miss_vals.data(), &n_miss),
            PARDICT_ERR_INVALID);
  pardict_free(ints);
  pardict_free(d);
}

TEST_F(CapiTest, CombineManyUtf8AggregatesArrowStringsPerWord) {
  // A str -> int64 dict holding "ab" (kind 1) and "é" (kind 4), fed Arrow strings: row 0 ("zz")
  // lies before `first`; then "ab", "x", "ab", "", "x", "ab", "é" (2 UTF-8 bytes), "a\xff"
  // (malformed: 'a' and U+FFFD).
  pardict_dict* d = make(48, 8, /*krefs=*/1u << 4, /*kstrs=*/1u);
  fake_meminfo m;
  const char ab[] = "ab";
  const std::uint32_t e_acute[] = {0xe9};
  key_buf stored_ab{{ab, 2, 1, 0, -1, &m, nullptr}};
  key_buf stored_e{{e_acute, 1, 4, 0, -1, &m, nullptr}};
  std::int64_t v = 100;
  ASSERT_EQ(pardict_set(d, &stored_ab, &v, nullptr), PARDICT_INSERTED);
  ASSERT_EQ(pardict_set(d, &stored_e, &v, nullptr), PARDICT_INSERTED);
  const unsigned char data[] = {'z', 'z', 'a', 'b',  'x',  'a', 'b',
                                'x', 'a', 'b', 0xc3, 0xa9, 'a', 0xff};
  const std::int32_t off32[] = {0, 2, 4, 5, 7, 7, 8, 10, 12, 14};
  const std::int64_t off64[] = {0, 2, 4, 5, 7, 7, 8, 10, 12, 14};
  const std::int64_t n = 8;
  const std::int64_t vals[] = {1, 2, 3, 4, 5, 6, 7, 8};
  const std::int32_t fields[] = {0, PARDICT_KIND_I64};
  for (const int offset_bytes : {4, 8}) {
    SCOPED_TRACE(offset_bytes);
    const void* offsets = offset_bytes == 4 ? static_cast<const void*>(off32) : off64;
    std::vector<std::int64_t> miss_rows(n, -1), miss_vals(n, -1);
    std::int64_t n_miss = -1;
    ASSERT_EQ(pardict_combine_many_utf8(d, data, sizeof data, offsets, offset_bytes, 1, n, vals, 8,
                                        PARDICT_OP_ADD, fields, 1, 1, miss_rows.data(),
                                        miss_vals.data(), &n_miss),
              PARDICT_OK);
    std::int64_t out = 0;
    ASSERT_EQ(pardict_get(d, &stored_ab, &out), PARDICT_FOUND);
    const std::int64_t pass = offset_bytes / 4;  // 1, then 2: the second pass adds the same again
    EXPECT_EQ(out, 100 + pass * (1 + 3 + 6));    // combined in place, whatever the stored kind
    ASSERT_EQ(pardict_get(d, &stored_e, &out), PARDICT_FOUND);
    EXPECT_EQ(out, 100 + pass * 7);
    EXPECT_EQ(pardict_len(d), 2);  // nothing inserted
    ASSERT_EQ(n_miss, 3);          // "x", "" and "a\ufffd": rows relative to first
    std::map<std::int64_t, std::int64_t> by_row;
    for (std::int64_t i = 0; i < n_miss; ++i) by_row[miss_rows[i]] = miss_vals[i];
    EXPECT_EQ(by_row, (std::map<std::int64_t, std::int64_t>{{1, 2 + 5}, {3, 4}, {7, 8}}));
  }

  // One value for every row (stride 0), split over threads: every row counted once.
  std::vector<unsigned char> text;
  std::vector<std::int64_t> offs{0};
  for (std::size_t i = 0; i < 40000; ++i) {
    text.push_back('a');
    text.push_back(i % 2 == 0 ? 'b' : 'c');  // "ab" present, "ac" new
    offs.push_back(static_cast<std::int64_t>(text.size()));
  }
  const std::int64_t one = 1;
  std::vector<std::int64_t> miss_rows(40000, -1), miss_vals(40000, -1);
  std::int64_t n_miss = -1;
  ASSERT_EQ(pardict_combine_many_utf8(d, text.data(), static_cast<std::int64_t>(text.size()),
                                      offs.data(), 8, 0, 40000, &one, 0, PARDICT_OP_ADD, fields, 1,
                                      4, miss_rows.data(), miss_vals.data(), &n_miss),
            PARDICT_OK);
  std::int64_t out = 0;
  ASSERT_EQ(pardict_get(d, &stored_ab, &out), PARDICT_FOUND);
  EXPECT_EQ(out, 120 + 20000);
  // Only "ac" is missing: both workers saw it, and their reports are merged into one.
  ASSERT_EQ(n_miss, 1);
  EXPECT_EQ(miss_rows[0] % 2, 1);
  EXPECT_EQ(miss_vals[0], 20000);

  // Bad arguments: offsets past the data or out of order, an offset width, an assign op, a
  // stride that is not the value class, a non-string key layout.
  const std::int32_t past[] = {0, 2, 99};
  const std::int32_t backwards[] = {0, 4, 2};
  auto call = [&](pardict_dict* t, const void* o, int ob, std::int64_t stride, std::int32_t op) {
    return pardict_combine_many_utf8(t, data, sizeof data, o, ob, 0, 2, vals, stride, op, fields, 1,
                                     1, miss_rows.data(), miss_vals.data(), &n_miss);
  };
  EXPECT_EQ(call(d, past, 4, 8, PARDICT_OP_ADD), PARDICT_ERR_INVALID);
  EXPECT_EQ(call(d, backwards, 4, 8, PARDICT_OP_ADD), PARDICT_ERR_INVALID);
  EXPECT_EQ(call(d, off32, 2, 8, PARDICT_OP_ADD), PARDICT_ERR_INVALID);
  EXPECT_EQ(call(d, off32, 4, 8, PARDICT_OP_ASSIGN), PARDICT_ERR_INVALID);
  EXPECT_EQ(call(d, off32, 4, 4, PARDICT_OP_ADD), PARDICT_ERR_INVALID);
  pardict_dict* ints = make(8, 8);
  EXPECT_EQ(call(ints, off32, 4, 8, PARDICT_OP_ADD), PARDICT_ERR_INVALID);
  pardict_free(ints);
  pardict_free(d);
}

TEST_F(CapiTest, CombineManyUtf8MatchesASerialCountOnEveryThreadCount) {
  // 200k rows over 5000 words of 0 to 40 bytes: ASCII, 2- and 3-byte UTF-8, words that share
  // their first 16 bytes and differ in the tail, the empty word; the dictionary holds every
  // third word. Whatever the thread count and value stride, the misses name each absent word
  // once, and the combined plus reported values equal a serial count.
  std::vector<std::string> vocab;
  for (int w = 0; w < 5000; ++w) {
    std::string s;
    const int len = (w * 7919) % 41;
    for (int i = 0; i < len; ++i) s.push_back(static_cast<char>('a' + (w + i * 31) % 26));
    if (w % 5 == 1) s += "\xc3\xa9";      // é
    if (w % 7 == 2) s += "\xe2\x82\xac";  // €
    if (w % 11 == 3) s = "0123456789abcdef_long_tail_" + std::to_string(w);
    vocab.push_back(s);
  }
  std::sort(vocab.begin(), vocab.end());
  vocab.erase(std::unique(vocab.begin(), vocab.end()), vocab.end());
  std::vector<unsigned char> text;
  std::vector<std::int32_t> offs{0};
  std::vector<std::int64_t> vals;
  std::uint64_t x = 12345;
  for (int r = 0; r < 200000; ++r) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    const std::size_t rank = (x >> 33) % vocab.size();
    const std::size_t w = rank % 3 == 0 ? rank : (rank * rank) % vocab.size();  // some skew
    text.insert(text.end(), vocab[w].begin(), vocab[w].end());
    offs.push_back(static_cast<std::int32_t>(text.size()));
    vals.push_back(r % 3 + 1);
  }
  const std::int32_t fields[] = {0, PARDICT_KIND_I64};
  for (const std::int64_t stride : {0, 8}) {
    for (const std::int32_t threads : {1, 2, 4}) {
      SCOPED_TRACE(::testing::Message() << "stride " << stride << " threads " << threads);
      pardict_dict* d = make(48, 8, /*krefs=*/1u << 4, /*kstrs=*/1u);
      fake_meminfo m;
      std::vector<std::vector<std::uint32_t>> stored_points;
      std::vector<key_buf> stored;
      stored_points.reserve(vocab.size());
      stored.reserve(vocab.size());
      for (std::size_t w = 0; w < vocab.size(); w += 3) {  // every third word, stored as UCS4
        std::vector<std::uint32_t> pts;
        const auto* p = reinterpret_cast<const unsigned char*>(vocab[w].data());
        for (std::size_t i = 0; i < vocab[w].size();) {
          const unsigned char b = p[i];
          const int extra = b < 0x80 ? 0 : (b & 0xE0) == 0xC0 ? 1 : 2;
          std::uint32_t c = extra == 0 ? b : extra == 1 ? (b & 0x1Fu) : (b & 0x0Fu);
          for (int e = 1; e <= extra; ++e) c = (c << 6) | (p[i + e] & 0x3Fu);
          pts.push_back(c);
          i += 1 + extra;
        }
        stored_points.push_back(std::move(pts));
        const auto& sp = stored_points.back();
        stored.push_back(
            key_buf{{sp.data(), static_cast<std::int64_t>(sp.size()), 4, 0, -1, &m, nullptr}});
        const std::int64_t zero = 0;
        ASSERT_EQ(pardict_set(d, &stored.back(), &zero, nullptr), PARDICT_INSERTED);
      }
      const std::int64_t one = 1;
      const std::int64_t n = static_cast<std::int64_t>(offs.size()) - 1;
      std::vector<std::int64_t> miss_rows(n, -1), miss_vals(n, -1);
      std::int64_t n_miss = -1;
      ASSERT_EQ(pardict_combine_many_utf8(d, text.data(), static_cast<std::int64_t>(text.size()),
                                          offs.data(), 4, 0, n, stride == 0 ? &one : vals.data(),
                                          stride, PARDICT_OP_ADD, fields, 1, threads,
                                          miss_rows.data(), miss_vals.data(), &n_miss),
                PARDICT_OK);
      std::map<std::string, std::int64_t> want_sum;  // the expected total per word
      for (std::int64_t r = 0; r < n; ++r) {
        const std::string w(text.begin() + offs[r], text.begin() + offs[r + 1]);
        want_sum[w] += stride == 0 ? 1 : vals[r];
      }
      std::map<std::string, std::int64_t> got;
      for (std::int64_t i = 0; i < n_miss; ++i) {
        const auto r = miss_rows[i];
        ASSERT_GE(r, 0);
        ASSERT_LT(r, n);
        const std::string w(text.begin() + offs[r], text.begin() + offs[r + 1]);
        EXPECT_TRUE(got.emplace(w, miss_vals[i]).second) << "reported twice: " << w;
      }
      for (std::size_t i = 0; i < stored.size(); ++i) {
        std::int64_t out = -1;
        ASSERT_EQ(pardict_get(d, &stored[i], &out), PARDICT_FOUND);
        const std::string& w = vocab[3 * i];
        if (out != 0) {
          EXPECT_TRUE(got.emplace(w, out).second) << "present and reported: " << w;
        }
      }
      EXPECT_EQ(got, want_sum);
      EXPECT_EQ(pardict_len(d), static_cast<std::int64_t>(stored.size()));
      pardict_free(d);
    }
  }
}

TEST_F(CapiTest, GetManyTestsMembershipOfValuesHoldingReferences) {
  // int64 -> {meminfo, payload}: get_many may not copy such values out, but a membership test
  // (values_out null) reads none of them.
  pardict_dict* d = make(8, 16, 0, 0, /*vrefs=*/1u);
  fake_meminfo m;
  const std::int64_t k = 5;
  const ref_value v{&m, 1};
  ASSERT_EQ(pardict_set(d, &k, &v, nullptr), PARDICT_INSERTED);
  const std::int64_t keys[] = {5, 6, 5};
  std::uint8_t found[3] = {9, 9, 9};
  ref_value out[3];
  std::int64_t count = -1;
  EXPECT_EQ(pardict_get_many(d, keys, 3, out, found, 1, &count), PARDICT_ERR_INVALID);
  ASSERT_EQ(pardict_get_many(d, keys, 3, nullptr, found, 1, &count), PARDICT_OK);
  EXPECT_EQ(count, 2);
  EXPECT_EQ(std::vector<int>(found, found + 3), (std::vector<int>{1, 0, 1}));
  pardict_free(d);
}

TEST_F(CapiTest, GetManyUcs4LooksWordsUpInPlace) {
  // A str -> int64 dict holding "ab" (kind 1), "é" (kind 1, code point 0xe9) and "" — looked up
  // from a NumPy U3 array whose rows are UCS4 (kind 4): equal by code points, not bytes.
  pardict_dict* d = make(48, 8, /*krefs=*/1u << 4, /*kstrs=*/1u);
  fake_meminfo m;
  const char ab[] = "ab", e[] = "\xe9", empty[] = "";
  const key_buf stored[] = {{{ab, 2, 1, 0, -1, &m, nullptr}},
                            {{e, 1, 1, 0, -1, &m, nullptr}},
                            {{empty, 0, 1, 0, -1, &m, nullptr}}};
  for (std::int64_t i = 0; i < 3; ++i)
    ASSERT_EQ(pardict_set(d, &stored[i], &i, nullptr), PARDICT_INSERTED);
  const std::uint32_t rows[][3] = {{'a', 'b', 0}, {'x', 0, 0},     {0xe9, 0, 0},
                                   {0, 0, 0},     {'a', 'b', 'c'}, {'a', 0, 0}};
  std::int64_t out[6] = {-1, -1, -1, -1, -1, -1};
  std::uint8_t found[6] = {9, 9, 9, 9, 9, 9};
  std::int64_t count = -1;
  ASSERT_EQ(pardict_get_many_ucs4(d, rows, 3, 6, out, found, 1, &count), PARDICT_OK);
  EXPECT_EQ(count, 3);
  EXPECT_EQ(std::vector<int>(found, found + 6), (std::vector<int>{1, 0, 1, 1, 0, 0}));
  EXPECT_EQ(out[0], 0);
  EXPECT_EQ(out[2], 1);
  EXPECT_EQ(out[3], 2);
  EXPECT_EQ(out[1], -1);  // misses leave the output alone

  // Many rows over several workers, found only (values_out null).
  std::vector<std::uint32_t> many(3 * 50000, 0);
  for (std::size_t i = 0; i < 50000; ++i) {
    many[3 * i] = 'a';
    many[3 * i + 1] = i % 3 == 0 ? 'b' : 'z';
  }
  std::vector<std::uint8_t> hits(50000, 7);
  ASSERT_EQ(pardict_get_many_ucs4(d, many.data(), 3, 50000, nullptr, hits.data(), 4, &count),
            PARDICT_OK);
  EXPECT_EQ(count, (50000 + 2) / 3);
  for (std::size_t i = 0; i < 50000; ++i) ASSERT_EQ(hits[i], i % 3 == 0 ? 1 : 0) << i;

  // Bad arguments: a non-string key layout; values out of a layout holding references.
  pardict_dict* ints = make(8, 8);
  EXPECT_EQ(pardict_get_many_ucs4(ints, rows, 3, 6, out, found, 1, &count), PARDICT_ERR_INVALID);
  pardict_free(ints);
  pardict_dict* refs = make(48, 16, 1u << 4, 1u, /*vrefs=*/1u);
  EXPECT_EQ(pardict_get_many_ucs4(refs, rows, 3, 6, out, found, 1, &count), PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_get_many_ucs4(refs, rows, 3, 6, nullptr, found, 1, &count), PARDICT_OK);
  EXPECT_EQ(count, 0);
  pardict_free(refs);
  pardict_free(d);
}

TEST_F(CapiTest, BulkCallsStartNoMoreWorkersThanCpus) {
  // Each worker of the string path reports a word the dict lacks once, so the number of reports
  // of one new word counts the workers: 8 requested, enough rows for 8, at most one per CPU.
  std::int64_t cpus = std::max(1u, std::thread::hardware_concurrency());
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = CPU_COUNT(&set);
#endif
  pardict_dict* d = make(48, 8, 1u << 4, 1u);
  const std::int64_t n = 8 * 16384;
  const std::vector<std::uint32_t> rows(n, 'z');
  const std::int64_t one = 1;
  const std::int32_t fields[] = {0, PARDICT_KIND_I64};
  std::vector<std::int64_t> miss_rows(n), miss_vals(n);
  std::int64_t n_miss = -1;
  ASSERT_EQ(pardict_combine_many_ucs4(d, rows.data(), 1, n, &one, 0, PARDICT_OP_ADD, fields, 1, 8,
                                      miss_rows.data(), miss_vals.data(), &n_miss),
            PARDICT_OK);
  EXPECT_EQ(n_miss, std::min<std::int64_t>(8, cpus));
  std::int64_t total = 0;
  for (std::int64_t i = 0; i < n_miss; ++i) total += miss_vals[i];
  EXPECT_EQ(total, n);
  pardict_free(d);
}

TEST_F(CapiTest, CombineManyUcs4LetsALeadingNanGiveWay) {
  // max over rows {NaN, 1} of a word stored as 0.5: some order of the rows gives 1 (NaN never
  // replaces a stored value), none gives 0.5; the pre-aggregate must not hide the 1 behind NaN.
  pardict_dict* d = make(48, 8, 1u << 4, 1u);
  fake_meminfo m;
  const char w[] = "w";
  key_buf stored{{w, 1, 1, 0, -1, &m, nullptr}};
  double v = 0.5;
  ASSERT_EQ(pardict_set(d, &stored, &v, nullptr), PARDICT_INSERTED);
  const std::uint32_t rows[] = {'w', 'w'};
  const double vals[] = {std::nan(""), 1.0};
  const std::int32_t fields[] = {0, PARDICT_KIND_F64};
  std::int64_t miss_rows[2], n_miss = -1;
  double miss_vals[2];
  ASSERT_EQ(pardict_combine_many_ucs4(d, rows, 1, 2, vals, 8, PARDICT_OP_MAX, fields, 1, 1,
                                      miss_rows, miss_vals, &n_miss),
            PARDICT_OK);
  EXPECT_EQ(n_miss, 0);
  double out = 0;
  ASSERT_EQ(pardict_get(d, &stored, &out), PARDICT_FOUND);
  EXPECT_EQ(out, 1.0);
  pardict_free(d);
}

// A thread's copy of an unowned array is shared only while it equals the source, in shape and
// bytes; the dictionary holds one reference to it until cleared or freed.
TEST_F(CapiTest, UnownedCopiesAreSharedWhileTheyMatch) {
  pardict_dict* d = make(8, sizeof(array1d), 0, 0, /*vrefs=*/1u);
  float src_data[2] = {0.1f, 0.2f}, copy_data[2] = {0.1f, 0.2f};
  const array1d src = float_array(nullptr, src_data, 2);
  fake_meminfo copy_mi;
  const array1d copy = float_array(&copy_mi, copy_data, 2);
  array1d out{};
  EXPECT_EQ(pardict_unowned_find(d, &src, 1, &out), PARDICT_ABSENT);  // nothing remembered yet
  EXPECT_EQ(pardict_unowned_remember(d, &src, 1, &copy), PARDICT_OK);
  EXPECT_EQ(copy_mi.refct.load(), 2u);  // + the dictionary's
  ASSERT_EQ(pardict_unowned_find(d, &src, 1, &out), PARDICT_FOUND);
  EXPECT_EQ(std::memcmp(&out, &copy, sizeof out), 0);
  EXPECT_EQ(copy_mi.refct.load(), 3u);  // + the caller's new reference
  fake_release(&copy_mi);

  copy_data[1] = 5.0f;  // the copy changed (d[k][1] = 5): no longer a copy of src
  EXPECT_EQ(pardict_unowned_find(d, &src, 1, &out), PARDICT_ABSENT);
  copy_data[1] = 0.2f;
  src_data[0] = 3.0f;  // the source changed
  EXPECT_EQ(pardict_unowned_find(d, &src, 1, &out), PARDICT_ABSENT);
  src_data[0] = 0.1f;
  const array1d shorter = float_array(nullptr, src_data, 1);  // same memory, other shape
  EXPECT_EQ(pardict_unowned_find(d, &shorter, 1, &out), PARDICT_ABSENT);
  float other_data[2] = {0.1f, 0.2f};  // equal bytes, another source
  const array1d other = float_array(nullptr, other_data, 2);
  EXPECT_EQ(pardict_unowned_find(d, &other, 1, &out), PARDICT_ABSENT);
  EXPECT_EQ(pardict_unowned_find(d, &src, 1, &out), PARDICT_FOUND);
  fake_release(&copy_mi);

  // Remembering another copy releases the previous one; clear releases the last.
  fake_meminfo copy2_mi;
  float copy2_data[2] = {0.1f, 0.2f};
  const array1d copy2 = float_array(&copy2_mi, copy2_data, 2);
  EXPECT_EQ(pardict_unowned_remember(d, &src, 1, &copy2), PARDICT_OK);
  EXPECT_EQ(copy_mi.refct.load(), 1u);
  EXPECT_EQ(copy2_mi.refct.load(), 2u);
  EXPECT_EQ(pardict_clear(d), PARDICT_OK);
  EXPECT_EQ(copy2_mi.refct.load(), 1u);
  EXPECT_EQ(pardict_unowned_find(d, &src, 1, &out), PARDICT_ABSENT);
  EXPECT_EQ(pardict_unowned_remember(d, &src, 1, &copy2), PARDICT_OK);
  pardict_free(d);  // and freeing the dictionary
  EXPECT_EQ(copy2_mi.refct.load(), 1u);
}

// pardict_set_array: an owned array is stored as itself, a borrowed one as the thread's matching
// copy (or not at all: PARDICT_NEED_COPY); a replaced value is released inside the call.
TEST_F(CapiTest, SetArrayStoresOwnedArraysAndSharedCopies) {
  pardict_dict* d = make(8, sizeof(array1d), 0, 0, /*vrefs=*/1u);
  const std::int64_t refs0 = pardict_live_refs();
  float src_data[2] = {0.1f, 0.2f}, copy_data[2] = {0.1f, 0.2f}, own_data[2] = {7, 8};
  const array1d src = float_array(nullptr, src_data, 2);
  std::uint64_t k1 = 1, k2 = 2;
  EXPECT_EQ(pardict_set_array(d, &k1, &src, 1), PARDICT_NEED_COPY);  // no copy remembered yet
  EXPECT_EQ(pardict_len(d), 0);

  fake_meminfo copy_mi, own_mi;
  const array1d copy = float_array(&copy_mi, copy_data, 2);
  ASSERT_EQ(pardict_unowned_remember(d, &src, 1, &copy), PARDICT_OK);
  EXPECT_EQ(pardict_set_array(d, &k1, &src, 1), PARDICT_INSERTED);
  EXPECT_EQ(pardict_set_array(d, &k2, &src, 1), PARDICT_INSERTED);
  EXPECT_EQ(copy_mi.refct.load(), 4u);  // the test's, the remembered copy's, two entries'
  array1d out{};
  ASSERT_EQ(pardict_get(d, &k2, &out), PARDICT_FOUND);
  EXPECT_EQ(out.mi, &copy_mi);
  EXPECT_EQ(out.data, copy_data);  // the copy, not the borrowed source
  fake_release(&copy_mi);

  // An owned array replaces the copy under k1; the replaced reference is dropped in the call.
  const array1d own = float_array(&own_mi, own_data, 2);
  EXPECT_EQ(pardict_set_array(d, &k1, &own, 1), PARDICT_REPLACED);
  EXPECT_EQ(copy_mi.refct.load(), 3u);
  EXPECT_EQ(own_mi.refct.load(), 2u);
  ASSERT_EQ(pardict_get(d, &k1, &out), PARDICT_FOUND);
  EXPECT_EQ(out.mi, &own_mi);
  fake_release(&own_mi);
  EXPECT_EQ(pardict_live_refs() - refs0, 3);  // two entries, the remembered copy

  copy_data[0] = 9.0f;  // the copy changed through d[k2]: no longer shared, nothing stored
  EXPECT_EQ(pardict_set_array(d, &k1, &src, 1), PARDICT_NEED_COPY);
  EXPECT_EQ(own_mi.refct.load(), 2u);

  EXPECT_EQ(pardict_set_array(d, &k1, &src, 2), PARDICT_ERR_INVALID);  // ndim mismatch
  EXPECT_EQ(pardict_set_array(d, nullptr, &src, 1), PARDICT_ERR_INVALID);
  pardict_dict* scalars = make(8, 8);
  EXPECT_EQ(pardict_set_array(scalars, &k1, &src, 1), PARDICT_ERR_INVALID);
  pardict_free(scalars);
  pardict_free(d);
  EXPECT_EQ(copy_mi.refct.load(), 1u);
  EXPECT_EQ(own_mi.refct.load(), 1u);
  EXPECT_EQ(pardict_live_refs(), refs0);
}

// A dictionary of 1-D arrays in the one-word form (value_size 8, the MemInfo word a reference):
// pardict_set_array takes the whole struct and stores its MemInfo word, the copy's for a borrowed
// array.
TEST_F(CapiTest, SetArrayInTheOneWordFormStoresTheMemInfo) {
  pardict_dict* d = make(8, 8, 0, 0, /*vrefs=*/1u);
  float src_data[2] = {0.1f, 0.2f}, copy_data[2] = {0.1f, 0.2f}, own_data[2] = {7, 8};
  const array1d src = float_array(nullptr, src_data, 2);
  std::uint64_t k1 = 1, k2 = 2;
  EXPECT_EQ(pardict_set_array(d, &k1, &src, 1), PARDICT_NEED_COPY);
  fake_meminfo copy_mi, own_mi;
  const array1d copy = float_array(&copy_mi, copy_data, 2);
  ASSERT_EQ(pardict_unowned_remember(d, &src, 1, &copy), PARDICT_OK);
  array1d found{};
  ASSERT_EQ(pardict_unowned_find(d, &src, 1, &found), PARDICT_FOUND);  // the whole struct
  EXPECT_EQ(found.mi, &copy_mi);
  EXPECT_EQ(found.data, copy_data);
  fake_release(&copy_mi);
  EXPECT_EQ(pardict_set_array(d, &k1, &src, 1), PARDICT_INSERTED);
  const array1d own = float_array(&own_mi, own_data, 2);
  EXPECT_EQ(pardict_set_array(d, &k2, &own, 1), PARDICT_INSERTED);
  void* out[2] = {nullptr, reinterpret_cast<void*>(0x1)};  // one word written, no more
  ASSERT_EQ(pardict_get(d, &k1, out), PARDICT_FOUND);
  EXPECT_EQ(out[0], &copy_mi);
  EXPECT_EQ(out[1], reinterpret_cast<void*>(0x1));
  fake_release(&copy_mi);
  ASSERT_EQ(pardict_get(d, &k2, out), PARDICT_FOUND);
  EXPECT_EQ(out[0], &own_mi);
  fake_release(&own_mi);
  EXPECT_EQ(copy_mi.refct.load(), 3u);  // the test's, the remembered copy's, k1's
  EXPECT_EQ(own_mi.refct.load(), 2u);
  EXPECT_EQ(pardict_set_array(d, &k1, &src, 2), PARDICT_ERR_INVALID);  // only 1-D is one word
  pardict_free(d);
  EXPECT_EQ(copy_mi.refct.load(), 1u);
  EXPECT_EQ(own_mi.refct.load(), 1u);
}

// The numba fast path's store of the thread's copy (jit_set_array on an owner-less array) takes
// the dictionary's references from the stripe's reserve: reserve_batch at a time from the copy's
// MemInfo, the unused rest given back when the stripe lets the copy go (clear, free, or another
// copy remembered). The books count the stored references only.
TEST_F(CapiTest, CopyStoresTakeReferencesFromTheStripesReserve) {
  constexpr auto batch = pardict::capi::unowned_copies::reserve_batch;
  pardict_dict* d = make(8, 8, 0, 0, /*vrefs=*/1u);  // 1-D arrays, one word
  auto& copies = reinterpret_cast<pardict::capi::dict_base*>(d)->copies;
  const std::int64_t refs0 = pardict_live_refs();
  float src_data[2] = {0.1f, 0.2f}, copy_data[2] = {0.1f, 0.2f}, copy2_data[2] = {0.1f, 0.2f};
  const array1d src = float_array(nullptr, src_data, 2);
  fake_meminfo copy_mi, copy2_mi;
  const array1d copy = float_array(&copy_mi, copy_data, 2);
  const array1d copy2 = float_array(&copy2_mi, copy2_data, 2);
  auto store = [&](std::uint64_t k) {
    void* old = nullptr;
    const std::int32_t st =
        pardict::capi::jit_set_array<std::uint64_t>(d, &k, &src, &old, true, pardict_jit_fences());
    if (old != nullptr) fake_release(old);
    return st;
  };
  ASSERT_EQ(pardict_unowned_remember(d, &src, 1, &copy), PARDICT_OK);
  ASSERT_EQ(copy_mi.refct.load(), 2u);  // the test's, the stripe's
  EXPECT_EQ(copies.reserved(), 0u);
  // Stores decided inline take from the reserve, the others (the first, before the table exists;
  // those the home group cannot decide) add one each: either way the count is its holders' (the
  // test, the stripe, one per key) plus what is left in the reserve.
  constexpr std::uint64_t n = 1000;
  bool reserve_used = false;
  for (std::uint64_t k = 0; k < n; ++k) {
    ASSERT_EQ(store(k), PARDICT_INSERTED) << k;
    const std::uint64_t left = copies.reserved();
    ASSERT_LE(left, batch);  // a store not decided inline gives its reference back
    ASSERT_EQ(copy_mi.refct.load(), 2 + (k + 1) + left) << k;
    reserve_used |= left != 0;
  }
  EXPECT_TRUE(reserve_used);
  EXPECT_EQ(pardict_live_refs() - refs0, static_cast<std::int64_t>(n + 1));  // + the stripe's
  EXPECT_EQ(store(0), PARDICT_REPLACED);  // takes one, hands one back
  EXPECT_EQ(copy_mi.refct.load(), 2 + n + copies.reserved());
  for (std::uint64_t k = 0; k < n / 2; ++k) {
    void* out = nullptr;
    ASSERT_EQ(pardict_pop(d, &k, &out), PARDICT_FOUND);
    fake_release(out);
  }
  EXPECT_EQ(copy_mi.refct.load(), 2 + n / 2 + copies.reserved());
  // Another copy remembered: the first one's reserve and the stripe's reference go back.
  ASSERT_EQ(pardict_unowned_remember(d, &src, 1, &copy2), PARDICT_OK);
  EXPECT_EQ(copies.reserved(), 0u);
  EXPECT_EQ(copy_mi.refct.load(), 1 + n / 2);
  EXPECT_EQ(store(n), PARDICT_INSERTED);
  EXPECT_EQ(copy2_mi.refct.load(), 3 + copies.reserved());
  EXPECT_EQ(pardict_clear(d), PARDICT_OK);  // the entries, and the stripe's copy and reserve
  EXPECT_EQ(copy_mi.refct.load(), 1u);
  EXPECT_EQ(copy2_mi.refct.load(), 1u);
  EXPECT_EQ(pardict_live_refs(), refs0);
  // Freeing the dictionary gives back what a stripe still holds.
  ASSERT_EQ(pardict_unowned_remember(d, &src, 1, &copy2), PARDICT_OK);
  for (std::uint64_t k = 0; k < 10; ++k) EXPECT_EQ(store(k), PARDICT_INSERTED);
  EXPECT_EQ(copy2_mi.refct.load(), 2 + 10 + copies.reserved());
  pardict_free(d);
  EXPECT_EQ(copy2_mi.refct.load(), 1u);
  EXPECT_EQ(pardict_live_refs(), refs0);
}

// A thread's last view MemInfo is found again for an equal array struct, with a new reference,
// and released when the dictionary is cleared (or freed).
TEST_F(CapiTest, ViewsAreFoundForEqualArraysUntilCleared) {
  pardict_dict* d = make(8, 8, 0, 0, /*vrefs=*/1u);
  fake_meminfo owner, view, view2;
  float data[4] = {1, 2, 3, 4};
  const array1d a = float_array(&owner, data, 4);
  array1d b = a;
  void* out = nullptr;
  EXPECT_EQ(pardict_view_find(d, &a, &out), PARDICT_ABSENT);
  ASSERT_EQ(pardict_view_remember(d, &a, &view), PARDICT_OK);
  EXPECT_EQ(view.refct.load(), 2u);  // the test's, the remembered one
  ASSERT_EQ(pardict_view_find(d, &b, &out), PARDICT_FOUND);
  EXPECT_EQ(out, &view);
  EXPECT_EQ(view.refct.load(), 3u);
  fake_release(&view);
  std::uint64_t k = 5;
  EXPECT_EQ(pardict_set_view(d, &k, &b), PARDICT_INSERTED);  // stores the view's word
  EXPECT_EQ(view.refct.load(), 3u);
  ASSERT_EQ(pardict_get(d, &k, &out), PARDICT_FOUND);
  EXPECT_EQ(out, &view);
  fake_release(&view);
  b.shape = 2;                                                // any word differs: another array
  EXPECT_EQ(pardict_set_view(d, &k, &b), PARDICT_NEED_COPY);  // nothing stored
  EXPECT_EQ(view.refct.load(), 3u);
  EXPECT_EQ(pardict_view_find(d, &b, &out), PARDICT_ABSENT);
  ASSERT_EQ(pardict_view_remember(d, &b, &view2), PARDICT_OK);  // replaces (releases) the first
  EXPECT_EQ(view.refct.load(), 2u);                             // the test's, k's entry
  EXPECT_EQ(pardict_view_find(d, &a, &out), PARDICT_ABSENT);
  EXPECT_EQ(pardict_clear(d), PARDICT_OK);
  EXPECT_EQ(view.refct.load(), 1u);
  EXPECT_EQ(view2.refct.load(), 1u);
  pardict_dict* whole = make(8, sizeof(array1d), 0, 0, 1u);  // whole structs: no views
  EXPECT_EQ(pardict_view_find(whole, &a, &out), PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_view_remember(whole, &a, &view), PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_set_view(whole, &k, &a), PARDICT_ERR_INVALID);
  pardict_free(whole);
  pardict_free(d);
}

// The destructor of a view MemInfo releases the reference its payload (an array struct) holds.
TEST_F(CapiTest, ArrayViewDtorReleasesTheCarriedReference) {
  fake_meminfo inner;
  inner.refct.fetch_add(1);  // the payload's reference
  float data[3] = {1, 2, 3};
  array1d payload = float_array(&inner, data, 3);
  pardict_array_view_dtor(&payload, sizeof payload, nullptr);
  EXPECT_EQ(inner.refct.load(), 1u);
  payload.mi = nullptr;  // nothing carried: nothing released
  pardict_array_view_dtor(&payload, sizeof payload, nullptr);
  EXPECT_EQ(inner.refct.load(), 1u);
}

TEST_F(CapiTest, UnownedCopiesNeedAnArrayValue) {
  float data[2] = {0, 0};
  const array1d a = float_array(nullptr, data, 2);
  array1d out{};
  pardict_dict* scalars = make(8, 8);
  EXPECT_EQ(pardict_unowned_find(scalars, &a, 1, &out), PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_unowned_remember(scalars, &a, 1, &a), PARDICT_ERR_INVALID);
  pardict_free(scalars);
  pardict_dict* d = make(8, sizeof(array1d), 0, 0, 1u);
  EXPECT_EQ(pardict_unowned_find(d, &a, 2, &out), PARDICT_ERR_INVALID);  // ndim mismatch
  EXPECT_EQ(pardict_unowned_find(d, &a, -1, &out), PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_unowned_find(d, nullptr, 1, &out), PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_unowned_find(nullptr, &a, 1, &out), PARDICT_ERR_INVALID);
  pardict_free(d);
}

TEST_F(CapiTest, ExportManyCopiesEveryElementOnceOrAsksForRoom) {
  // int32 -> float64: 4-byte key blobs, 8-byte value blobs, in one order for both arrays.
  pardict_dict* d = make(4, 8);
  const std::int64_t n = 5000;
  for (std::int32_t i = 0; i < n; ++i) {
    const double v = i * 0.5;
    ASSERT_EQ(pardict_set(d, &i, &v, nullptr), 0);
  }
  std::vector<std::int32_t> keys(n + 3, -1);
  std::vector<double> values(n + 3, -1.0);
  std::int64_t met = -1;
  ASSERT_EQ(pardict_export_many(d, keys.data(), values.data(), n + 3, &met), PARDICT_OK);
  ASSERT_EQ(met, n);
  std::set<std::int32_t> seen;
  for (std::int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(values[i], keys[i] * 0.5);
    seen.insert(keys[i]);
  }
  EXPECT_EQ(static_cast<std::int64_t>(seen.size()), n);
  EXPECT_EQ(keys[n], -1);  // nothing past the elements

  // Too little room: capacity elements copied, the full count reported.
  std::vector<std::int32_t> few(10, -1);
  std::vector<double> few_values(10, -1.0);
  ASSERT_EQ(pardict_export_many(d, few.data(), few_values.data(), 10, &met), PARDICT_OK);
  EXPECT_EQ(met, n);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(few_values[i], few[i] * 0.5);
  ASSERT_EQ(pardict_export_many(d, nullptr, nullptr, 0, &met), PARDICT_OK);
  EXPECT_EQ(met, n);

  EXPECT_EQ(pardict_export_many(d, keys.data(), values.data(), n, nullptr), PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_export_many(d, nullptr, values.data(), n, &met), PARDICT_ERR_INVALID);
  EXPECT_EQ(pardict_export_many(d, keys.data(), values.data(), -1, &met), PARDICT_ERR_INVALID);
  // Values holding references cannot be byte-copied out.
  pardict_dict* refs = make(8, 16, 0, 0, /*vrefs=*/1u);
  EXPECT_EQ(pardict_export_many(refs, keys.data(), values.data(), 1, &met), PARDICT_ERR_INVALID);
  pardict_free(refs);
  pardict_free(d);
}
