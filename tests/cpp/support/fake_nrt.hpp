// A stand-in for numba's NRT MemInfo in C ABI tests: a refcount at offset 0 (as in nrt.cpp) and a
// release function that counts destructions, so tests can check every reference exactly.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pardict_capi.h"

namespace pardict_test {

struct fake_meminfo {
  std::atomic<std::size_t> refct{1};  // the test's own reference
  std::atomic<int> destroyed{0};
};

inline std::atomic<long> g_released{0};

inline void fake_release(void* p) {
  auto* mi = static_cast<fake_meminfo*>(p);
  g_released.fetch_add(1);
  if (mi->refct.fetch_sub(1) == 1) mi->destroyed.fetch_add(1);
}

// A numba unicode struct (48 bytes): data, length, kind, is_ascii, hash, meminfo, parent.
struct fake_unicode {
  const void* data;
  std::int64_t length;
  std::int32_t kind;
  std::uint32_t is_ascii;
  std::int64_t hash;
  void* meminfo;
  void* parent;
};
static_assert(sizeof(fake_unicode) == PARDICT_NB_UNICODE_SIZE);
static_assert(offsetof(fake_unicode, data) == PARDICT_NB_UNICODE_DATA &&
              offsetof(fake_unicode, length) == PARDICT_NB_UNICODE_LENGTH &&
              offsetof(fake_unicode, kind) == PARDICT_NB_UNICODE_KIND &&
              offsetof(fake_unicode, is_ascii) == PARDICT_NB_UNICODE_IS_ASCII &&
              offsetof(fake_unicode, hash) == PARDICT_NB_UNICODE_HASH &&
              offsetof(fake_unicode, meminfo) == PARDICT_NB_UNICODE_MEMINFO);

// A numba 1-d array struct: meminfo, parent, nitems, itemsize, data, shape[1], strides[1].
struct array1d {
  void* mi;
  void* parent;
  std::int64_t nitems, itemsize;
  void* data;
  std::int64_t shape, stride;
};
static_assert(sizeof(array1d) == 56);
static_assert(offsetof(array1d, mi) == PARDICT_NB_ARRAY_MEMINFO &&
              offsetof(array1d, nitems) == PARDICT_NB_ARRAY_NITEMS &&
              offsetof(array1d, itemsize) == PARDICT_NB_ARRAY_ITEMSIZE &&
              offsetof(array1d, data) == PARDICT_NB_ARRAY_DATA &&
              offsetof(array1d, shape) == PARDICT_NB_ARRAY_SHAPE);

// A C-contiguous float32 array of n elements at `data`, owned by `mi` (nullptr: no owner).
inline array1d float_array(void* mi, float* data, std::int64_t n) {
  return {mi, nullptr, n, 4, data, n, 4};
}

// A C ABI test that starts with fake_release installed and ends with as many live dictionaries
// and counted references as it started with: none leaked, none released twice.
struct balanced_capi_test : ::testing::Test {
  void SetUp() override {
    pardict_set_release(&fake_release);
    dicts0 = pardict_live_dicts();
    refs0 = pardict_live_refs();
  }
  void TearDown() override {
    EXPECT_EQ(pardict_live_dicts(), dicts0);
    EXPECT_EQ(pardict_live_refs(), refs0);
  }
  std::int64_t dicts0 = 0, refs0 = 0;
};

}  // namespace pardict_test
