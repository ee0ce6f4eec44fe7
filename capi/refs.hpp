// References to numba runtime (NRT) objects inside key and value blobs, and the books that count
// them. Internal.
//
// A blob's references are the words its mask names (bit i: the word at byte offset 8 * i), each
// an NRT MemInfo pointer or null. A MemInfo starts with its std::atomic_size_t refcount
// (numba/core/runtime/nrt.cpp), the word jitted code increments with a monotonic atomic add, so
// the dictionary increments it the same way; it releases through numba's NRT_MemInfo_release
// (pardict_set_release), which may run destructors.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "blob.hpp"
#include "pardict/detail/config.hpp"  // PARDICT_ALWAYS_INLINE
#include "pardict/detail/epoch.hpp"
#include "pardict/detail/platform.hpp"  // PARDICT_NOINLINE

namespace pardict::capi {

using release_fn = void (*)(void*);
extern std::atomic<release_fn> g_release;

// The books: references held by dictionaries and iterators, counted in one cell per epoch slot
// (epoch_domain::thread_index(): unique among live threads, and passed to a new thread only after
// its owner has exited), each written by its thread alone with a plain load and store, and one
// shared cell, updated atomically, for threads without a slot. A single counter would be one
// contended line for every insert of an array value from prange, and a locked add per insert
// costs that insert's overlap with the next one's cache misses.
struct alignas(64) ref_cell {
  std::atomic<std::int64_t> n{0};
};
inline constexpr std::size_t owned_ref_cells = detail::epoch_domain::max_slots;
// The calling thread's own cell of `cells` (owned_ref_cells + 1 of them), whose index it has
// read from its thread_state: delta added without a locked instruction.
PARDICT_ALWAYS_INLINE inline void count_in_own_cell(ref_cell* cells, std::size_t index,
                                                    std::int64_t delta) noexcept {
  if (index < owned_ref_cells) [[likely]] {
    std::atomic<std::int64_t>& n = cells[index].n;
    n.store(n.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
  } else {
    cells[owned_ref_cells].n.fetch_add(delta, std::memory_order_relaxed);
  }
}
void count_refs(std::int64_t delta) noexcept;
std::int64_t live_refs() noexcept;
ref_cell* ref_cells() noexcept;  // the books' cells, for the numba fast path (capi/jit.hpp)
// A number fixed for the calling thread, handed out round robin (unowned_copies' shared stripes).
std::size_t shared_stripe_of_thread() noexcept;
extern std::atomic<std::int64_t> g_live_dicts;

inline void nrt_incref(void* meminfo) noexcept {
  __atomic_fetch_add(static_cast<std::size_t*>(meminfo), 1, __ATOMIC_RELAXED);
}

// A reference taken for a store (dict_impl's set_word_detached) with the atomic add jitted code
// does, and given back with an atomic subtract (the caller's own reference keeps it above zero).
// unowned_copies::reserved_reference is the other kind, taken from a reserve.
struct fresh_reference {
  PARDICT_ALWAYS_INLINE void take(std::uint64_t meminfo) const noexcept {
    nrt_incref(reinterpret_cast<void*>(meminfo));
  }
  PARDICT_ALWAYS_INLINE void give_back(std::uint64_t meminfo) const noexcept {
    __atomic_fetch_sub(reinterpret_cast<std::size_t*>(meminfo), 1, __ATOMIC_RELAXED);
  }
};

// What to do with each reference of a blob, and how the books change.
enum class ref_op {
  incref,            // acquire it (counted in)
  unref,             // undo an incref of a reference the caller also holds, so the count cannot
                     // reach zero and no destructor runs (counted out)
  release,           // drop a reference the dictionary owned (counted out)
  release_disowned,  // drop a reference already counted out (handed over, see disown)
  disown,            // count out a reference handed to the caller, without touching it
};

// The one loop over a blob's references. Out of line: a blob without references (the common
// case) costs its caller one mask test (see ref_action), and GCC does not inline a loop that reads
// 8-byte words into callers whose blob is 4 bytes (it would warn that the read is out of bounds).
template <ref_op Op>
PARDICT_NOINLINE void each_ref(const void* blob, std::uint32_t mask) noexcept {
  constexpr bool releases = Op == ref_op::release || Op == ref_op::release_disowned;
  [[maybe_unused]] const release_fn release =
      releases ? g_release.load(std::memory_order_relaxed) : nullptr;
  std::int64_t n = 0;
  for (; mask != 0; mask &= mask - 1) {
    void* mi;
    std::memcpy(&mi, static_cast<const char*>(blob) + word_bytes * std::countr_zero(mask),
                sizeof mi);
    if (mi == nullptr) continue;
    ++n;
    if constexpr (Op == ref_op::incref) {
      nrt_incref(mi);
    } else if constexpr (Op == ref_op::unref) {
      __atomic_fetch_sub(static_cast<std::size_t*>(mi), 1, __ATOMIC_RELEASE);
    } else if constexpr (releases) {
      release(mi);
    }
  }
  if (n == 0 || Op == ref_op::release_disowned) return;
  count_refs(Op == ref_op::incref ? n : -n);
}

// incref_words(blob, mask) and the others below: `Op` on every reference the mask names. The
// releasing ones may run destructors (which may take the GIL): never call them under an engine
// lock.
template <ref_op Op>
struct ref_action {
  void operator()(const void* blob, std::uint32_t mask) const noexcept {
    if (mask != 0) each_ref<Op>(blob, mask);
  }
};
inline constexpr ref_action<ref_op::incref> incref_words{};
inline constexpr ref_action<ref_op::unref> unref_words{};
inline constexpr ref_action<ref_op::release> release_words{};
inline constexpr ref_action<ref_op::release_disowned> release_disowned_words{};
inline constexpr ref_action<ref_op::disown> disown_words{};

}  // namespace pardict::capi
