// The numba fast path: single-key operations compiled to LLVM bitcode (capi/jit.cpp, built with
// clang when one is found) that pardict.numba links into the modules of jitted functions, so that
// LLVM inlines them into the caller's loop. A C call costs a lookup its prologue, the key and
// value passed through memory, the virtual dispatch and the epilogue, and the core cannot overlap
// one lookup's cache miss with the next one's when that many instructions stand between them.
//
// What the inlined code may and may not touch:
// * The jitted module holds its own copy of whatever the bitcode defines, so the bitcode must
//   define no variable: a `static` or `inline` variable of the engine (the epoch domain, its
//   thread_locals, the fork state) would be a second, unrelated copy. Everything shared comes
//   through pardict_jit_thread, which the compiled module (_ext) fills; tests/python/test_jit.py
//   checks that the bitcode defines no global variable and calls nothing but the C ABI.
// * thread_locals cannot be reached from JIT-linked code at all (numba's linker does not resolve
//   TLS relocations). pardict_jit_thread_ctx() returns the calling thread's block,
//   pardict_jit_slot_for() its epoch slot and pardict_jit_domain() the epoch domain; they are
//   declared `const` (their results never change on a thread, like glibc's __errno_location), so
//   LLVM calls them once per loop, not once per operation. What an operation needs on every
//   call comes from those results themselves (the slot, its index, the domain), not from loads
//   out of the block: each operation's fence (a compiler barrier at least) would make LLVM load
//   the block's fields again in every iteration.
// * A function numba cached (cache=True) holds this code compiled from the pardict it was built
//   with, which may not be the one loaded now: the inlined code passes its jit_abi_id() to
//   pardict_jit_slot_for, which answers nullptr unless it is the loaded _ext's, and the code
//   then takes the C call (which is always right). Code cached by older versions calls
//   pardict_jit_thread_for (the same check on the block) or pardict_jit_thread_ctx (and compares
//   the block's abi_id itself): all three stay exported.
// * The light fence of the epoch announcement and of the group unlock (a compiler barrier where the
//   epoch scans run a process-wide barrier, else a full fence: epoch.hpp) is compiled in: numba
//   passes pardict_jit_fences() to each entry point as its last argument, a constant, so no flag
//   is read per operation, and that answer is part of the id pardict_jit_slot_for checks, so
//   code compiled for the other kind (a cached function, a fork child that lost membarrier)
//   takes the C call.
// * Only the common case is decided inline (a thread with its epoch slot outside any other
//   operation, no fork gate, the key's home group decides); everything else calls the C ABI,
//   which handles every case, so no behaviour depends on which path ran. A thread inside a
//   visitor (pardict_update's callback, say) is inside that operation's epoch guard, so it always
//   takes the C call, whose reentrancy check then applies.
// * No unwinding: the bitcode is built with -fignore-exceptions (CMakeLists.txt), and nothing on
//   this path throws.
// * Growth needs the engine: an inlined insert whose charge exhausts its table's budget is
//   reported by the engine (upsert_detached returns 2) and grown through pardict_jit_grow.
// * d.add, d.min and d.max on a scalar value (jit_combine) are stores with a combining callback;
//   numba passes the op and the field's kind as constants, so only the one operation remains.
// * Values holding a reference are served for one layout only, 1-D arrays stored as their
//   MemInfo (jit_set_array): the store takes the dictionary's reference with the same atomic add
//   as jitted code (the thread's copy of an owner-less array: from its stripe's reserve,
//   unowned_copies.hpp), counts it in the thread's cell of the books (the block's `refs`, indexed
//   by its epoch slot's index), and hands a replaced value back to the caller, which releases it
//   after every lock is let go. The thread's stripe of unowned copies is its epoch slot's too.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "dict_impl.hpp"

// The calling thread's handles into this process's engine (see above).
struct pardict_jit_thread {
  std::uint64_t abi_id;  // pardict::capi::jit_abi_id() of the _ext that filled it
  pardict::detail::epoch_domain* domain;
  pardict::detail::epoch_domain::thread_state* ts;
  const std::atomic<std::uint64_t>* spoiled_below;  // epoch_domain::fork_spoiled()'s bound
  // detail::wake_sleepers: the futex wake-up keeps tables in libstdc++ that inlined code would
  // get its own copy of.
  void (*wake)(pardict::detail::group_meta&) noexcept;
  // The cells of the books of references (count_refs, refs.hpp), of which the thread writes the
  // one of its epoch slot.
  pardict::capi::ref_cell* refs;
};

namespace pardict::capi {

#ifndef PARDICT_JIT_SOURCE_ID
#define PARDICT_JIT_SOURCE_ID "unversioned"
#endif

// Identifies the layouts the inlined code assumes: a hash of the engine's and the C ABI's
// sources (PARDICT_JIT_SOURCE_ID, set by CMake at configure time) and of the sizes of the
// types it walks.
constexpr std::uint64_t jit_abi_id() noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
  auto mix = [&h](std::uint64_t x) {
    for (int i = 0; i < 8; ++i) {
      h ^= (x >> (8 * i)) & 0xff;
      h *= 0x100000001b3ULL;
    }
  };
  for (const char* c = PARDICT_JIT_SOURCE_ID; *c != '\0'; ++c) mix(static_cast<unsigned char>(*c));
  mix(sizeof(dict_base));
  mix(sizeof(dict_impl<std::uint64_t, std::uint64_t>));
  mix(sizeof(dict_impl<std::uint32_t, words<2>>));
  mix(sizeof(detail::epoch_domain::thread_state));
  mix(offsetof(detail::epoch_domain::thread_state, depth));
  mix(sizeof(detail::group_meta));
  mix(sizeof(layout));
  mix(sizeof(unowned_copies));
  mix(sizeof(pardict_jit_thread));
  return h;
}

// What code compiled for a full light fence (pardict_jit_fences() == 0) passes as its id:
// jit_abi_id() with its last bit flipped.
constexpr std::uint64_t jit_symmetric_fences = 1;

}  // namespace pardict::capi

#if defined(__GNUC__) || defined(__clang__)
#define PARDICT_CONST_FN __attribute__((const))
#else
#define PARDICT_CONST_FN
#endif

// Declared in pardict_capi.h, defined in capi.cpp, exported to jitted code by symbol name;
// `const` as explained above. The inlined code calls pardict_jit_thread_for with its own
// jit_abi_id(), which answers nullptr for another id or after a fork that left dictionaries
// suspect: one test of a loop-invariant pointer per operation instead of the id's and the fork
// bound's loads and compares. (A jitted loop that forks from inside itself, through an objmode
// block, keeps the answer it hoisted before the fork: in the child, dictionaries whose fork found
// operations in flight are then served inline, where every group a frozen operation holds is
// locked and sends the inlined code to the C call, which refuses them.)
// Not in capi.cpp, which defines them (PARDICT_JIT_DEFINING): there `const` would tell its own
// optimiser that the bodies touch no memory, and clang then dropped the thread_local block's
// initialisation from pardict_jit_thread_for, into which it had inlined pardict_jit_thread_ctx
// (a new thread got an all-zero block, so the C call, for every operation).
#if !defined(PARDICT_JIT_DEFINING)
extern "C" PARDICT_API const pardict_jit_thread* pardict_jit_thread_ctx(void) PARDICT_CONST_FN;
extern "C" PARDICT_API const pardict_jit_thread* pardict_jit_thread_for(std::uint64_t abi_id)
    PARDICT_CONST_FN;
extern "C" PARDICT_API void* pardict_jit_slot_for(std::uint64_t abi_id) PARDICT_CONST_FN;
extern "C" PARDICT_API void* pardict_jit_domain(void) PARDICT_CONST_FN;
#endif

namespace pardict::capi {

// The C calls below get copies of the caller's key, value and output buffers, made on their own
// (cold) path, never the caller's pointers. From numba those are allocas of the jitted function:
// an alloca whose address reaches a call escapes, and LLVM then keeps it in memory on the inlined
// path too (a store per operation, a reload, and registers held across the whole loop for the
// addresses, which made the register allocator spill on the hot path), where one that is only
// loaded from and stored to becomes registers. The copies go through volatile word accesses:
// plain ones LLVM's memcpy optimisation sees through, passing the caller's buffer to the call
// again (a copy made only for the call, or a result copied out of one).
template <std::size_t N>
struct c_buffer {
  static_assert(N % 4 == 0, "keys, values and array structs are whole 4-byte words");
  using word = std::conditional_t<N % 8 == 0, std::uint64_t, std::uint32_t>;
  static constexpr std::size_t n_words = N / sizeof(word);
  word words[n_words];

  c_buffer() = default;
  explicit c_buffer(const void* from) noexcept {
    for (std::size_t i = 0; i < n_words; ++i) {
      word w;
      std::memcpy(&w, static_cast<const unsigned char*>(from) + i * sizeof(word), sizeof(word));
      static_cast<volatile word*>(words)[i] = w;
    }
  }
  void* get() noexcept { return words; }
  void copy_to(void* to) const noexcept {
    for (std::size_t i = 0; i < n_words; ++i) {
      const word w = static_cast<const volatile word*>(words)[i];
      std::memcpy(static_cast<unsigned char*>(to) + i * sizeof(word), &w, sizeof(word));
    }
  }
};

// What the inline path needs of the calling thread, all from `const` calls (loop invariants).
struct jit_context {
  const pardict_jit_thread* th;  // nullptr: take the C call
  detail::epoch_domain* domain;
  detail::epoch_domain::detached_thread me;  // the thread's slot (not nullptr) and its index
  explicit operator bool() const noexcept { return th != nullptr; }
};

// The thread's context when the inline path may run for d: the layouts match, the thread has an
// epoch slot, and d was not made before a fork that left the process's dictionaries suspect.
// Otherwise th is nullptr: take the C call.
// The three calls are made unconditionally, before any branch: LLVM hoists a `const` call out of
// a loop only from code that runs on every iteration.
// `fences` is pardict_jit_fences()'s answer when the caller was compiled (numba passes it as a
// constant, so that the light fence's choice folds away), and is part of the id the library checks.
// `all_three`: test the three results in one expression without short circuit, so that th is used
// on every path. The array store needs it: testing th only past the test of sl, LLVM sank its call
// into the branch that uses it, inside the caller's loop (the seed's store called
// pardict_jit_thread_ctx on every store, 13 instructions and a call). The other operations keep the
// short circuit, which LLVM hoists there: with all three, the inlined lookup's loop was
// unswitched differently and took 16 more instructions per lookup (114 against 98).
template <bool all_three = false>
PARDICT_ALWAYS_INLINE inline jit_context jit_usable(const dict_base* d, std::int32_t fences) {
  const bool asymmetric = fences != 0;
  const std::uint64_t id = jit_abi_id() ^ (asymmetric ? 0 : jit_symmetric_fences);
  auto* const sl = static_cast<detail::epoch_domain::slot*>(pardict_jit_slot_for(id));
  auto* const domain = static_cast<detail::epoch_domain*>(pardict_jit_domain());
  const pardict_jit_thread* const th = pardict_jit_thread_ctx();
  const bool unusable = all_three ? (sl == nullptr) | (d == nullptr) | (th == nullptr)
                                  : sl == nullptr || d == nullptr;
  if (unusable) return {nullptr, nullptr, {nullptr, 0, false}};
  return {th, domain, {sl, domain->index_of(sl), asymmetric}};
}

// pardict_get, pardict_set and pardict_contains with the home-group case inline; K and V are the
// dictionary's key and value blobs (the caller, which knows the dictionary's type, picks the
// instance).
template <class K, class V>
PARDICT_ALWAYS_INLINE inline std::int32_t jit_get(const pardict_dict* d, const void* key, void* out,
                                                  std::int32_t fences) {
  const auto* base = reinterpret_cast<const dict_base*>(d);
  if (const jit_context c = jit_usable(base, fences)) [[likely]] {
    const int r =
        static_cast<const dict_impl<K, V>*>(base)->get_detached(*c.domain, c.me, key, out);
    if (r >= 0) [[likely]]
      return r != 0 ? PARDICT_FOUND : PARDICT_ABSENT;
  }
  c_buffer<sizeof(K)> k(key);
  c_buffer<sizeof(V)> found;
  const std::int32_t st = pardict_get(d, k.get(), found.get());
  if (st == PARDICT_FOUND) found.copy_to(out);
  return st;
}

// The status of a store decided inline (a *_detached store's result r >= 0): `inserted` for a new
// key, `found` for an existing one; an insert that exhausted its table's budget starts the growth
// through the library (2: upsert_detached).
template <class K>
PARDICT_ALWAYS_INLINE inline std::int32_t jit_stored(pardict_dict* d, const void* key, int r,
                                                     std::int32_t inserted = PARDICT_INSERTED,
                                                     std::int32_t found = PARDICT_REPLACED) {
  if (r == 2) [[unlikely]] {
    c_buffer<sizeof(K)> k(key);
    pardict_jit_grow(d, k.get());
  }
  return r != 0 ? inserted : found;
}

template <class K, class V>
PARDICT_ALWAYS_INLINE inline std::int32_t jit_set(pardict_dict* d, const void* key,
                                                  const void* value, void* old_out,
                                                  std::int32_t fences) {
  auto* base = reinterpret_cast<dict_base*>(d);
  if (const jit_context c = jit_usable(base, fences)) [[likely]] {
    const int r = static_cast<dict_impl<K, V>*>(base)->set_detached(*c.domain, c.me, c.th->wake,
                                                                    key, value, old_out);
    if (r >= 0) [[likely]]
      return jit_stored<K>(d, key, r);
  }
  c_buffer<sizeof(K)> k(key);
  c_buffer<sizeof(V)> v(value);
  c_buffer<sizeof(V)> old;
  const std::int32_t st = pardict_set(d, k.get(), v.get(), old.get());
  if (st == PARDICT_REPLACED) old.copy_to(old_out);
  return st;
}

// d[k] = a for dictionaries of 1-D arrays stored as one word (pardict.numba.convert, "Arrays as
// one word"), `array` being numba's array struct. `described`: a has no MemInfo, or one that
// describes it (the caller has checked, as for pardict_set_array); pardict_set_array's work then
// (a is stored as it is, or as the thread's copy of it: unowned_copies.hpp), else
// pardict_set_view's (the thread's last view of a). The copy's or view's stripe stays locked across
// the store, as in capi.cpp. A replace decided here writes the old MemInfo to old_out, whose
// reference the caller releases; the C calls release it themselves and leave old_out as it was (the
// caller zeroes it first). A miss of the thread's copy or view takes the C call, which reports it
// (PARDICT_NEED_COPY). The thread's block is the first thing read, on every path, so that LLVM
// hoists its `const` call out of the caller's loop.
template <class K>
PARDICT_ALWAYS_INLINE inline std::int32_t jit_set_array(pardict_dict* d, const void* key,
                                                        const void* array, void* old_out,
                                                        bool described, std::int32_t fences) {
  auto* base = reinterpret_cast<dict_base*>(d);
  const jit_context c = jit_usable<true>(base, fences);
  // The layout checked before the copy or view is: their compares assume a 1-D array's struct.
  if (c && base->stores_words_detached()) [[likely]] {
    auto* impl = static_cast<dict_impl<K, std::uint64_t>*>(base);
    constexpr std::size_t mi_word = unowned_copies::meminfo_word;
    constexpr std::size_t words = unowned_copies::array_bytes(1) / word_bytes;
    const std::uint64_t mi = static_cast<const std::uint64_t*>(array)[mi_word];
    int r;
    if (!described) {
      r = base->copies.with_view_in<words>(c.me.asymmetric, c.me.index, array, -1,
                                           [&](const std::uint64_t* view) PARDICT_INLINE_LAMBDA {
                                             return impl->set_word_detached(*c.domain, c.me,
                                                                            c.th->wake, c.th->refs,
                                                                            key, *view, old_out);
                                           });
    } else if (mi != 0) {
      r = impl->set_word_detached(*c.domain, c.me, c.th->wake, c.th->refs, key, mi, old_out);
    } else {
      r = base->copies.with_copy_in<words>(
          c.me.asymmetric, c.me.index, array, -1,
          [&](const std::uint64_t* copy, unowned_copies::reserved_reference ref)
              PARDICT_INLINE_LAMBDA {
                return impl->set_word_detached(*c.domain, c.me, c.th->wake, c.th->refs, key,
                                               copy[mi_word], old_out, ref);
              });
    }
    if (r >= 0) [[likely]]
      return jit_stored<K>(d, key, r);
  }
  c_buffer<sizeof(K)> k(key);
  c_buffer<unowned_copies::array_bytes(1)> a(array);
  return described ? pardict_set_array(d, k.get(), a.get(), 1)
                   : pardict_set_view(d, k.get(), a.get());
}

// pardict_combine (d.add, d.min, d.max) for scalar values: one field at offset 0 whose kind fits
// the value; anything else (tuples, a bad op or field) takes the C call, which validates it. From
// numba, op, fields and n_fields are constants, so the checks and the kind's arithmetic fold away.
template <class K, class V>
PARDICT_ALWAYS_INLINE inline std::int32_t jit_combine(pardict_dict* d, const void* key,
                                                      const void* value, std::int32_t op,
                                                      const std::int32_t* fields,
                                                      std::int32_t n_fields, void* out,
                                                      std::int32_t fences) {
  auto* base = reinterpret_cast<dict_base*>(d);
  if (const jit_context c = jit_usable(base, fences)) [[likely]] {
    if (n_fields == 1 && fields[0] == 0 && op >= PARDICT_OP_ADD && op <= PARDICT_OP_MAX &&
        out != nullptr) {
      const std::uint32_t size = kind_size(fields[1]);
      if (size != 0 && size <= base->lay.value_size) [[likely]] {
        const int r = static_cast<dict_impl<K, V>*>(base)->combine_detached(
            *c.domain, c.me, c.th->wake, key, value, to_combine_op(op), fields[1], out);
        if (r >= 0) [[likely]]
          return jit_stored<K>(d, key, r, PARDICT_NEW_KEY, PARDICT_OLD_KEY);
      }
    }
  }
  c_buffer<sizeof(K)> k(key);
  c_buffer<sizeof(V)> v(value);
  c_buffer<sizeof(V)> result;
  const std::int32_t st = pardict_combine(d, k.get(), v.get(), op, fields, n_fields,
                                          out != nullptr ? result.get() : nullptr);
  if (st >= 0 && out != nullptr) result.copy_to(out);
  return st;
}

template <class K, class V>
PARDICT_ALWAYS_INLINE inline std::int32_t jit_contains(const pardict_dict* d, const void* key,
                                                       std::int32_t fences) {
  const auto* base = reinterpret_cast<const dict_base*>(d);
  if (const jit_context c = jit_usable(base, fences)) [[likely]] {
    const int r =
        static_cast<const dict_impl<K, V>*>(base)->contains_detached(*c.domain, c.me, key);
    if (r >= 0) [[likely]]
      return r != 0 ? PARDICT_FOUND : PARDICT_ABSENT;
  }
  c_buffer<sizeof(K)> k(key);
  return pardict_contains(d, k.get());
}

}  // namespace pardict::capi
