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
// nitems, itemsize, data, shape[ndim], strides[ndim].
//
// Stripes, one per epoch slot (epoch_domain::thread_index(): unique among live threads; a slot
// passes to a new thread only after its owner has exited, through the slot's release/acquire),
// made 64 at a time on first use. A stripe is used by its thread alone, so taking it needs no
// locked instruction, only a handshake with release_all() (clear() and the destructor, from any
// thread), the asymmetric Dekker pair the epoch announcement uses: the owner stores its busy
// word, light_fence, then reads revoked_; release_all stores revoked_, heavy_fence, then reads
// every busy word. Either the owner sees revoked_ (and skips the cache this time) or release_all
// sees the busy word (and waits for the owner's release store before it clears the stripe).
// Threads without an epoch slot (more than epoch_domain::max_slots at once, or under mingw-w64's
// emulated TLS, whose threads cannot give their slots back) share `shared_stripes` more, taken
// with an atomic exchange, as release_all() takes them, one at a time; a thread that finds its
// shared stripe taken skips the cache.
//
// A store of the thread's copy takes the dictionary's reference to it from the stripe's reserve
// (reserved_reference): references taken from the copy's MemInfo `reserve_batch` at a time, so
// that a loop storing one copy under many keys does one atomic add per batch, not per key. The
// MemInfo's count is then higher than its holders by the reserve, which goes back (one atomic
// subtract) when the stripe lets the copy go; the stripe's own reference keeps that subtraction
// from reaching zero, so no destructor runs early. The books (refs.hpp) count the stored
// references, not the reserve.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <thread>
#include <utility>

#include "blob.hpp"
#include "pardict/detail/config.hpp"  // PARDICT_ALWAYS_INLINE
#include "pardict/detail/epoch.hpp"
#include "pardict_capi.h"
#include "refs.hpp"

namespace pardict::capi {

class unowned_copies {
  using epoch_domain = detail::epoch_domain;

 public:
  static constexpr std::size_t stripes = epoch_domain::max_slots;  // one per epoch slot
  static constexpr std::size_t shared_stripes = 64;  // for threads without one, after those
  static constexpr std::size_t chunk_stripes = 64;   // made together on first use
  static constexpr std::size_t chunks = (stripes + shared_stripes) / chunk_stripes;
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
    for (auto& c : chunks_) {
      if (std::uint64_t* t = c.load(std::memory_order_relaxed)) {
        ::operator delete[](t, std::align_val_t{64});
      }
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

  // References to the stripe's copy from its reserve (see the top), for set_word_detached.
  static constexpr std::uint64_t reserve_batch = 64;
  class reserved_reference {
   public:
    explicit reserved_reference(std::uint64_t* reserve) noexcept : reserve_(reserve) {}
    PARDICT_ALWAYS_INLINE void take(std::uint64_t meminfo) const noexcept {
      if (*reserve_ == 0) [[unlikely]] {
        __atomic_fetch_add(reinterpret_cast<std::size_t*>(meminfo), reserve_batch,
                           __ATOMIC_RELAXED);
        *reserve_ = reserve_batch;
      }
      --*reserve_;
    }
    PARDICT_ALWAYS_INLINE void give_back(std::uint64_t) const noexcept { ++*reserve_; }

   private:
    std::uint64_t* reserve_;
  };

  // fn(copy) with this thread's copy of `src` if it still matches, else `miss`. The stripe stays
  // taken while fn runs, and its own reference keeps the copy alive, so fn may store the copy
  // (taking a reference of its own) without the find-incref-store-decref round trip. fn may
  // throw; the stripe is let go either way.
  template <class R, class Fn>
  R with_copy(const void* src, R miss, Fn&& fn) {
    return with_copy_in(epoch_domain::instance().asymmetric(), my_stripe(), src, miss,
                        [&](const std::uint64_t* c, reserved_reference) { return fn(c); });
  }
  // with_copy for a caller that names the light fence (epoch_domain::asymmetric(), as the
  // caller read it) and the calling thread's stripe (its epoch slot index): the numba fast path
  // (capi/jit.hpp), which cannot reach the thread_locals behind them. Words: the array struct's
  // words when the caller knows them (array_words_, 1-D arrays there), so that the compares unroll;
  // 0 reads them from the object. fn(copy, a reserved_reference for storing it).
  template <std::size_t Words = 0, class R, class Fn>
  PARDICT_ALWAYS_INLINE R with_copy_in(bool asymmetric, std::size_t stripe, const void* src, R miss,
                                       Fn&& fn) {
    const std::size_t words = Words != 0 ? Words : array_words_;
    return with_stripe(asymmetric, stripe, miss, [&](std::uint64_t* e) PARDICT_INLINE_LAMBDA -> R {
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
      return fn(c, reserved_reference(e + reserve_at));
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
  // as with_copy, the stripe stays taken (its reference keeping the view alive) while fn runs.
  template <class R, class Fn>
  R with_view(const void* src, R miss, Fn&& fn) {
    return with_view_in(epoch_domain::instance().asymmetric(), my_stripe(), src, miss,
                        std::forward<Fn>(fn));
  }
  // with_view for a caller that names the light fence and its stripe, as with_copy_in.
  template <std::size_t Words = 0, class R, class Fn>
  PARDICT_ALWAYS_INLINE R with_view_in(bool asymmetric, std::size_t stripe, const void* src, R miss,
                                       Fn&& fn) {
    const std::size_t words = Words != 0 ? Words : array_words_;
    return with_stripe(asymmetric, stripe, miss, [&](std::uint64_t* e) PARDICT_INLINE_LAMBDA -> R {
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
    const bool asymmetric = epoch_domain::instance().asymmetric();
    const std::size_t stripe = my_stripe();
    std::uint64_t* e = mine(stripe);
    if (e == nullptr || !take(asymmetric, e, stripe >= stripes)) return;
    const auto word = reinterpret_cast<std::uint64_t>(view);
    incref_words(&word, meminfo_mask);
    const std::uint64_t old = *view_word(e);
    std::memcpy(e + view_at_, src, word_bytes * array_words_);
    *view_word(e) = word;
    let_go(e);
    release_words(&old, meminfo_mask);
  }

  // `copy` (a fresh copy of `src`, with its own reference) becomes this thread's copy of `src`.
  void remember(const void* src, const void* copy) noexcept {
    const bool asymmetric = epoch_domain::instance().asymmetric();
    const std::size_t stripe = my_stripe();
    std::uint64_t* e = mine(stripe);
    if (e == nullptr || !take(asymmetric, e, stripe >= stripes)) return;
    incref_words(copy, meminfo_mask);
    replace_and_let_go(e, static_cast<const std::uint64_t*>(src)[data_word], copy);
  }

  // References left in the calling thread's stripe's reserve (tests).
  std::uint64_t reserved() noexcept {
    return with_stripe(epoch_domain::instance().asymmetric(), my_stripe(), std::uint64_t{0},
                       [](std::uint64_t* e) { return e[reserve_at]; });
  }

  // Drops every remembered copy and view (dictionary cleared or destroyed). Stripes taken
  // meanwhile miss (see the top); concurrent calls take turns. A dictionary that never
  // remembered anything (no chunk made) returns at once, without the heavy fence's system call:
  // most dictionaries, and most of those made and dropped in a loop. (A copy remembered by
  // another thread while clear() runs may then stay remembered, as it may anyway when it comes
  // just after.)
  void release_all() noexcept {
    bool any = false;
    for (auto& c : chunks_) any |= c.load(std::memory_order_acquire) != nullptr;
    if (!any) return;
    std::lock_guard<std::mutex> lk(release_mutex_);
    // The slots' stripes: owners meet revoked_ (see the top), set only for this pass.
    constexpr std::size_t slot_chunks = stripes / chunk_stripes;
    bool slot_stripes = false;
    for (std::size_t c = 0; c < slot_chunks; ++c) {
      slot_stripes |= chunks_[c].load(std::memory_order_acquire) != nullptr;
    }
    if (slot_stripes) {
      revoked_.store(true, std::memory_order_relaxed);
      epoch_domain::instance().heavy_fence();
      for (std::size_t c = 0; c < slot_chunks; ++c) {
        std::uint64_t* t = chunks_[c].load(std::memory_order_acquire);
        if (t == nullptr) continue;
        for (std::size_t i = 0; i < chunk_stripes; ++i) {
          std::uint64_t* e = t + i * stride_;
          while (busy(e)) std::this_thread::yield();  // its owner lets go within one store
          drop(e);
        }
      }
      revoked_.store(false, std::memory_order_release);
    }
    // The shared stripes: taken with the exchange their users take them with, one at a time, so
    // that the others stay usable meanwhile.
    for (std::size_t c = slot_chunks; c < chunks; ++c) {
      std::uint64_t* t = chunks_[c].load(std::memory_order_acquire);
      if (t == nullptr) continue;
      for (std::size_t i = 0; i < chunk_stripes; ++i) {
        std::uint64_t* e = t + i * stride_;
        while (busy_word(e).exchange(1, std::memory_order_seq_cst) != 0) std::this_thread::yield();
        drop(e);
      }
    }
  }

 private:
  // fn(stripe) with the calling thread's stripe (its index: its epoch slot's, thread_state::index,
  // or past `stripes` a shared one) taken, let go however fn returns; or `miss` when its chunk is
  // not made yet (mine() makes it), a shared stripe is taken, or a release_all() is running.
  template <class R, class Fn>
  PARDICT_ALWAYS_INLINE R with_stripe(bool asymmetric, std::size_t stripe, R miss, Fn&& fn) {
    if (stripe >= stripes + shared_stripes) [[unlikely]]
      return miss;
    std::uint64_t* t = chunks_[stripe / chunk_stripes].load(std::memory_order_acquire);
    if (t == nullptr) [[unlikely]]
      return miss;
    std::uint64_t* e = t + (stripe % chunk_stripes) * stride_;
    if (!take(asymmetric, e, stripe >= stripes)) [[unlikely]]
      return miss;
    struct letting_go {
      std::uint64_t* e;
      ~letting_go() { let_go(e); }
    } u{e};
    return fn(e);
  }

  // memcmp(a, b, n) == 0 without a call: for the small arrays a loop stores again and again the
  // call cost more than the compare (the shape and the contents were two calls to memcmp per
  // store, for a few bytes each), and the numba fast path's bitcode calls nothing outside the C
  // ABI. No early exit: the contents compared are those of the source the copy was made from, so
  // they are almost always equal and read to the end either way.
  // Arrays of 4 to 16 bytes (two to four numbers, the seed's two float32s) take two overlapping
  // loads from each side and no loop: the general loop below, compiled for any n, cost the
  // seed's store ~20 instructions of tests and jumps for its one word.
  PARDICT_ALWAYS_INLINE static bool same_bytes(const unsigned char* a, const unsigned char* b,
                                               std::size_t n) noexcept {
    if (n - 4 <= 12) [[likely]] {  // 4 <= n <= 16 (n < 4 wraps around)
      if (n >= 8) {
        return ((load_as<std::uint64_t>(a) ^ load_as<std::uint64_t>(b)) |
                (load_as<std::uint64_t>(a + n - 8) ^ load_as<std::uint64_t>(b + n - 8))) == 0;
      }
      return ((load_as<std::uint32_t>(a) ^ load_as<std::uint32_t>(b)) |
              (load_as<std::uint32_t>(a + n - 4) ^ load_as<std::uint32_t>(b + n - 4))) == 0;
    }
    std::uint64_t differ = 0;
    std::size_t i = 0;
    for (; i + word_bytes <= n; i += word_bytes) {
      differ |= load_as<std::uint64_t>(a + i) ^ load_as<std::uint64_t>(b + i);
    }
    for (; i < n; ++i) differ |= static_cast<std::uint64_t>(a[i] ^ b[i]);
    return differ == 0;
  }

  // A stripe's words: busy (taken by its owner), the source's data pointer, the reserve of
  // references to the copy, the copy's array struct, then
  // the last view's source struct and view MemInfo (view_at_); rounded up to 64 bytes.
  static constexpr std::size_t busy_at = 0;
  static constexpr std::size_t source_at = 1;
  static constexpr std::size_t reserve_at = 2;
  static constexpr std::size_t copy_at = 3;

  std::uint64_t* view_word(std::uint64_t* e) const noexcept { return e + view_at_ + array_words_; }

  // The calling thread's stripe index: its epoch slot's, a slot taken now if it has none yet (a
  // thread's first store may come before its first map operation); a shared one without.
  static std::size_t my_stripe() noexcept {
    std::size_t slot = epoch_domain::thread_index();
    if (slot >= stripes) [[unlikely]] {
      { detail::epoch_guard take_a_slot; }
      slot = epoch_domain::thread_index();
      if (slot >= stripes) return stripes + shared_stripe_of_thread() % shared_stripes;
    }
    return slot;
  }
  // The calling thread's stripe (my_stripe()), its chunk made on first use; null when that
  // allocation fails.
  std::uint64_t* mine(std::size_t stripe) {
    std::atomic<std::uint64_t*>& chunk = chunks_[stripe / chunk_stripes];
    std::uint64_t* t = chunk.load(std::memory_order_acquire);
    if (t == nullptr) {
      const std::size_t bytes = word_bytes * chunk_stripes * stride_;
      auto* fresh =
          static_cast<std::uint64_t*>(::operator new[](bytes, std::align_val_t{64}, std::nothrow));
      if (fresh == nullptr) return nullptr;
      std::memset(fresh, 0, bytes);
      if (chunk.compare_exchange_strong(t, fresh, std::memory_order_acq_rel)) {
        t = fresh;
      } else {
        ::operator delete[](fresh, std::align_val_t{64});
      }
    }
    return t + (stripe % chunk_stripes) * stride_;
  }
  // The owner's side of the handshake with release_all (see the top): a plain store and the light
  // fence (a compiler barrier where the OS has a process-wide barrier), no locked instruction. A
  // shared stripe is taken with an exchange, a full barrier.
  PARDICT_ALWAYS_INLINE bool take(bool asymmetric, std::uint64_t* e, bool shared) noexcept {
    if (shared) [[unlikely]] {
      if (busy_word(e).exchange(1, std::memory_order_seq_cst) != 0) return false;
    } else {
      busy_word(e).store(1, std::memory_order_relaxed);
      epoch_domain::light_fence_as(asymmetric);
    }
    if (revoked_.load(std::memory_order_acquire)) [[unlikely]] {
      let_go(e);
      return false;
    }
    return true;
  }
  PARDICT_ALWAYS_INLINE static void let_go(std::uint64_t* e) noexcept {
    busy_word(e).store(0, std::memory_order_release);
  }
  static bool busy(std::uint64_t* e) noexcept {
    return busy_word(e).load(std::memory_order_acquire) != 0;
  }
  // std::atomic_ref where the standard library has it; libc++ before 19 (Apple clang's included)
  // does not, and there the compiler is clang, whose __atomic builtins do the same.
#if defined(__cpp_lib_atomic_ref)
  PARDICT_ALWAYS_INLINE static std::atomic_ref<std::uint64_t> busy_word(std::uint64_t* e) noexcept {
    return std::atomic_ref<std::uint64_t>(e[busy_at]);
  }
#else
  struct busy_ref {
    std::uint64_t* w;
    void store(std::uint64_t v, std::memory_order o) const noexcept {
      __atomic_store_n(w, v, o == std::memory_order_release ? __ATOMIC_RELEASE : __ATOMIC_RELAXED);
    }
    std::uint64_t load(std::memory_order) const noexcept {
      return __atomic_load_n(w, __ATOMIC_ACQUIRE);
    }
    std::uint64_t exchange(std::uint64_t v, std::memory_order) const noexcept {
      return __atomic_exchange_n(w, v, __ATOMIC_SEQ_CST);
    }
  };
  PARDICT_ALWAYS_INLINE static busy_ref busy_word(std::uint64_t* e) noexcept {
    return busy_ref{&e[busy_at]};
  }
#endif
  // With the stripe taken (or waited for, in release_all): drops its copy and view, lets it go.
  void drop(std::uint64_t* e) noexcept {
    const std::uint64_t view = std::exchange(*view_word(e), 0);
    replace_and_let_go(e, 0, nullptr);
    release_words(&view, meminfo_mask);
  }
  // With the stripe taken: store (source data pointer, copy), or clear it when copy is null;
  // then let it go and release the copy it held, whose destructor may run (not under the stripe).
  // The old copy's unused reserve goes back first; the stripe's own reference, released last,
  // keeps that from reaching zero.
  void replace_and_let_go(std::uint64_t* e, std::uint64_t src_data, const void* copy) noexcept {
    std::uint64_t old[max_array_words];
    std::memcpy(old, e + copy_at, word_bytes * array_words_);
    if (const std::uint64_t reserve = std::exchange(e[reserve_at], 0); reserve != 0) {
      __atomic_fetch_sub(reinterpret_cast<std::size_t*>(old[meminfo_word]), reserve,
                         __ATOMIC_RELEASE);
    }
    e[source_at] = src_data;
    if (copy != nullptr) {
      std::memcpy(e + copy_at, copy, word_bytes * array_words_);
    } else {
      std::memset(e + copy_at, 0, word_bytes * array_words_);
    }
    let_go(e);
    release_words(old, meminfo_mask);
  }

  const std::size_t array_words_;     // words of one array struct
  const std::size_t view_at_;         // where a stripe's view part starts (source struct, MemInfo)
  const std::size_t stride_;          // words per stripe
  std::atomic<bool> revoked_{false};  // a release_all() is running
  std::atomic<std::uint64_t*> chunks_[chunks] = {};
  std::mutex release_mutex_;  // release_all()s take turns
};

}  // namespace pardict::capi
