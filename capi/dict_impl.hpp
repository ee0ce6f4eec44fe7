// The engine behind the C ABI: one concurrent_map instantiation per (key class, value class),
// reached through a virtual interface, so the ABI is one set of functions whatever the types.
// Internal; see pardict_capi.h for the contract.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <thread>
#include <type_traits>
#include <vector>

#include "blob.hpp"
#include "pardict/concurrent_map.hpp"

namespace pardict::capi {

// ---- references to numba runtime objects --------------------------------------------------------

using release_fn = void (*)(void*);
extern std::atomic<release_fn> g_release;

// References held by dictionaries and iterators, counted in per-thread stripes (a single counter
// would be one contended line for every insert of an array value from prange).
void count_refs(std::int64_t delta) noexcept;
std::int64_t live_refs() noexcept;
extern std::atomic<std::int64_t> g_live_dicts;

// NRT MemInfo starts with its std::atomic_size_t refcount (numba/core/runtime/nrt.cpp), the same
// word jitted code increments with a monotonic atomic add.
// Each of these is a mask test inline and a loop out of line: a blob without references (the
// common case) costs one test, and GCC does not inline a loop that reads 8-byte words into
// callers whose blob is 4 bytes (it would warn that the read is out of bounds).
[[gnu::noinline]] inline void incref_words_loop(const void* blob, std::uint32_t mask) noexcept {
  int n = 0;
  for (; mask != 0; mask &= mask - 1) {
    void* mi;
    std::memcpy(&mi, static_cast<const char*>(blob) + 8 * __builtin_ctz(mask), sizeof mi);
    if (mi == nullptr) continue;
    __atomic_fetch_add(static_cast<std::size_t*>(mi), 1, __ATOMIC_RELAXED);
    ++n;
  }
  if (n) count_refs(n);
}
inline void incref_words(const void* blob, std::uint32_t mask) noexcept {
  if (mask != 0) incref_words_loop(blob, mask);
}

// Undo an incref of a reference the caller also holds: cannot reach zero, so no destructor.
[[gnu::noinline]] inline void unref_words_loop(const void* blob, std::uint32_t mask) noexcept {
  int n = 0;
  for (; mask != 0; mask &= mask - 1) {
    void* mi;
    std::memcpy(&mi, static_cast<const char*>(blob) + 8 * __builtin_ctz(mask), sizeof mi);
    if (mi == nullptr) continue;
    __atomic_fetch_sub(static_cast<std::size_t*>(mi), 1, __ATOMIC_RELEASE);
    ++n;
  }
  if (n) count_refs(-n);
}
inline void unref_words(const void* blob, std::uint32_t mask) noexcept {
  if (mask != 0) unref_words_loop(blob, mask);
}

// Drop references the dictionary owned (counted: they leave its books here) or had already
// counted out (handed to a caller, see disown_words). May run destructors (which may take the
// GIL): never call under an engine lock.
[[gnu::noinline]] inline void release_words_loop(const void* blob, std::uint32_t mask,
                                                 bool counted) noexcept {
  int n = 0;
  release_fn rel = g_release.load(std::memory_order_relaxed);
  for (; mask != 0; mask &= mask - 1) {
    void* mi;
    std::memcpy(&mi, static_cast<const char*>(blob) + 8 * __builtin_ctz(mask), sizeof mi);
    if (mi == nullptr) continue;
    rel(mi);
    ++n;
  }
  if (n && counted) count_refs(-n);
}
inline void release_words(const void* blob, std::uint32_t mask) noexcept {
  if (mask != 0) release_words_loop(blob, mask, true);
}
inline void release_disowned_words(const void* blob, std::uint32_t mask) noexcept {
  if (mask != 0) release_words_loop(blob, mask, false);
}

// Count handed-over references (moved to the caller) out of the books without touching them.
[[gnu::noinline]] inline void disown_words_loop(const void* blob, std::uint32_t mask) noexcept {
  int n = 0;
  for (; mask != 0; mask &= mask - 1) {
    void* mi;
    std::memcpy(&mi, static_cast<const char*>(blob) + 8 * __builtin_ctz(mask), sizeof mi);
    if (mi != nullptr) ++n;
  }
  if (n) count_refs(-n);
}
inline void disown_words(const void* blob, std::uint32_t mask) noexcept {
  if (mask != 0) disown_words_loop(blob, mask);
}

// Which of 64 stripes the calling thread uses (assigned at its first call, round robin).
std::size_t thread_stripe() noexcept;

// ---- copies of arrays without an owner ----------------------------------------------------------

// parfor passes the arrays a prange body uses as views without a MemInfo: a dictionary cannot keep
// such memory alive, so jitted code stores a copy.
// A loop that stores one such array under many keys (the seed program, `d[float(i)] = v` in
// prange) would allocate a copy per key: a malloc, a free and a MemInfo each. Instead each thread
// remembers, per dictionary, its last copy: storing the same source again, with the same shape
// and with contents equal to that copy's, shares the copy, as a serial typed.Dict loop shares `v`
// itself. A copy changed since (through d[k]) no longer matches, so a new one is made.
//
// The copies are numba array structs of one layout: meminfo, parent, nitems, itemsize, data,
// shape[ndim], strides[ndim]. Each stripe is owned by whoever sets its busy word; threads that
// share a stripe (more than 64 of them) or meet a clear() just skip the cache.
class unowned_copies {
 public:
  static constexpr std::size_t stripes = 64;
  static constexpr std::size_t header_words = 5;  // the words before shape[]
  static constexpr std::size_t data_word = 4;

  explicit unowned_copies(std::size_t array_words) noexcept
      : array_words_(array_words), stride_((2 + array_words + 7) & ~std::size_t{7}) {}
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
      __atomic_fetch_add(reinterpret_cast<std::size_t*>(c[0]), 1, __ATOMIC_RELAXED);
      std::memcpy(out, c, 8 * array_words_);
      return true;
    });
  }

  // fn(copy) with this thread's copy of `src` if it still matches, else `miss`. The stripe stays
  // locked while fn runs, and its own reference keeps the copy alive, so fn may store the copy
  // (taking a reference of its own) without the find-incref-store-decref round trip. fn may
  // throw; the stripe is unlocked either way.
  template <class R, class Fn>
  R with_copy(const void* src, R miss, Fn&& fn) {
    std::uint64_t* e = mine(false);
    if (e == nullptr || !try_lock(e)) return miss;
    struct unlocker {
      std::uint64_t* e;
      ~unlocker() { unlock(e); }
    } u{e};
    const auto* a = static_cast<const std::uint64_t*>(src);
    const std::uint64_t* c = e + 2;
    // e[1] == 0: nothing remembered (a zero-size source with a null data pointer never matches).
    if (e[1] == 0 || e[1] != a[data_word] || a[2] != c[2] || a[3] != c[3] ||
        !std::equal(a + header_words, a + array_words_, c + header_words)) {
      return miss;
    }
    const auto n = static_cast<std::size_t>(a[2]) * static_cast<std::size_t>(a[3]);
    if (std::memcmp(reinterpret_cast<const void*>(c[data_word]),
                    reinterpret_cast<const void*>(a[data_word]), n) != 0) {
      return miss;
    }
    return fn(c);
  }

  // `copy` (a fresh copy of `src`, with its own reference) becomes this thread's copy of `src`.
  void remember(const void* src, const void* copy) noexcept {
    std::uint64_t* e = mine(true);
    if (e == nullptr || !try_lock(e)) return;
    incref_words(copy, 1);
    replace_and_unlock(e, static_cast<const std::uint64_t*>(src)[data_word], copy);
  }

  // Drops every remembered copy (dictionary cleared or destroyed).
  void release_all() noexcept {
    std::uint64_t* t = table_.load(std::memory_order_acquire);
    if (t == nullptr) return;
    for (std::size_t i = 0; i < stripes; ++i) {
      std::uint64_t* e = t + i * stride_;
      while (!try_lock(e)) std::this_thread::yield();
      replace_and_unlock(e, 0, nullptr);
    }
  }

  static constexpr std::size_t max_array_words = header_words + 2 * 32;  // numba's ndim <= 32

 private:
  std::uint64_t* mine(bool create) {
    std::uint64_t* t = table_.load(std::memory_order_acquire);
    if (t == nullptr) {
      if (!create) return nullptr;
      const std::size_t bytes = 8 * stripes * stride_;
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
  static bool try_lock(std::uint64_t* e) noexcept {
    return std::atomic_ref<std::uint64_t>(e[0]).exchange(1, std::memory_order_acquire) == 0;
  }
  static void unlock(std::uint64_t* e) noexcept {
    std::atomic_ref<std::uint64_t>(e[0]).store(0, std::memory_order_release);
  }
  // With the stripe locked: store (source data pointer, copy), or clear it when copy is null;
  // then unlock and release the copy it held, whose destructor may run (not under the stripe).
  void replace_and_unlock(std::uint64_t* e, std::uint64_t src_data, const void* copy) noexcept {
    std::uint64_t old[max_array_words];
    std::memcpy(old, e + 2, 8 * array_words_);
    e[1] = src_data;
    if (copy != nullptr) {
      std::memcpy(e + 2, copy, 8 * array_words_);
    } else {
      std::memset(e + 2, 0, 8 * array_words_);
    }
    unlock(e);
    release_words(old, 1);
  }

  const std::size_t array_words_;  // words of one array struct
  const std::size_t stride_;       // words per stripe: busy, source data pointer, the copy; 64 B
  std::atomic<std::uint64_t*> table_{nullptr};
};

// ---- iterator registry: same-thread mutation during iteration -----------------------------------

struct iter_state;

inline const void* this_thread_token() noexcept {
  static thread_local char token;
  return &token;
}

// ---- the interface
// -------------------------------------------------------------------------------

struct layout {
  std::uint32_t key_size, value_size;    // bytes of the caller's representation
  std::uint32_t key_class, value_class;  // bytes of the stored blobs
  std::uint32_t key_refs, key_strs, value_refs;
};

// ---- field-wise combination (pardict_combine) ---------------------------------------------------

// nan_yields: a stored NaN gives way to x under min/max. Only for partial aggregates that are
// combined into the dictionary later (bulk pre-aggregation): there a NaN that came first must not
// hide the rows after it, since the stored value it will meet may not be NaN.
template <class T>
void combine_one(unsigned char* stored, const unsigned char* x, int op,
                 bool nan_yields = false) noexcept {
  T a, b;
  std::memcpy(&a, stored, sizeof(T));
  std::memcpy(&b, x, sizeof(T));
  T r = a;
  if constexpr (std::is_floating_point_v<T>) {
    if (nan_yields && op != 0 && a != a) {
      std::memcpy(stored, &b, sizeof(T));
      return;
    }
  }
  if (op == 0) {
    if constexpr (std::is_integral_v<T>) {
      using U = std::make_unsigned_t<T>;  // wrap around without signed-overflow UB
      r = static_cast<T>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
    } else {
      r = a + b;
    }
  } else if (op == 1) {
    if (b < a) r = b;
  } else if (a < b) {
    r = b;
  }
  std::memcpy(stored, &r, sizeof(T));
}

inline std::uint32_t kind_size(std::int32_t kind) noexcept {
  static constexpr std::uint32_t sizes[] = {0, 1, 2, 4, 8, 1, 2, 4, 8, 4, 8};
  return kind >= 1 && kind <= 10 ? sizes[kind] : 0;
}

inline void combine_fields(void* stored, const void* x, int op, const std::int32_t* fields, int n,
                           bool nan_yields = false) noexcept {
  auto* s = static_cast<unsigned char*>(stored);
  const auto* v = static_cast<const unsigned char*>(x);
  for (int i = 0; i < n; ++i) {
    const std::int32_t off = fields[2 * i];
    switch (fields[2 * i + 1]) {
      case 1:
        combine_one<std::int8_t>(s + off, v + off, op);
        break;
      case 2:
        combine_one<std::int16_t>(s + off, v + off, op);
        break;
      case 3:
        combine_one<std::int32_t>(s + off, v + off, op);
        break;
      case 4:
        combine_one<std::int64_t>(s + off, v + off, op);
        break;
      case 5:
        combine_one<std::uint8_t>(s + off, v + off, op);
        break;
      case 6:
        combine_one<std::uint16_t>(s + off, v + off, op);
        break;
      case 7:
        combine_one<std::uint32_t>(s + off, v + off, op);
        break;
      case 8:
        combine_one<std::uint64_t>(s + off, v + off, op);
        break;
      case 9:
        combine_one<float>(s + off, v + off, op, nan_yields);
        break;
      case 10:
        combine_one<double>(s + off, v + off, op, nan_yields);
        break;
      default:
        break;
    }
  }
}

// Thrown (inside C++ only) to abandon an update whose callback failed: the engine's locks are
// RAII, so the element is left as it was.
struct callback_failed {};

class dict_base {
 public:
  explicit dict_base(const layout& l) : lay(l), copies(l.value_size / 8) {
    g_live_dicts.fetch_add(1);
  }
  virtual ~dict_base() { g_live_dicts.fetch_sub(1); }

  virtual std::int64_t size() const = 0;
  virtual int set(const void* k, const void* v, void* old_out) = 0;
  virtual int get(const void* k, void* out) const = 0;
  virtual int contains(const void* k) const = 0;
  virtual int pop(const void* k, void* out) = 0;
  virtual int popitem(void* k_out, void* v_out) = 0;
  virtual int setdefault(const void* k, const void* dflt, void* out) = 0;
  virtual int insert(const void* k, const void* v) = 0;
  virtual int combine_present(const void* k, const void* v, int op, const std::int32_t* fields,
                              int n, void* out) = 0;
  // See pardict_visit; throws callback_failed when cb returns nonzero.
  virtual int visit(const void* k, std::int32_t (*cb)(void*, void*), void* ctx) = 0;
  // See pardict_update; throws callback_failed when cb returns nonzero.
  virtual int update(const void* k, const void* dflt, std::int32_t (*cb)(void*, void*), void* ctx,
                     void* out) = 0;
  // Inserts v or combines it into the stored value (fields already validated); see
  // pardict_combine.
  virtual int combine(const void* k, const void* v, int op, const std::int32_t* fields, int n,
                      void* out) = 0;
  // Bulk forms over n contiguous key blobs (and value blobs) of the class sizes; only for layouts
  // without references or string keys (the caller checks). found_out gets 0/1 per key; values of
  // absent keys are left untouched. op < 0 assigns, else as combine. Return found / inserted.
  virtual std::size_t get_many(const void* keys, std::size_t n, void* values_out,
                               std::uint8_t* found_out) const = 0;
  virtual std::size_t combine_many(const void* keys, const void* values, std::size_t n, int op,
                                   const std::int32_t* fields, int n_fields) = 0;
  virtual void clear() = 0;
  virtual void reserve(std::int64_t n) = 0;
  virtual std::unique_ptr<dict_base> clone() const = 0;
  // Appends every element (key blob then value blob, each of its class size) with references
  // acquired; returns the count.
  virtual std::size_t snapshot(std::vector<unsigned char>& out) const = 0;
  // Copies elements (key blob, value blob, each of its class size) into keys and values in the
  // table's order, at most `capacity`; returns how many the walk met (more than capacity when the
  // table grew meanwhile). Only for layouts without references or string keys (the caller checks).
  virtual std::size_t export_many(void* keys, void* values, std::size_t capacity) const = 0;
  // Snapshot entry layout: key at 0, value at value_offset(), entries stride() bytes apart, all
  // 8-byte aligned so jitted code can load them directly.
  std::size_t value_offset() const noexcept { return round8(lay.key_class); }
  std::size_t stride() const noexcept { return round8(value_offset() + lay.value_class); }
  static constexpr std::size_t round8(std::size_t n) noexcept { return (n + 7) & ~std::size_t{7}; }

  const layout lay;
  unowned_copies copies;  // used only by dictionaries whose value is one array

  // Iterators created on some thread and still alive. Mutators look at the count only.
  std::atomic<int> n_iters{0};
  std::mutex iters_mutex;
  std::vector<iter_state*> iters;

  // set(), releasing a replaced value itself instead of handing it to the caller (called outside
  // every engine lock: the release may run destructors).
  int set_releasing(const void* k, const void* v) {
    alignas(8) unsigned char old[max_value_bytes];
    const int r = set(k, v, old);
    if (r == 1) release_disowned_words(old, lay.value_refs);
    return r;
  }
  static constexpr std::size_t max_value_bytes = 256;  // the largest value class

  void note_key_change() {
    if (n_iters.load(std::memory_order_relaxed) != 0) mark_iters();
  }
  void mark_iters();
};

struct iter_state {
  dict_base* dict;  // kept alive by the reference to its MemInfo below; nullptr once drained
  void* dict_meminfo = nullptr;
  const void* owner;
  std::atomic<bool> mutated{false};
  std::vector<unsigned char> buf;
  std::size_t count = 0, pos = 0;
};

std::unique_ptr<dict_base> make_dict(const layout& l, std::int64_t n_keys);

// One per key class, each in its own translation unit (they compile in parallel).
std::unique_ptr<dict_base> make_dict_k4(const layout& l, std::int64_t n_keys);
std::unique_ptr<dict_base> make_dict_k8(const layout& l, std::int64_t n_keys);
std::unique_ptr<dict_base> make_dict_k16(const layout& l, std::int64_t n_keys);
std::unique_ptr<dict_base> make_dict_k32(const layout& l, std::int64_t n_keys);
std::unique_ptr<dict_base> make_dict_k64(const layout& l, std::int64_t n_keys);
std::unique_ptr<dict_base> make_dict_k128(const layout& l, std::int64_t n_keys);

template <class K>
std::unique_ptr<dict_base> make_dict_for_key(const layout& l, std::int64_t n_keys);

// ---- the template ------------------------------------------------------------------------------

template <class T>
struct key_traits;
template <>
struct key_traits<std::uint32_t> {
  using hasher = pardict::hash<std::uint32_t>;
  using equal = std::equal_to<std::uint32_t>;
  static hasher make_hash(const layout&) { return {}; }
  static equal make_equal(const layout&) { return {}; }
};
template <>
struct key_traits<std::uint64_t> {
  using hasher = pardict::hash<std::uint64_t>;
  using equal = std::equal_to<std::uint64_t>;
  static hasher make_hash(const layout&) { return {}; }
  static equal make_equal(const layout&) { return {}; }
};
template <std::size_t W>
struct key_traits<words<W>> {
  using hasher = blob_hash;
  using equal = blob_equal;
  static hasher make_hash(const layout& l) { return {key_layout::make(l.key_strs, W)}; }
  static equal make_equal(const layout& l) { return {key_layout::make(l.key_strs, W)}; }
};

// Stored when pardict_update inserts: converting it to V runs the callback on a copy of the
// default, under the new element's lock (the engine constructs elements there).
struct fresh_value_base {
  const void* dflt;
  std::int32_t (*cb)(void*, void*);
  void* ctx;
};

template <class K, class V>
class dict_impl final : public dict_base {
  struct fresh_value : fresh_value_base {
    fresh_value(const void* d, std::int32_t (*c)(void*, void*), void* x, V* r)
        : fresh_value_base{d, c, x}, result(r) {}
    V* result;
    operator V() const {  // NOLINT: implicit on purpose, used by the engine's construction
      V v = load<V>(dflt);
      if (cb(ctx, &v) != 0) throw callback_failed{};
      *result = v;
      return v;
    }
  };

  using traits = key_traits<K>;
  using map_type = pardict::concurrent_map<K, V, typename traits::hasher, typename traits::equal>;
  using value_type = typename map_type::value_type;

 public:
  static_assert(std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>);

  dict_impl(const layout& l, std::int64_t n_keys)
      : dict_base(l),
        map_(static_cast<std::size_t>(n_keys), traits::make_hash(l), traits::make_equal(l)) {
    // Values or keys holding references must be acquired while the element cannot change.
    if (l.key_refs | l.value_refs | l.key_strs) map_.set_locked_reads(true);
  }

  ~dict_impl() override {
    if (lay.key_refs | lay.value_refs) {
      map_.visit_all([&](value_type& x) {
        release_words(&x.first, lay.key_refs);
        release_words(&x.second, lay.value_refs);
      });
    }
  }

  std::int64_t size() const override { return static_cast<std::int64_t>(map_.size()); }

  int set(const void* kp, const void* vp, void* old_out) override {
    K k = load<K>(kp);
    V v = load<V>(vp);
    incref_words(&k, lay.key_refs);
    incref_words(&v, lay.value_refs);
    const bool inserted = map_.try_emplace_or_visit(k, v, [&](value_type& x) {
      std::memcpy(old_out, &x.second, sizeof(V));
      x.second = v;
    });
    if (inserted) {
      note_key_change();
      return 0;
    }
    unref_words(&k, lay.key_refs);
    disown_words(old_out, lay.value_refs);  // the old value's reference now belongs to the caller
    return 1;
  }

  int get(const void* kp, void* out) const override {
    const K k = load<K>(kp);
    const std::uint32_t refs = lay.value_refs;
    const bool found = map_.cvisit(k, [&](const value_type& x) {
      std::memcpy(out, &x.second, sizeof(V));
      if (refs) incref_words(&x.second, refs);
    }) != 0;
    if (found && refs) disown_words(out, refs);  // counted in the caller's books, not ours
    return found ? 1 : 0;
  }

  int contains(const void* kp) const override { return map_.contains(load<K>(kp)) ? 1 : 0; }

  int pop(const void* kp, void* out) override {
    const K k = load<K>(kp);
    K stored_key;
    const bool found = map_.erase_if(k, [&](const value_type& x) {
      std::memcpy(out, &x.second, sizeof(V));
      stored_key = x.first;
      return true;
    }) != 0;
    if (!found) return 0;
    note_key_change();
    disown_words(out, lay.value_refs);
    release_words(&stored_key, lay.key_refs);  // outside the engine's locks
    return 1;
  }

  int popitem(void* k_out, void* v_out) override {
    const bool found = map_.extract_any([&](value_type& x) {
      std::memcpy(k_out, &x.first, sizeof(K));
      std::memcpy(v_out, &x.second, sizeof(V));
    });
    if (!found) return 0;
    note_key_change();
    disown_words(k_out, lay.key_refs);
    disown_words(v_out, lay.value_refs);
    return 1;
  }

  int setdefault(const void* kp, const void* dp, void* out) override {
    K k = load<K>(kp);
    V d = load<V>(dp);
    incref_words(&k, lay.key_refs);
    incref_words(&d, lay.value_refs);
    const std::uint32_t refs = lay.value_refs;
    const bool inserted = map_.try_emplace_or_cvisit(k, d, [&](const value_type& x) {
      std::memcpy(out, &x.second, sizeof(V));
      if (refs) incref_words(&x.second, refs);
    });
    if (inserted) {
      note_key_change();
      std::memcpy(out, &d, sizeof(V));
      incref_words(out, refs);  // the caller's reference, besides the stored one
    } else {
      unref_words(&k, lay.key_refs);
      unref_words(&d, refs);
    }
    disown_words(out, refs);
    return inserted ? 1 : 0;
  }

  int combine(const void* kp, const void* vp, int op, const std::int32_t* fields, int n,
              void* out) override {
    K k = load<K>(kp);
    const V v = load<V>(vp);
    incref_words(&k, lay.key_refs);
    const bool inserted = map_.try_emplace_or_visit(k, v, [&](value_type& x) {
      combine_fields(&x.second, &v, op, fields, n);
      if (out != nullptr) std::memcpy(out, &x.second, sizeof(V));
    });
    if (inserted) {
      note_key_change();
      if (out != nullptr) std::memcpy(out, &v, sizeof(V));
    } else {
      unref_words(&k, lay.key_refs);
    }
    return inserted ? 1 : 0;
  }

  std::size_t get_many(const void* keys, std::size_t n, void* values_out,
                       std::uint8_t* found_out) const override {
    auto* out = static_cast<unsigned char*>(values_out);
    std::span<const K> ks(static_cast<const K*>(keys), n);
    return map_.cvisit_many(ks, [&](std::size_t i, const value_type& x) {
      if (out != nullptr) std::memcpy(out + i * sizeof(V), &x.second, sizeof(V));
      if (found_out != nullptr) found_out[i] = 1;
    });
  }

  std::size_t combine_many(const void* keys, const void* values, std::size_t n, int op,
                           const std::int32_t* fields, int n_fields) override {
    if constexpr (sizeof(K) + sizeof(V) <= hot_cache::max_entry_bytes) {
      if (op >= 0 && n >= hot_cache::min_rows)
        return combine_many_hot(static_cast<const K*>(keys),
                                static_cast<const unsigned char*>(values), n, op, fields, n_fields);
    }
    return apply_many(static_cast<const K*>(keys), static_cast<const unsigned char*>(values), n, op,
                      fields, n_fields);
  }

  // Skewed keys (a few keys carry most rows) make the threads of a bulk add fight over the hot
  // elements' locks, and every row pays a shared-table operation. So add/min/max first pass
  // through a small private cache (direct-mapped, L1/L2-sized) that keeps the frequent keys and
  // sums their rows locally; a key holds its slot while it is hit more often than the slot is
  // contested (a counter in the Misra-Gries style). Rows that do not stay, and everything cached at
  // the end, go to the table in batches through the prefetching path. When the first rows show
  // the cache does not pay (near-uniform keys), the rest of the call skips it.
  struct hot_cache {
    static constexpr std::size_t max_entry_bytes = 32;
    static constexpr std::size_t min_rows = 16384;
    static constexpr std::size_t slots = 16384;  // 384 KiB at 24-byte slots: fits L2
    static constexpr std::size_t batch = 2048;
    static constexpr std::size_t probe_rows = 32768;  // rows judged before deciding
  };
  struct hot_slot {
    K key;
    V value;
    std::int32_t score;  // 0: empty
  };

  static std::uint64_t local_hash(const K& k) noexcept {
    std::uint64_t w[(sizeof(K) + 7) / 8] = {};
    std::memcpy(w, &k, sizeof(K));
    std::uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (const std::uint64_t x : w) h = pardict::detail::mix64(h ^ x);
    return h;
  }

  std::size_t combine_many_hot(const K* ks, const unsigned char* vs, std::size_t n, int op,
                               const std::int32_t* fields, int n_fields) {
    std::vector<hot_slot> cache(hot_cache::slots);  // value-initialised: every score 0
    std::vector<K> pass_k;
    std::vector<V> pass_v;
    pass_k.reserve(hot_cache::batch);
    pass_v.reserve(hot_cache::batch);
    std::size_t inserted = 0, hits = 0;
    auto flush = [&] {
      inserted += apply_many(pass_k.data(), reinterpret_cast<const unsigned char*>(pass_v.data()),
                             pass_k.size(), op, fields, n_fields);
      pass_k.clear();
      pass_v.clear();
    };
    auto pass = [&](const K& k, const V& v) {
      pass_k.push_back(k);
      pass_v.push_back(v);
      if (pass_k.size() == hot_cache::batch) flush();
    };
    std::size_t i = 0;
    for (; i < n; ++i) {
      if (i == hot_cache::probe_rows && hits * 8 < hot_cache::probe_rows) break;  // < 12.5%
      const K k = ks[i];
      const V v = load<V>(vs + i * sizeof(V));
      hot_slot& c = cache[local_hash(k) & (hot_cache::slots - 1)];
      if (c.score != 0 && std::memcmp(&c.key, &k, sizeof(K)) == 0) {
        combine_fields(&c.value, &v, op, fields, n_fields, /*nan_yields=*/true);
        if (c.score < (1 << 30)) ++c.score;
        ++hits;
      } else if (c.score == 0) {  // an empty slot
        c.key = k;
        c.value = v;
        c.score = 1;
      } else if (--c.score == 0) {  // contested more than hit: the occupant goes to the table
        pass(c.key, c.value);
        c.key = k;
        c.value = v;
        c.score = 1;
      } else {
        pass(k, v);
      }
    }
    for (const auto& c : cache)
      if (c.score != 0) pass(c.key, c.value);
    flush();
    if (i < n) inserted += apply_many(ks + i, vs + i * sizeof(V), n - i, op, fields, n_fields);
    return inserted;
  }

  std::size_t apply_many(const K* keys, const unsigned char* vs, std::size_t n, int op,
                         const std::int32_t* fields, int n_fields) {
    std::span<const K> ks(keys, n);
    const std::size_t inserted = map_.emplace_or_visit_many(
        ks,
        [&](std::size_t i, void* where) {
          ::new (where) value_type(ks[i], load<V>(vs + i * sizeof(V)));
        },
        [&](std::size_t i, value_type& x) {
          if (op < 0) {
            std::memcpy(&x.second, vs + i * sizeof(V), sizeof(V));
          } else {
            combine_fields(&x.second, vs + i * sizeof(V), op, fields, n_fields);
          }
        });
    if (inserted != 0) note_key_change();
    return inserted;
  }

  int update(const void* kp, const void* dp, std::int32_t (*cb)(void*, void*), void* ctx,
             void* out) override {
    K k = load<K>(kp);
    incref_words(&k, lay.key_refs);
    V result;
    bool inserted = false;
    try {
      inserted =
          map_.try_emplace_or_visit(k, fresh_value{dp, cb, ctx, &result}, [&](value_type& x) {
            V v = x.second;
            if (cb(ctx, &v) != 0) throw callback_failed{};
            x.second = v;
            result = v;
          });
    } catch (...) {
      unref_words(&k, lay.key_refs);
      throw;
    }
    if (inserted) {
      note_key_change();
    } else {
      unref_words(&k, lay.key_refs);
    }
    if (out != nullptr) std::memcpy(out, &result, sizeof(V));
    return inserted ? 1 : 0;
  }

  int visit(const void* kp, std::int32_t (*cb)(void*, void*), void* ctx) override {
    const K k = load<K>(kp);
    // The mutable visit: always under the element's lock (a const visit may read optimistically).
    return map_.visit(k,
                      [&](value_type& x) {
                        V v = x.second;  // cb sees a copy: the value's own bytes cannot change
                        if (cb(ctx, &v) != 0) throw callback_failed{};
                      }) != 0
               ? 1
               : 0;
  }

  int combine_present(const void* kp, const void* vp, int op, const std::int32_t* fields, int n,
                      void* out) override {
    const K k = load<K>(kp);
    const V v = load<V>(vp);
    return map_.visit(k,
                      [&](value_type& x) {
                        combine_fields(&x.second, &v, op, fields, n);
                        if (out != nullptr) std::memcpy(out, &x.second, sizeof(V));
                      }) != 0
               ? 1
               : 0;
  }

  int insert(const void* kp, const void* vp) override {
    K k = load<K>(kp);
    V v = load<V>(vp);
    incref_words(&k, lay.key_refs);
    incref_words(&v, lay.value_refs);
    if (map_.try_emplace(k, v)) {
      note_key_change();
      return 1;
    }
    unref_words(&k, lay.key_refs);
    unref_words(&v, lay.value_refs);
    return 0;
  }

  void clear() override {
    if ((lay.key_refs | lay.value_refs) == 0) {
      if (map_.size() != 0) note_key_change();
      map_.clear();
      return;
    }
    // Take the elements out under their locks, release their references after.
    std::vector<value_type> out;
    map_.erase_if([&](const value_type& x) {
      out.push_back(x);
      return true;
    });
    if (!out.empty()) note_key_change();
    for (const value_type& x : out) {
      release_words(&x.first, lay.key_refs);
      release_words(&x.second, lay.value_refs);
    }
  }

  void reserve(std::int64_t n) override { map_.reserve(static_cast<std::size_t>(n)); }

  std::unique_ptr<dict_base> clone() const override {
    auto c = std::make_unique<dict_impl>(lay, static_cast<std::int64_t>(map_.size()));
    map_.cvisit_all([&](const value_type& x) {
      incref_words(&x.first, lay.key_refs);
      incref_words(&x.second, lay.value_refs);
      c->map_.try_emplace(x.first, x.second);
    });
    return c;
  }

  std::size_t snapshot(std::vector<unsigned char>& out) const override {
    const std::size_t vo = value_offset(), st = stride();
    out.reserve(map_.size() * st + 64);
    std::size_t n = 0;
    map_.cvisit_all([&](const value_type& x) {
      const std::size_t at = out.size();
      out.resize(at + st);
      std::memcpy(out.data() + at, &x.first, sizeof(K));
      std::memcpy(out.data() + at + vo, &x.second, sizeof(V));
      incref_words(&x.first, lay.key_refs);
      incref_words(&x.second, lay.value_refs);
      ++n;
    });
    return n;
  }

  std::size_t export_many(void* keys, void* values, std::size_t capacity) const override {
    auto* kp = static_cast<unsigned char*>(keys);
    auto* vp = static_cast<unsigned char*>(values);
    std::size_t n = 0;
    map_.cvisit_all([&](const value_type& x) {
      if (n < capacity) {
        std::memcpy(kp + n * sizeof(K), &x.first, sizeof(K));
        std::memcpy(vp + n * sizeof(V), &x.second, sizeof(V));
      }
      ++n;
    });
    return n;
  }

  map_type& map() noexcept { return map_; }

 private:
  template <class T>
  static T load(const void* p) noexcept {
    T t;
    std::memcpy(&t, p, sizeof(T));
    return t;
  }

  map_type map_;
};

template <class K>
std::unique_ptr<dict_base> make_dict_for_key(const layout& l, std::int64_t n_keys) {
  switch (l.value_class) {
    case 4:
      return std::make_unique<dict_impl<K, std::uint32_t>>(l, n_keys);
    case 8:
      return std::make_unique<dict_impl<K, std::uint64_t>>(l, n_keys);
    case 16:
      return std::make_unique<dict_impl<K, words<2>>>(l, n_keys);
    case 32:
      return std::make_unique<dict_impl<K, words<4>>>(l, n_keys);
    case 56:
      return std::make_unique<dict_impl<K, words<7>>>(l, n_keys);
    case 64:
      return std::make_unique<dict_impl<K, words<8>>>(l, n_keys);
    case 128:
      return std::make_unique<dict_impl<K, words<16>>>(l, n_keys);
    case 256:
      return std::make_unique<dict_impl<K, words<32>>>(l, n_keys);
    default:
      return nullptr;
  }
}

}  // namespace pardict::capi
