// Group metadata, the group lock, and the word-wise "racy" copies used by optimistic readers.
// See the design essay at the top of concurrent_table.hpp for how these fit together.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <thread>
#include <type_traits>
#include <utility>

#include "pardict/detail/config.hpp"
#include "pardict/detail/epoch.hpp"
#include "pardict/detail/platform.hpp"  // PARDICT_PAUSE, wait_on/wake_all, relaxed word access

namespace pardict::detail {

inline constexpr unsigned group_width = 8;

// Bits of group_meta::seq.
inline constexpr std::uint32_t locked_bit = 1;   // a writer is inside the group
inline constexpr std::uint32_t moved_bit = 4;    // the group was migrated to the next table
inline constexpr std::uint32_t version_one = 8;  // the remaining 29 bits count modifications
inline constexpr std::uint32_t flag_mask = locked_bit | moved_bit;  // sleepers: see `overflow`

// 16 bytes: four groups share a cache line, and the metadata of a table is 2 bytes per slot, small
// enough that the metadata of a 10M-entry table mostly stays in a 32 MiB L3.
struct alignas(16) group_meta {
  std::atomic<std::uint32_t> seq;
  // Low 8 bits: a one-bit-per-hash-class bloom filter of keys whose probe passed this group while
  // it was full. A lookup whose bit is clear stops here. Bits are only ever set (fetch_or), and
  // are cleared only by building a new table. Bits 16..31: how many threads sleep on `seq`
  // (see wait_unlocked). They share a word so that unlock finds the count on the line it just
  // wrote.
  std::atomic<std::uint32_t> overflow;
  // One byte per slot: 0 = empty, else an 8-bit fingerprint of the hash (never 0).
  std::atomic<std::uint64_t> tags;
};
static_assert(sizeof(group_meta) == 16);
inline constexpr std::uint32_t overflow_mask = 0xff;
inline constexpr std::uint32_t sleeper_one = std::uint32_t{1} << 16;

// ---- SWAR matching over the 8 tag bytes --------------------------------------------------------

inline constexpr std::uint64_t bytes_lsb = 0x0101010101010101ULL;
inline constexpr std::uint64_t bytes_low7 = 0x7f7f7f7f7f7f7f7fULL;

// High bit of each byte that is zero (exact: no borrow between bytes).
constexpr std::uint64_t zero_bytes(std::uint64_t x) noexcept {
  return ~(((x & bytes_low7) + bytes_low7) | x | bytes_low7);
}
// On x86-64 the byte compare is SSE2's (every x86-64 CPU has it): a compare, a mask and two moves
// between register files, against the borrow-free zero test's six operations and a 64-bit
// constant, which also took a general register in the lookup's loop.
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(PARDICT_SWAR_MATCH)
#define PARDICT_SSE2_MATCH 1
PARDICT_ALWAYS_INLINE inline std::uint64_t sse2_high_bits(__m128i eq) noexcept {
  return static_cast<std::uint64_t>(
      _mm_cvtsi128_si64(_mm_and_si128(eq, _mm_set1_epi8(static_cast<char>(0x80)))));
}
#endif
constexpr std::uint64_t match_tag(std::uint64_t tags, std::uint8_t tag) noexcept {
#if defined(PARDICT_SSE2_MATCH)
  if (!std::is_constant_evaluated()) {
    // The tag in the low 8 bytes (the high 8 are never looked at): 3 instructions, where
    // _mm_set1_epi8 fills all 16 with 4.
    const __m128i t2 = _mm_unpacklo_epi8(_mm_cvtsi32_si128(tag), _mm_cvtsi32_si128(tag));
    return sse2_high_bits(_mm_cmpeq_epi8(_mm_cvtsi64_si128(static_cast<long long>(tags)),
                                         _mm_shufflelo_epi16(t2, 0)));
  }
#endif
  return zero_bytes(tags ^ (bytes_lsb * tag));
}
constexpr std::uint64_t match_empty(std::uint64_t tags) noexcept {
#if defined(PARDICT_SSE2_MATCH)
  if (!std::is_constant_evaluated()) {
    return sse2_high_bits(
        _mm_cmpeq_epi8(_mm_cvtsi64_si128(static_cast<long long>(tags)), _mm_setzero_si128()));
  }
#endif
  return zero_bytes(tags);
}
constexpr std::uint64_t match_full(std::uint64_t tags) noexcept {
  return ~zero_bytes(tags) & (bytes_lsb << 7);
}
constexpr unsigned first_slot(std::uint64_t mask) noexcept {
  return static_cast<unsigned>(std::countr_zero(mask)) >> 3;
}
constexpr std::uint64_t with_tag(std::uint64_t tags, unsigned slot, std::uint8_t tag) noexcept {
  const unsigned shift = slot * 8;
  return (tags & ~(std::uint64_t{0xff} << shift)) | (std::uint64_t{tag} << shift);
}
// with_tag() for a slot whose byte is known to be 0 (an insert into a slot match_empty found).
constexpr std::uint64_t with_tag_in_empty(std::uint64_t tags, unsigned slot,
                                          std::uint8_t tag) noexcept {
  return tags | (std::uint64_t{tag} << (slot * 8));
}

// ---- waiting ------------------------------------------------------------------------------------

// Spin briefly, then yield, then sleep on the futex. On 2 cores with 8 threads the holder of a
// lock is often descheduled: spinning then only burns the quantum the holder needs.
class backoff {
 public:
  // Returns true when the caller should go to sleep instead of retrying again.
  bool pause() noexcept {
    if (n_ < 16) {
      for (unsigned i = 0; i < (1u << (n_ / 4)); ++i) PARDICT_PAUSE();
    } else if (n_ < 32) {
      std::this_thread::yield();
    } else {
      return true;
    }
    ++n_;
    return false;
  }

 private:
  unsigned n_ = 0;
};

// The group lock's release is a plain store, not a locked exchange. On x86 a locked instruction
// waits until every earlier store has reached the cache, and the store before an unlock is the
// element just written, often to a line still on its way from DRAM; a release store instead
// retires at once and the next operation's misses overlap with it. A plain store cannot also
// read a "waiters" flag atomically, so sleepers are counted in the group's `overflow` word and
// the unlocker reads the count after its store: a store-then-load on both sides (the sleeper
// adds itself, then reads `seq`), which is correct only with a StoreLoad fence on both sides.
// The fence is made asymmetric as in epoch.hpp: the unlocker's is a compiler barrier, the
// sleeper's a membarrier() (heavy_fence), so either the unlocker sees the count and wakes it, or
// the sleeper sees the unlock and does not sleep. Without membarrier both fences are seq_cst.

// Sleep until g is unlocked (it may be moved meanwhile: callers look again).
inline void wait_unlocked(group_meta& g) noexcept {
  backoff b;
  for (;;) {
    std::uint32_t s = g.seq.load(std::memory_order_acquire);
    if ((s & locked_bit) == 0) return;
    if (!b.pause()) continue;
    g.overflow.fetch_add(sleeper_one, std::memory_order_relaxed);
    epoch_domain::instance().heavy_fence();
    s = g.seq.load(std::memory_order_acquire);
    if (s & locked_bit) platform::wait_on(g.seq, s);
    g.overflow.fetch_sub(sleeper_one, std::memory_order_relaxed);
  }
}

enum class lock_status { acquired, moved, busy };

// After taking a group lock and before the first store to the group's tags or slots. Optimistic
// readers (concurrent_table.hpp) load seq, copy, fence(acquire), load seq again, and trust the
// copy only when both loads agree: that needs every store the holder makes to be ordered after
// the store of the lock bit. The acquire CAS does not give it: it orders later accesses after its
// load, not after its store, and arm64 (or POWER) may make a later plain store visible before the
// CAS's store, so a reader could copy half-written bytes and still read the old seq twice. This
// release fence, paired with the reader's acquire fence, makes the second load see the lock bit
// whenever the copy saw any of the holder's stores. x86 (TSO) keeps stores in order: there it
// is a compiler barrier and costs nothing.
PARDICT_ALWAYS_INLINE inline void fence_after_lock() noexcept {
  std::atomic_thread_fence(std::memory_order_release);
}

// Exclusive group lock. `patient` callers sleep until they get it; impatient ones give up after a
// short spin (used for a second lock while holding a first one, which is how deadlock is avoided).
inline lock_status lock_group(group_meta& g, bool patient) noexcept {
  backoff b;
  for (;;) {
    std::uint32_t s = g.seq.load(std::memory_order_relaxed);
    if (s & moved_bit) return lock_status::moved;
    if ((s & locked_bit) == 0) {
      if (g.seq.compare_exchange_weak(s, s | locked_bit, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        fence_after_lock();
        return lock_status::acquired;
      }
      continue;
    }
    if (!b.pause()) continue;
    if (!patient) return lock_status::busy;
    wait_unlocked(g);
  }
}

// One attempt at the lock, for the fast paths that leave a locked or migrated group to the
// general path (which waits for it): true when the caller now holds it, fence_after_lock included.
PARDICT_ALWAYS_INLINE inline bool try_lock_once(group_meta& g) noexcept {
  std::uint32_t s = g.seq.load(std::memory_order_relaxed);
  if ((s & (locked_bit | moved_bit)) != 0 ||
      !g.seq.compare_exchange_strong(s, s | locked_bit, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
    return false;
  }
  fence_after_lock();
  return true;
}

// Out of line and cold: the futex wake-up (libstdc++'s atomic notify) is large, and unlock is
// inlined into every write path.
PARDICT_NOINLINE PARDICT_COLD inline void wake_sleepers(group_meta& g) noexcept {
  platform::wake_all(g.seq);
}

// unlock_group's store and fence, with the fence supplied by the caller; returns whether the group
// has sleepers, which the caller must then wake. For code that cannot reach epoch_domain's
// instance() nor libstdc++'s futex tables (the numba fast path, capi/jit.hpp).
template <class Fence>
PARDICT_ALWAYS_INLINE inline bool release_group(group_meta& g, bool mark_moved,
                                                const Fence& fence) noexcept {
  const std::uint32_t s = g.seq.load(std::memory_order_relaxed);
  const std::uint32_t next = ((s & ~flag_mask) + version_one) | (mark_moved ? moved_bit : 0);
  g.seq.store(next, std::memory_order_release);
  fence();
  return g.overflow.load(std::memory_order_relaxed) >= sleeper_one;
}

// Release: bump the version (so optimistic readers that overlapped retry), clear the lock bit,
// optionally mark the group as migrated, and wake sleepers if there are any. Only the holder
// writes `seq` while the group is locked, so the new value is computed from a plain load.
PARDICT_ALWAYS_INLINE inline void unlock_group(group_meta& g, bool mark_moved = false) noexcept {
  if (release_group(g, mark_moved, [] { epoch_domain::light_fence(); })) [[unlikely]]
    wake_sleepers(g);
}

class group_lock {
 public:
  group_lock() = default;
  explicit group_lock(group_meta* g) noexcept : g_(g) {}
  group_lock(group_lock&& o) noexcept : g_(o.g_) { o.g_ = nullptr; }
  group_lock& operator=(group_lock&& o) noexcept {
    if (this != &o) {
      release();
      g_ = o.g_;
      o.g_ = nullptr;
    }
    return *this;
  }
  PARDICT_ALWAYS_INLINE ~group_lock() { release(); }
  PARDICT_ALWAYS_INLINE void release(bool mark_moved = false) noexcept {
    if (g_ != nullptr) unlock_group(*g_, mark_moved);
    g_ = nullptr;
  }
  group_meta* get() const noexcept { return g_; }
  explicit operator bool() const noexcept { return g_ != nullptr; }

 private:
  group_meta* g_ = nullptr;
};

// ---- racy copies --------------------------------------------------------------------------------

// Optimistic readers copy a slot while a writer may be storing into it; the copy is discarded
// unless the group's version was unchanged around it. To keep that race defined (and silent under
// ThreadSanitizer) both sides move the bytes as relaxed atomic words of the widest size the
// type's size and alignment allow. The words are accessed through may_alias types: the same bytes
// are also read and written as the element type, and without may_alias the compiler may assume
// the two never overlap (g++ -O2 did drop such a copy of a pair<int, float>).
typedef std::uint64_t PARDICT_MAY_ALIAS alias_u64;
typedef std::uint32_t PARDICT_MAY_ALIAS alias_u32;
typedef std::uint16_t PARDICT_MAY_ALIAS alias_u16;
typedef std::uint8_t PARDICT_MAY_ALIAS alias_u8;

// The may_alias typedefs are spelled out in each specialisation: used as a template argument, the
// attribute would be dropped. The word count is a template argument, and up to unrolled_words
// words are copied by a fold (straight-line code): GCC -O2 kept the loop over a slot's 8 words,
// 50 instructions per 64-byte insert where 16 loads and stores do.
inline constexpr std::size_t unrolled_words = 32;
template <std::size_t Bytes>
struct word_copy;
#define PARDICT_WORD_COPY(BYTES, ALIAS)                                                \
  template <>                                                                          \
  struct word_copy<BYTES> {                                                            \
    template <std::size_t... I>                                                        \
    PARDICT_ALWAYS_INLINE static void load_each(ALIAS* d, const ALIAS* s,              \
                                                std::index_sequence<I...>) noexcept {  \
      ((d[I] = PARDICT_RELAXED_LOAD(s + I)), ...);                                     \
    }                                                                                  \
    template <std::size_t... I>                                                        \
    PARDICT_ALWAYS_INLINE static void store_each(ALIAS* d, const ALIAS* s,             \
                                                 std::index_sequence<I...>) noexcept { \
      (PARDICT_RELAXED_STORE(d + I, s[I]), ...);                                       \
    }                                                                                  \
    template <std::size_t N>                                                           \
    PARDICT_ALWAYS_INLINE static void load(void* dst, const void* src) noexcept {      \
      ALIAS* d = static_cast<ALIAS*>(dst);                                             \
      const ALIAS* s = static_cast<const ALIAS*>(src);                                 \
      if constexpr (N <= unrolled_words) {                                             \
        load_each(d, s, std::make_index_sequence<N>{});                                \
      } else {                                                                         \
        for (std::size_t i = 0; i < N; ++i) d[i] = PARDICT_RELAXED_LOAD(s + i);        \
      }                                                                                \
    }                                                                                  \
    template <std::size_t N>                                                           \
    PARDICT_ALWAYS_INLINE static void store(void* dst, const void* src) noexcept {     \
      ALIAS* d = static_cast<ALIAS*>(dst);                                             \
      const ALIAS* s = static_cast<const ALIAS*>(src);                                 \
      if constexpr (N <= unrolled_words) {                                             \
        store_each(d, s, std::make_index_sequence<N>{});                               \
      } else {                                                                         \
        for (std::size_t i = 0; i < N; ++i) PARDICT_RELAXED_STORE(d + i, s[i]);        \
      }                                                                                \
    }                                                                                  \
  };
PARDICT_WORD_COPY(8, alias_u64)
PARDICT_WORD_COPY(4, alias_u32)
PARDICT_WORD_COPY(2, alias_u16)
PARDICT_WORD_COPY(1, alias_u8)
#undef PARDICT_WORD_COPY

template <class T>
inline constexpr std::size_t copy_word_size = sizeof(T) % 8 == 0 && alignof(T) >= 8   ? 8
                                              : sizeof(T) % 4 == 0 && alignof(T) >= 4 ? 4
                                              : sizeof(T) % 2 == 0 && alignof(T) >= 2 ? 2
                                                                                      : 1;

template <class T>
PARDICT_ALWAYS_INLINE inline void racy_load(void* dst, const T* src) noexcept {
  constexpr std::size_t w = copy_word_size<T>;
  word_copy<w>::template load<sizeof(T) / w>(dst, static_cast<const void*>(src));
}

template <class T>
PARDICT_ALWAYS_INLINE inline void racy_store(T* dst, const void* src) noexcept {
  constexpr std::size_t w = copy_word_size<T>;
  word_copy<w>::template store<sizeof(T) / w>(static_cast<void*>(dst), src);
}

// Prefetches must be volatile asm, not __builtin_prefetch alone. GCC's IPA pure-const pass sees
// that a function whose only effect is __builtin_prefetch writes no memory, marks it (and every
// function that only loads and prefetches, such as prefetch_slots) "looping pure", and then
// deletes each call whose result is unused: g++ 12 -O2 silently dropped the slot prefetches of
// upsert_home, read_home and the batch pipeline in most instantiations. A volatile asm statement
// is a side effect the optimiser must keep. Write prefetches use prefetcht0 too: prefetchw
// faults on CPUs without PRFCHW, and a line read into an otherwise uncached state arrives
// exclusive anyway.
// The numba fast path's bitcode (capi/jit.hpp) is built by clang, which keeps prefetches, and
// runs in numba's JIT, which cannot assemble inline asm: there the builtin alone.
#if defined(PARDICT_JIT_BITCODE)
PARDICT_ALWAYS_INLINE inline void prefetch_read(const void* p) noexcept {
  __builtin_prefetch(p, 0, 3);
}
#elif (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
PARDICT_ALWAYS_INLINE inline void prefetch_read(const void* p) noexcept {
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
}
#elif defined(_MSC_VER) && !defined(__clang__) && (defined(_M_X64) || defined(_M_IX86))
inline void prefetch_read(const void* p) noexcept {  // MSVC has no GNU asm; GCC's issue is not its
  _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
}
#elif defined(_MSC_VER) && !defined(__clang__) && defined(_M_ARM64)
inline void prefetch_read(const void* p) noexcept { __prefetch(p); }
#else
PARDICT_ALWAYS_INLINE inline void prefetch_read(const void* p) noexcept {
  __builtin_prefetch(p, 0, 3);
  asm volatile("" : : "r"(p));
}
#endif
PARDICT_ALWAYS_INLINE inline void prefetch_write(const void* p) noexcept { prefetch_read(p); }
// One line, for a writer or a reader.
PARDICT_ALWAYS_INLINE inline void prefetch_for(const void* p, bool write) noexcept {
  if (write) {
    prefetch_write(p);
  } else {
    prefetch_read(p);
  }
}

}  // namespace pardict::detail
