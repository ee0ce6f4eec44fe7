// Copies of arrays without an owner (pardict_unowned_find, pardict_unowned_remember,
// pardict_set_array, and the numba fast path's jit_set_array in jit.hpp). Internal.
//
// parfor passes the arrays a prange body uses as views without a MemInfo: a dictionary cannot keep
// such memory alive, so jitted code stores a copy. A loop that stores one such array under many
// keys (the seed program, `d[float(i)] = v` in prange) would allocate a copy per key: a malloc, a
// free and a MemInfo each. Instead each thread remembers, per dictionary, its last copy: storing
// the same source again, with the same shape and with contents equal to that copy's, shares the
// copy, as a serial typed.Dict loop shares `v` itself. A copy changed since (through d[k]) no
// longer matches, so a new one is made.
//
// The copies are numba array structs of one layout (pardict_numba_layout): meminfo, parent,
// nitems, itemsize, data, shape[ndim], strides[ndim]. Each stripe is owned by whoever sets its
// busy word; threads that share a stripe (more than 64 of them) or meet a clear() just skip the
// cache.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <thread>
#include <utility>

#include "blob.hpp"
#include "pardict/detail/config.hpp"  // PARDICT_ALWAYS_INLINE
#include "pardict_capi.h"
#include "refs.hpp"

namespace pardict::capi {

class unowned_copies {
 public:
  static constexpr std::size_t stripes = 64;
  // numba's array struct, in words.
  static constexpr std::size_t meminfo_word = PARDICT_NB_ARRAY_MEMINFO / word_bytes;
  static constexpr std::size_t nitems_word = PARDICT_NB_ARRAY_NITEMS / word_bytes;
  static constexpr std::size_t itemsize_word = PARDICT_NB_ARRAY_ITEMSIZE / word_bytes;
  static constexpr std::size_t data_word = PARDICT_NB_ARRAY_DATA / word_bytes;
  static constexpr std::size_t header_words = PARDICT_NB_ARRAY_SHAPE / word_bytes;  // to shape[]
  static constexpr std::uint32_t meminfo_mask = std::uint32_t{1} << meminfo_word;
  static constexpr std::size_t max_ndim = 32;  // numba's limit
  static constexpr std::size_t max_array_words = header_words + 2 * max_ndim;

  // Bytes of the struct of an array with ndim dimensions (its shape and strides follow the
  // header).
  static constexpr std::size_t array_bytes(std::size_t ndim) noexcept {
    return PARDICT_NB_ARRAY_SHAPE + 2 * word_bytes * ndim;
  }

  // Whether a dictionary's value layout is the one-word form of a 1-D array: the MemInfo alone
  // (pardict.numba.convert, "Arrays as one word"). No other value pardict.numba stores is one
  // word holding a reference. Such a value is the first word of the array's struct, so storing
  // a struct's first value_size bytes stores the one-word form.
  static constexpr bool stores_one_word(std::uint32_t value_size,
                                        std::uint32_t value_refs) noexcept {
    return value_size == word_bytes && value_refs == meminfo_mask;
  }
  // Words of the array structs a dictionary with this value layout copies.
  static constexpr std::size_t copied_words(std::uint32_t value_size,
                                            std::uint32_t value_refs) noexcept {
    return stores_one_word(value_size, value_refs) ? array_bytes(1) / word_bytes
                                                   : value_size / word_bytes;
  }

  explicit unowned_copies(std::size_t array_words) noexcept
      : array_words_(array_words),
        view_at_(copy_at + array_words),
        stride_((view_at_ + array_words + 1 + 7) & ~std::size_t{7}) {}
  unowned_copies(const unowned_copies&) = delete;
  unowned_copies& operator=(const unowned_copies&) = delete;
  ~unowned_copies() {
    release_all();
    if (std::uint64_t* t = table_.load(std::memory_order_relaxed)) {
      ::operator delete[](t, std::align_val_t{64});
    }
  }

  // This thread's copy of `src` if it still matches: written to `out` with a new reference.
  bool find(const void* src, void* out) noexcept {
    return with_copy(src, false, [&](const std::uint64_t* c) noexcept {
      nrt_incref(reinterpret_cast<void*>(c[meminfo_word]));
      std::memcpy(out, c, word_bytes * array_words_);
      return true;
    });
  }

  // fn(copy) with this thread's copy of `src` if it still matches, else `miss`. The stripe stays
  // locked while fn runs, and its own reference keeps the copy alive, so fn may store the copy
  // (taking a reference of its own) without the find-incref-store-decref round trip. fn may
  // throw; the stripe is unlocked either way.
  template <class R, class Fn>
  R with_copy(const void* src, R miss, Fn&& fn) {
    return with_copy_in(thread_stripe(), src, miss, std::forward<Fn>(fn));
  }
  // with_copy for a caller that names the calling thread's stripe (thread_stripe()): the numba
  // fast path (capi/jit.hpp), which cannot reach the thread_local behind it. Words: the array
  // struct's words when the caller knows them (array_words_, 1-D arrays there), so that the
  // compares unroll; 0 reads them from the object.
  template <std::size_t Words = 0, class R, class Fn>
  PARDICT_ALWAYS_INLINE R with_copy_in(std::size_t stripe, const void* src, R miss, Fn&& fn) {
    const std::size_t words = Words != 0 ? Words : array_words_;
    return with_stripe(stripe, miss, [&](std::uint64_t* e) PARDICT_INLINE_LAMBDA -> R {
      const auto* a = static_cast<const std::uint64_t*>(src);
      const std::uint64_t* c = e + copy_at;
      // Nothing remembered (a zero-size source with a null data pointer never matches), another
      // source, or another shape or item size: no match.
      const std::uint64_t source = e[source_at];
      std::uint64_t differ = (source ^ a[data_word]) | (a[nitems_word] ^ c[nitems_word]) |
                             (a[itemsize_word] ^ c[itemsize_word]);
      for (std::size_t i = header_words; i < words; ++i) differ |= a[i] ^ c[i];  // shape, strides
      if (source == 0 || differ != 0) return miss;
      const auto n =
          static_cast<std::size_t>(a[nitems_word]) * static_cast<std::size_t>(a[itemsize_word]);
      if (!same_bytes(reinterpret_cast<const unsigned char*>(c[data_word]),
                      reinterpret_cast<const unsigned char*>(a[data_word]), n)) {
        return miss;
      }
      return fn(c);
    });
  }

  // Views (dictionaries of 1-D arrays in the one-word form): an array its MemInfo does not
  // describe is stored under a view MemInfo made for it (pardict.numba.convert). Each thread
  // remembers the last one it made, so a loop that stores one such array (an argument from the
  // interpreter) under many keys makes one view MemInfo, not one per key. A view is found again
  // for an array struct equal to its source in every word; the view's payload holds a reference
  // to the source's MemInfo, so that MemInfo cannot be freed and its address reused meanwhile.
  bool find_view(const void* src, void** out) noexcept {
    return with_view(src, false, [&](const std::uint64_t* view) noexcept {
      nrt_incref(reinterpret_cast<void*>(*view));
      std::memcpy(out, view, word_bytes);
      return true;
    });
  }

  // fn(pointer to the view's MemInfo word) with this thread's last view for `src`, else `miss`;
  // as with_copy, the stripe stays locked (its reference keeping the view alive) while fn runs.
  template <class R, class Fn>
  R with_view(const void* src, R miss, Fn&& fn) {
    return with_view_in(thread_stripe(), src, miss, std::forward<Fn>(fn));
  }
  // with_view for a caller that names the calling thread's stripe, as with_copy_in.
  template <std::size_t Words = 0, class R, class Fn>
  PARDICT_ALWAYS_INLINE R with_view_in(std::size_t stripe, const void* src, R miss, Fn&& fn) {
    const std::size_t words = Words != 0 ? Words : array_words_;
    return with_stripe(stripe, miss, [&](std::uint64_t* e) PARDICT_INLINE_LAMBDA -> R {
      const std::uint64_t* source = e + copy_at + words;  // = e + view_at_
      const std::uint64_t* view = source + words;         // = view_word(e)
      if (*view == 0 || !same_bytes(reinterpret_cast<const unsigned char*>(source),
                                    static_cast<const unsigned char*>(src), word_bytes * words)) {
        return miss;
      }
      return fn(view);
    });
  }

  // `view` (a view MemInfo just made for `src`) becomes this thread's last view.
  void remember_view(const void* src, void* view) noexcept {
    std::uint64_t* e = mine();
    if (e == nullptr || !try_lock(e)) return;
    const auto word = reinterpret_cast<std::uint64_t>(view);
    incref_words(&word, meminfo_mask);
    const std::uint64_t old = *view_word(e);
    std::memcpy(e + view_at_, src, word_bytes * array_words_);
    *view_word(e) = word;
    unlock(e);
    release_words(&old, meminfo_mask);
  }

  // `copy` (a fresh copy of `src`, with its own reference) becomes this thread's copy of `src`.
  void remember(const void* src, const void* copy) noexcept {
    std::uint64_t* e = mine();
    if (e == nullptr || !try_lock(e)) return;
    incref_words(copy, meminfo_mask);
    replace_and_unlock(e, static_cast<const std::uint64_t*>(src)[data_word], copy);
  }

  // Drops every remembered copy and view (dictionary cleared or destroyed).
  void release_all() noexcept {
    std::uint64_t* t = table_.load(std::memory_order_acquire);
    if (t == nullptr) return;
    for (std::size_t i = 0; i < stripes; ++i) {
      std::uint64_t* e = t + i * stride_;
      while (!try_lock(e)) std::this_thread::yield();
      const std::uint64_t view = std::exchange(*view_word(e), 0);
      replace_and_unlock(e, 0, nullptr);
      release_words(&view, meminfo_mask);
    }
  }

 private:
  // fn(stripe) with the calling thread's stripe (its index: thread_stripe()) locked, unlocked
  // however fn returns; or `miss` when no stripe exists yet or the thread shares a busy one.
  template <class R, class Fn>
  PARDICT_ALWAYS_INLINE R with_stripe(std::size_t stripe, R miss, Fn&& fn) {
    std::uint64_t* t = table_.load(std::memory_order_acquire);
    if (t == nullptr) return miss;
    std::uint64_t* e = t + stripe * stride_;
    if (!try_lock(e)) return miss;
    struct unlocker {
      std::uint64_t* e;
      ~unlocker() { unlock(e); }
    } u{e};
    return fn(e);
  }

  // memcmp(a, b, n) == 0 without a call: for the small arrays a loop stores again and again the
  // call cost more than the compare (the shape and the contents were two calls to memcmp per
  // store, for a few bytes each), and the numba fast path's bitcode calls nothing outside the C
  // ABI. No early exit: the contents compared are those of the source the copy was made from, so
  // they are almost always equal and read to the end either way.
  PARDICT_ALWAYS_INLINE static bool same_bytes(const unsigned char* a, const unsigned char* b,
                                               std::size_t n) noexcept {
    std::uint64_t differ = 0;
    std::size_t i = 0;
    for (; i + word_bytes <= n; i += word_bytes) {
      std::uint64_t x, y;
      std::memcpy(&x, a + i, word_bytes);
      std::memcpy(&y, b + i, word_bytes);
      differ |= x ^ y;
    }
    for (; i < n; ++i) differ |= static_cast<std::uint64_t>(a[i] ^ b[i]);
    return differ == 0;
  }

  // A stripe's words: busy (its lock), the source's data pointer, the copy's array struct, then
  // the last view's source struct and view MemInfo (view_at_); rounded up to 64 bytes.
  static constexpr std::size_t busy_at = 0;
  static constexpr std::size_t source_at = 1;
  static constexpr std::size_t copy_at = 2;

  std::uint64_t* view_word(std::uint64_t* e) const noexcept { return e + view_at_ + array_words_; }

  // The calling thread's stripe, the table made on first use; null when that allocation fails.
  std::uint64_t* mine() {
    std::uint64_t* t = table_.load(std::memory_order_acquire);
    if (t == nullptr) {
      const std::size_t bytes = word_bytes * stripes * stride_;
      auto* fresh =
          static_cast<std::uint64_t*>(::operator new[](bytes, std::align_val_t{64}, std::nothrow));
      if (fresh == nullptr) return nullptr;
      std::memset(fresh, 0, bytes);
      if (table_.compare_exchange_strong(t, fresh, std::memory_order_acq_rel)) {
        t = fresh;
      } else {
        ::operator delete[](fresh, std::align_val_t{64});
      }
    }
    return t + thread_stripe() * stride_;
  }
  // std::atomic_ref where the standard library has it; libc++ before 19 (Apple clang's included)
  // does not, and there the compiler is clang, whose __atomic builtins do the same.
  static bool try_lock(std::uint64_t* e) noexcept {
#if defined(__cpp_lib_atomic_ref)
    return std::atomic_ref<std::uint64_t>(e[busy_at]).exchange(1, std::memory_order_acquire) == 0;
#else
    return __atomic_exchange_n(&e[busy_at], std::uint64_t{1}, __ATOMIC_ACQUIRE) == 0;
#endif
  }
  static void unlock(std::uint64_t* e) noexcept {
#if defined(__cpp_lib_atomic_ref)
    std::atomic_ref<std::uint64_t>(e[busy_at]).store(0, std::memory_order_release);
#else
    __atomic_store_n(&e[busy_at], std::uint64_t{0}, __ATOMIC_RELEASE);
#endif
  }
  // With the stripe locked: store (source data pointer, copy), or clear it when copy is null;
  // then unlock and release the copy it held, whose destructor may run (not under the stripe).
  void replace_and_unlock(std::uint64_t* e, std::uint64_t src_data, const void* copy) noexcept {
    std::uint64_t old[max_array_words];
    std::memcpy(old, e + copy_at, word_bytes * array_words_);
    e[source_at] = src_data;
    if (copy != nullptr) {
      std::memcpy(e + copy_at, copy, word_bytes * array_words_);
    } else {
      std::memset(e + copy_at, 0, word_bytes * array_words_);
    }
    unlock(e);
    release_words(old, meminfo_mask);
  }

  const std::size_t array_words_;  // words of one array struct
  const std::size_t view_at_;      // where a stripe's view part starts (source struct, MemInfo)
  const std::size_t stride_;       // words per stripe
  std::atomic<std::uint64_t*> table_{nullptr};
};

}  // namespace pardict::capi
