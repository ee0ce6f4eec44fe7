// The engine behind the C ABI: one concurrent_map instantiation per (key class, value class),
// reached through a virtual interface (dict_base), so the ABI is one set of functions whatever the
// types. Internal; see pardict_capi.h for the contract.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <thread>
#include <type_traits>
#include <vector>

#include "blob.hpp"
#include "combine_fields.hpp"
#include "key_changes.hpp"
#include "pardict/concurrent_map.hpp"
#include "pardict_capi.h"
#include "preaggregate.hpp"
#include "refs.hpp"
#include "unowned_copies.hpp"

namespace pardict::capi {

struct layout {
  std::uint32_t key_size, value_size;    // bytes of the caller's representation
  std::uint32_t key_class, value_class;  // bytes of the stored blobs
  std::uint32_t key_refs, key_strs, value_refs;
};

// Thrown (inside C++ only) to abandon an update whose callback failed: the engine's locks are
// RAII, so the element is left as it was.
struct callback_failed {};

using update_fn = std::int32_t (*)(void* ctx, void* value);

// ---- the interface ------------------------------------------------------------------------------

// The element operations return the pardict_result the C function of the same name does.
class dict_base {
 public:
  explicit dict_base(const layout& l)
      : lay(l), copies(unowned_copies::copied_words(l.value_size, l.value_refs)) {
    g_live_dicts.fetch_add(1);
  }
  virtual ~dict_base() { g_live_dicts.fetch_sub(1); }

  virtual std::int64_t size() const = 0;
  virtual int set(const void* k, const void* v, void* old_out) = 0;
  virtual int get(const void* k, void* out) const = 0;
  virtual int contains(const void* k) const = 0;
  virtual void grow_for(const void* k) = 0;
  virtual int pop(const void* k, void* out) = 0;
  virtual int popitem(void* k_out, void* v_out) = 0;
  virtual int setdefault(const void* k, const void* dflt, void* out) = 0;
  virtual int insert(const void* k, const void* v) = 0;
  // See pardict_visit; throws callback_failed when cb returns nonzero.
  virtual int visit(const void* k, update_fn cb, void* ctx) = 0;
  // See pardict_update; throws callback_failed when cb returns nonzero.
  virtual int update(const void* k, const void* dflt, update_fn cb, void* ctx, void* out) = 0;
  // Inserts v or combines it into the stored value; see pardict_combine (and
  // pardict_combine_present for the form that does not insert).
  virtual int combine(const void* k, const void* v, const field_combine& c, void* out) = 0;
  virtual int combine_present(const void* k, const void* v, const field_combine& c, void* out) = 0;
  // Bulk forms over n contiguous key blobs (and value blobs) of the class sizes; only for layouts
  // without references or string keys (the caller checks). found_out gets 0/1 per key; values of
  // absent keys are left untouched. combine_many assigns when c.op is combine_op::assign. Return
  // how many were found / inserted.
  virtual std::size_t get_many(const void* keys, std::size_t n, void* values_out,
                               std::uint8_t* found_out) const = 0;
  virtual std::size_t combine_many(const void* keys, const void* values, std::size_t n,
                                   const field_combine& c) = 0;
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
  // Same layouts: the engine's one-pass shard load (concurrent_map::load_shard) of n rows that
  // belong to `shard`, with assign semantics for a key met twice; npos when the shard cannot be
  // loaded that way (it holds elements, or a row belongs elsewhere), having changed nothing.
  virtual std::size_t load_shard(std::size_t shard, const void* keys, const void* values,
                                 std::size_t n, std::size_t min_groups, std::uint32_t seed) = 0;
  virtual std::size_t shard_index(const void* key) const = 0;
  // The seed and group count of each shard's table (0 without one).
  virtual void shard_geometry(std::uint32_t* seeds, std::uint64_t* groups) const = 0;
  // Snapshot entry layout: key at 0, value at value_offset(), entries stride() bytes apart, all
  // word-aligned so jitted code can load them directly.
  std::size_t value_offset() const noexcept { return round_up(lay.key_class); }
  std::size_t stride() const noexcept { return round_up(value_offset() + lay.value_class); }
  static constexpr std::size_t round_up(std::size_t n) noexcept {
    return (n + word_bytes - 1) & ~(word_bytes - 1);
  }

  const layout lay;
  // Tells a dictionary made before a fork from one made after it (epoch_domain::fork_spoiled).
  const std::uint64_t serial = detail::epoch_domain::instance().object_serial();
  // Calls that may insert and failed with PARDICT_ERR_NOMEM since the last
  // pardict_take_alloc_failures.
  std::atomic<std::int64_t> alloc_failures{0};
  unowned_copies copies;  // used only by dictionaries whose value is one array

  // Key changes by each thread while iterators are alive (pardict_iter_next's MUTATED).
  key_change_log changes;

  // set(), releasing a replaced value itself instead of handing it to the caller (called outside
  // every engine lock: the release may run destructors).
  int set_releasing(const void* k, const void* v) {
    alignas(word_bytes) unsigned char old[max_value_class];
    const int r = set(k, v, old);
    if (r == PARDICT_REPLACED) release_disowned_words(old, lay.value_refs);
    return r;
  }

  PARDICT_ALWAYS_INLINE void note_key_change() noexcept { changes.note(); }

  // Whether a store may be decided by dict_impl's set_word_detached now: 1-D arrays stored as one
  // word (their MemInfo: unowned_copies::stores_one_word), plain-bytes keys, no iterator alive.
  // The numba fast path asks once, before it takes its stripe of unowned copies: asked after it,
  // behind the stripe's compiler barrier, the layout was loaded and tested twice per store.
  PARDICT_ALWAYS_INLINE bool stores_words_detached() const noexcept {
    return lay.key_refs == 0 && unowned_copies::stores_one_word(lay.value_size, lay.value_refs) &&
           changes.quiet();
  }
};

struct iter_state {
  dict_base* dict;  // kept alive by the reference to its MemInfo below; nullptr once drained
  void* dict_meminfo = nullptr;
  std::uint64_t stamp = 0;  // from dict->changes.open()
  bool mutated = false;     // reported once, then every later step reports it again
  std::vector<unsigned char> buf;
  std::size_t count = 0, pos = 0;
};

// The dictionary for key blob K (an element of key_blobs) and the layout's value class. Defined
// below, and instantiated once per key class in make_k*.cpp (the six compile in parallel); the
// declarations that follow keep other translation units from instantiating it again.
template <class K>
std::unique_ptr<dict_base> make_dict_for_key(const layout& l, std::int64_t n_keys);
using dict_ptr = std::unique_ptr<dict_base>;
extern template dict_ptr make_dict_for_key<std::uint32_t>(const layout&, std::int64_t);
extern template dict_ptr make_dict_for_key<std::uint64_t>(const layout&, std::int64_t);
extern template dict_ptr make_dict_for_key<words<2>>(const layout&, std::int64_t);
extern template dict_ptr make_dict_for_key<words<4>>(const layout&, std::int64_t);
extern template dict_ptr make_dict_for_key<words<8>>(const layout&, std::int64_t);
extern template dict_ptr make_dict_for_key<words<16>>(const layout&, std::int64_t);

// ---- the template ------------------------------------------------------------------------------

// Keys of 4 and 8 bytes are the bytes of an integer or of a float (canonical: no -0.0, one NaN),
// which the C ABI does not tell apart; they compare as bytes. Their hash places keys that are
// small integers in order (hash.hpp, in_order_hash), whichever of the two they are, so that the
// keys of the seed program (`d[float(i)] = v`) are written front to back as int keys are: an
// 8-byte key is a small int64 or, failing that, a float64 equal to one; a 4-byte key (every
// int32 is small) is first tried as a float32 equal to one. Two distinct keys may then share a
// hash (5 and the bytes of 5.0f), which costs a comparison, never equality. Everything else is
// mixed as pardict::hash mixes an integer.
struct scalar_key_hash {
  static constexpr bool places_in_order = true;
  // One test of the top 12 bits first, so that most other keys (large integers) leave after a
  // shift, an add, a mask and a compare: a small integer's are 0x000 or 0xfff, and a float of
  // magnitude in [1, 2^38) has sign and exponent 0x3ff..0x424 or 0xbff..0xc24; all of them, and
  // 4% of other values, have ((top + 1) mod 1024) < 39.
  std::uint64_t operator()(std::uint64_t bits) const noexcept {
    if ((((bits >> 52) + 1) & 0x3ff) < 39) {
      const auto i = static_cast<std::int64_t>(bits);
      if (detail::is_small_integer(i)) return detail::in_order_hash(i);
      std::int64_t v = 0;
      if (detail::small_integral_value(std::bit_cast<double>(bits), v)) {
        return detail::in_order_hash(v);
      }
    }
    return detail::mix64(bits);
  }
  std::uint64_t operator()(std::uint32_t bits) const noexcept {
    std::int64_t v = 0;
    if (((bits >> 23) & 0xff) - 127u < 38 &&
        detail::small_integral_value(std::bit_cast<float>(bits), v)) {
      return detail::in_order_hash(v);
    }
    return detail::in_order_hash(static_cast<std::int32_t>(bits));
  }
  // Whether a key takes the in-order hash (for the engine's choice at growth): every 4-byte key
  // does; an 8-byte one unless it was mixed (a mixed key equal to its in-order hash is rare, and
  // the answer only steers a heuristic).
  bool in_order_key(std::uint32_t) const noexcept { return true; }
  bool in_order_key(std::uint64_t bits) const noexcept {
    return (*this)(bits) != detail::mix64(bits);
  }
};

// Integer keys hash as above and compare as integers; word blobs by their layout (string words by
// code points).
template <class K>
struct key_traits {
  using hasher = scalar_key_hash;
  using equal = std::equal_to<K>;
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
  update_fn cb;
  void* ctx;
};

template <class K, class V>
class dict_impl final : public dict_base {
  struct fresh_value : fresh_value_base {
    fresh_value(const void* d, update_fn c, void* x, V* r) : fresh_value_base{d, c, x}, result(r) {}
    V* result;
    operator V() const {  // NOLINT: implicit on purpose, used by the engine's construction
      V v = load_as<V>(dflt);
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
    // Values or keys holding references must be acquired while the element cannot change (and
    // get_detached counts on this to leave them to the ordinary path).
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
    K k = load_as<K>(kp);
    V v = load_as<V>(vp);
    if (!(lay.key_refs | lay.value_refs)) {  // plain bytes: one test, then the engine's fast path
      const bool inserted = map_.try_emplace_or_visit(k, v, detail::leaf_fn{[&](value_type& x) {
                                                        std::memcpy(old_out, &x.second, sizeof(V));
                                                        x.second = v;
                                                      }});
      if (inserted) note_key_change();
      return inserted ? PARDICT_INSERTED : PARDICT_REPLACED;
    }
    incref_words(&k, lay.key_refs);
    incref_words(&v, lay.value_refs);
    const bool inserted = map_.try_emplace_or_visit(k, v, detail::leaf_fn{[&](value_type& x) {
                                                      std::memcpy(old_out, &x.second, sizeof(V));
                                                      x.second = v;
                                                    }});
    if (inserted) {
      note_key_change();
      return PARDICT_INSERTED;
    }
    unref_words(&k, lay.key_refs);
    disown_words(old_out, lay.value_refs);  // the old value's reference now belongs to the caller
    return PARDICT_REPLACED;
  }

  int get(const void* kp, void* out) const override {
    const K k = load_as<K>(kp);
    const std::uint32_t refs = lay.value_refs;
    if (!refs) {
      return map_.cvisit(k, detail::leaf_fn{[&](const value_type& x) {
                           std::memcpy(out, &x.second, sizeof(V));
                         }}) != 0
                 ? PARDICT_FOUND
                 : PARDICT_ABSENT;
    }
    const bool found = map_.cvisit(k, detail::leaf_fn{[&](const value_type& x) {
                                     std::memcpy(out, &x.second, sizeof(V));
                                     incref_words(&x.second, refs);  // NRT_incref: calls no map
                                   }}) != 0;
    if (found && refs) disown_words(out, refs);  // counted in the caller's books, not ours
    return found ? PARDICT_FOUND : PARDICT_ABSENT;
  }

  // get() on the numba fast path (capi/jit.hpp), the thread's epoch state passed in: 1 found,
  // 0 absent, -1 not decided here (nothing changed; the caller calls pardict_get). Only for a
  // dictionary whose keys and values hold no reference, the caller's promise, as K and V are
  // (pardict.numba.jit inlines lookups only for such dictionary types, whose layout the numba
  // type fixes): a value holding one needs it acquired. Such dictionaries are the only ones
  // whose reads lock (the constructor), so the engine's flag for that is not tested either.
  PARDICT_ALWAYS_INLINE int get_detached(detail::epoch_domain& domain,
                                         const detail::epoch_domain::detached_thread& me,
                                         const void* kp, void* out) const noexcept {
    return map_.template read_detached<true>(
        domain, me, load_as<K>(kp),
        detail::leaf_fn{[&](const value_type& x) { std::memcpy(out, &x.second, sizeof(V)); }});
  }

  // set() on the same path, for plain-bytes keys and values (the caller's promise, as for
  // get_detached) while no iterator is alive (an insert then has no reference to take and no key
  // change to note): 1 inserted, 0 replaced (the old value in old_out), -1 not decided here
  // (nothing changed; the caller calls pardict_set), 2 inserted, and the table must grow: the
  // caller calls pardict_jit_grow (grow_for).
  PARDICT_ALWAYS_INLINE int set_detached(detail::epoch_domain& domain,
                                         const detail::epoch_domain::detached_thread& me,
                                         void (*wake)(detail::group_meta&) noexcept, const void* kp,
                                         const void* vp, void* old_out) noexcept {
    if (!changes.quiet()) return -1;
    const K k = load_as<K>(kp);
    const V v = load_as<V>(vp);
    return map_.insert_or_assign_detached(domain, me, wake, k, v,
                                          detail::leaf_fn{[&](value_type& x) {
                                            std::memcpy(old_out, &x.second, sizeof(V));
                                            x.second = v;
                                          }});
  }

  // set() on the same path for a dictionary of 1-D arrays stored as one word, for a caller that
  // found stores_words_detached() true just before: `word`, a MemInfo the caller keeps alive
  // throughout, is stored with a reference of the dictionary's own (taken as `ref` says: an
  // atomic add, or from the reserve of the thread's stripe of unowned copies), counted in the
  // calling thread's cell of the books (`refs`: ref_cells()). 1 inserted;
  // 0 replaced, the old word in old_out with its reference handed to the caller (who releases it,
  // out of every lock); -1 not decided here, nothing changed.
  template <class Reference = fresh_reference>
  PARDICT_ALWAYS_INLINE int set_word_detached(detail::epoch_domain& domain,
                                              const detail::epoch_domain::detached_thread& me,
                                              void (*wake)(detail::group_meta&) noexcept,
                                              ref_cell* refs, const void* kp, std::uint64_t word,
                                              void* old_out, Reference ref = {}) noexcept {
    if constexpr (!std::is_same_v<V, std::uint64_t>) {
      return -1;
    } else {
      // The reference is taken before the element is visible: once stored, another thread may
      // pop it and release the dictionary's reference.
      ref.take(word);
      const int r = map_.insert_or_assign_detached(domain, me, wake, load_as<K>(kp), word,
                                                   detail::leaf_fn{[&](value_type& x) {
                                                     std::memcpy(old_out, &x.second, sizeof(V));
                                                     x.second = word;
                                                   }});
      if (r < 0) {
        ref.give_back(word);  // undone
      } else if (r > 0) {
        // A replace hands one out as it takes one. The thread entered through its slot (a
        // thread without one gets -1), so me.index names a cell of its own (count_in_own_cell
        // without its test).
        std::atomic<std::int64_t>& n = refs[me.index].n;
        n.store(n.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      }
      return r;
    }
  }

  // combine() on the same path for a scalar value (one field of `kind` at offset 0, op a
  // combining op: the caller has checked both) of a plain-bytes dictionary (as for
  // set_detached), while no iterator is alive: 1 inserted, 0 combined, the stored result in out
  // either way; -1 and 2 as for set_detached.
  PARDICT_ALWAYS_INLINE int combine_detached(detail::epoch_domain& domain,
                                             const detail::epoch_domain::detached_thread& me,
                                             void (*wake)(detail::group_meta&) noexcept,
                                             const void* kp, const void* vp, combine_op op,
                                             std::int32_t kind, void* out) noexcept {
    if (!changes.quiet()) return -1;
    const K k = load_as<K>(kp);
    const V v = load_as<V>(vp);
    // insert_or_assign_detached inserts (k, v) or runs its callback on the element
    auto combine = [&](value_type& x) PARDICT_INLINE_LAMBDA {
      field_combine::one_field(&x.second, &v, op, kind);
      std::memcpy(out, &x.second, sizeof(V));
    };
    const int r = map_.insert_or_assign_detached(domain, me, wake, k, v, detail::leaf_fn{combine});
    if (r > 0) std::memcpy(out, &v, sizeof(V));
    return r;
  }

  // After a *_detached store returned 2: starts the growth of kp's table
  // (concurrent_table::upsert_detached).
  void grow_for(const void* kp) override { map_.grow_after_detached_insert(load_as<K>(kp)); }

  // contains() on the same path, for the same dictionaries.
  PARDICT_ALWAYS_INLINE int contains_detached(detail::epoch_domain& domain,
                                              const detail::epoch_domain::detached_thread& me,
                                              const void* kp) const noexcept {
    return map_.template read_detached<true>(domain, me, load_as<K>(kp),
                                             detail::leaf_fn{[](const value_type&) {}});
  }

  int contains(const void* kp) const override {
    return map_.contains(load_as<K>(kp)) ? PARDICT_FOUND : PARDICT_ABSENT;
  }

  int pop(const void* kp, void* out) override {
    const K k = load_as<K>(kp);
    K stored_key;
    const bool found = map_.erase_if(k, [&](const value_type& x) {
      std::memcpy(out, &x.second, sizeof(V));
      stored_key = x.first;
      return true;
    }) != 0;
    if (!found) return PARDICT_ABSENT;
    note_key_change();
    disown_words(out, lay.value_refs);
    release_words(&stored_key, lay.key_refs);  // outside the engine's locks
    return PARDICT_FOUND;
  }

  int popitem(void* k_out, void* v_out) override {
    const bool found = map_.extract_any([&](value_type& x) {
      std::memcpy(k_out, &x.first, sizeof(K));
      std::memcpy(v_out, &x.second, sizeof(V));
    });
    if (!found) return PARDICT_ABSENT;
    note_key_change();
    disown_words(k_out, lay.key_refs);
    disown_words(v_out, lay.value_refs);
    return PARDICT_FOUND;
  }

  int setdefault(const void* kp, const void* dp, void* out) override {
    K k = load_as<K>(kp);
    V d = load_as<V>(dp);
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
    return inserted ? PARDICT_NEW_KEY : PARDICT_OLD_KEY;
  }

  int combine(const void* kp, const void* vp, const field_combine& c, void* out) override {
    K k = load_as<K>(kp);
    const V v = load_as<V>(vp);
    incref_words(&k, lay.key_refs);
    const bool inserted = map_.try_emplace_or_visit(k, v, [&](value_type& x) {
      c(&x.second, &v);
      if (out != nullptr) std::memcpy(out, &x.second, sizeof(V));
    });
    if (inserted) {
      note_key_change();
      if (out != nullptr) std::memcpy(out, &v, sizeof(V));
    } else {
      unref_words(&k, lay.key_refs);
    }
    return inserted ? PARDICT_NEW_KEY : PARDICT_OLD_KEY;
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

  std::size_t combine_many(const void* keys, const void* values, std::size_t n,
                           const field_combine& c) override {
    const auto* ks = static_cast<const K*>(keys);
    const auto* vs = static_cast<const unsigned char*>(values);
    if constexpr (sizeof(K) + sizeof(V) <= hot_keys::max_entry_bytes) {
      if (c.op != combine_op::assign && n >= hot_keys::min_rows)
        return combine_many_hot(ks, vs, n, c);
    }
    return apply_many(ks, vs, n, c);
  }

  int update(const void* kp, const void* dp, update_fn cb, void* ctx, void* out) override {
    K k = load_as<K>(kp);
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
    return inserted ? PARDICT_NEW_KEY : PARDICT_OLD_KEY;
  }

  int visit(const void* kp, update_fn cb, void* ctx) override {
    const K k = load_as<K>(kp);
    // The mutable visit: always under the element's lock (a const visit may read optimistically).
    const bool found = map_.visit(k, [&](value_type& x) {
      V v = x.second;  // cb sees a copy: the value's own bytes cannot change
      if (cb(ctx, &v) != 0) throw callback_failed{};
    }) != 0;
    return found ? PARDICT_FOUND : PARDICT_ABSENT;
  }

  int combine_present(const void* kp, const void* vp, const field_combine& c, void* out) override {
    const K k = load_as<K>(kp);
    const V v = load_as<V>(vp);
    const bool found = map_.visit(k, [&](value_type& x) {
      c(&x.second, &v);
      if (out != nullptr) std::memcpy(out, &x.second, sizeof(V));
    }) != 0;
    return found ? PARDICT_FOUND : PARDICT_ABSENT;
  }

  int insert(const void* kp, const void* vp) override {
    K k = load_as<K>(kp);
    V v = load_as<V>(vp);
    incref_words(&k, lay.key_refs);
    incref_words(&v, lay.value_refs);
    if (map_.try_emplace(k, v)) {
      note_key_change();
      return PARDICT_NEW_KEY;
    }
    unref_words(&k, lay.key_refs);
    unref_words(&v, lay.value_refs);
    return PARDICT_OLD_KEY;
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

  std::size_t load_shard(std::size_t shard, const void* keys, const void* values, std::size_t n,
                         std::size_t min_groups, std::uint32_t seed) override {
    const auto* ks = static_cast<const K*>(keys);
    const auto* vs = static_cast<const unsigned char*>(values);
    const std::size_t added = map_.load_shard(
        shard, std::span<const K>(ks, n), min_groups, seed,
        [&](std::size_t i, void* where) {
          ::new (where) value_type(ks[i], load_as<V>(vs + i * sizeof(V)));
        },
        [&](std::size_t i, value_type& x) { x.second = load_as<V>(vs + i * sizeof(V)); });
    if (added != 0 && added != static_cast<std::size_t>(-1)) note_key_change();
    return added;
  }
  std::size_t shard_index(const void* key) const override {
    return map_.shard_index(load_as<K>(key));
  }
  void shard_geometry(std::uint32_t* seeds, std::uint64_t* groups) const override {
    for (std::size_t s = 0; s < map_type::shard_count; ++s) {
      const auto [seed, ngroups] = map_.shard_geometry(s);
      seeds[s] = seed;
      groups[s] = ngroups;
    }
  }

  map_type& map() noexcept { return map_; }

 private:
  // A bulk add/min/max first passes through a private hot-key table (preaggregate.hpp); rows that
  // do not stay there, and everything it holds at the end, go to the dictionary in batches
  // through the prefetching path. When the first rows show the table does not pay (near-uniform
  // keys), the rest of the call skips it.
  std::size_t combine_many_hot(const K* ks, const unsigned char* vs, std::size_t n,
                               const field_combine& c) {
    using keys = blob_keys<K>;
    preaggregate<keys, hot_keys> cache(keys{}, sizeof(V));
    std::vector<K> pass_k;
    std::vector<V> pass_v;
    pass_k.reserve(hot_keys::batch);
    pass_v.reserve(hot_keys::batch);
    std::size_t inserted = 0;
    auto flush = [&] {
      inserted += apply_many(pass_k.data(), reinterpret_cast<const unsigned char*>(pass_v.data()),
                             pass_k.size(), c);
      pass_k.clear();
      pass_v.clear();
    };
    auto pass = [&](const K& k, const unsigned char* v) {
      pass_k.push_back(k);
      pass_v.push_back(load_as<V>(v));
      if (pass_k.size() == hot_keys::batch) flush();
    };
    std::size_t i = 0;
    for (; i < n; ++i) {
      if (i == hot_keys::probe_rows && !hot_keys::pays(cache.hits(), i)) break;
      cache.add(ks[i], keys::hash(ks[i]), vs + i * sizeof(V), c, pass);
    }
    cache.for_each(pass);
    flush();
    if (i < n) inserted += apply_many(ks + i, vs + i * sizeof(V), n - i, c);
    return inserted;
  }

  // Large batches go shard by shard (apply_by_shard), smaller ones straight to the pipeline.
  std::size_t apply_many(const K* keys, const unsigned char* vs, std::size_t n,
                         const field_combine& c) {
    if (n >= by_shard_rows) return apply_by_shard(keys, vs, n, c);
    return apply_pipelined(keys, vs, n, c);
  }

  // A batch of rows whose keys fall anywhere in a table larger than the cache costs a cache miss
  // per row, however well the pipeline overlaps them. Here each block of rows is first
  // partitioned by shard (a counting sort, stable, so that a key's rows keep their order), and
  // each shard's rows are applied right after its table was streamed into cache: a 1/64 slice of
  // the map, which the rows then hit in cache.
  static constexpr std::size_t by_shard_rows = std::size_t{1} << 17;
  static constexpr std::size_t by_shard_block = std::size_t{1} << 20;
  std::size_t apply_by_shard(const K* keys, const unsigned char* vs, std::size_t n,
                             const field_combine& c) {
    constexpr std::size_t shards = map_type::shard_count;
    const std::size_t room = std::min(n, by_shard_block);
    std::vector<K> bk(room);
    std::vector<V> bv(room);
    std::vector<std::uint8_t> sid(room);
    std::size_t inserted = 0;
    for (std::size_t b0 = 0; b0 < n; b0 += by_shard_block) {
      const std::size_t m = std::min(by_shard_block, n - b0);
      std::array<std::size_t, shards + 1> start{};
      for (std::size_t i = 0; i < m; ++i) {
        sid[i] = static_cast<std::uint8_t>(map_.shard_index(keys[b0 + i]));
        ++start[sid[i] + 1];
      }
      for (std::size_t s = 0; s < shards; ++s) start[s + 1] += start[s];
      std::array<std::size_t, shards> at{};
      std::copy(start.begin(), start.end() - 1, at.begin());
      for (std::size_t i = 0; i < m; ++i) {
        const std::size_t pos = at[sid[i]]++;
        bk[pos] = keys[b0 + i];
        bv[pos] = load_as<V>(vs + (b0 + i) * sizeof(V));
      }
      // Workers of one bulk call start at different shards, so that they do not fight over one
      // shard's groups (and its cache lines) at a time.
      const std::size_t first = std::hash<std::thread::id>{}(std::this_thread::get_id()) % shards;
      for (std::size_t j = 0; j < shards; ++j) {
        const std::size_t s = (first + j) % shards;
        const std::size_t rows = start[s + 1] - start[s];
        if (rows == 0) continue;
        map_.warm_shard(s);
        inserted +=
            apply_pipelined(bk.data() + start[s],
                            reinterpret_cast<const unsigned char*>(bv.data() + start[s]), rows, c);
      }
    }
    return inserted;
  }

  std::size_t apply_pipelined(const K* keys, const unsigned char* vs, std::size_t n,
                              const field_combine& c) {
    std::span<const K> ks(keys, n);
    const std::size_t inserted = map_.emplace_or_visit_many(
        ks,
        [&](std::size_t i, void* where) {
          ::new (where) value_type(ks[i], load_as<V>(vs + i * sizeof(V)));
        },
        [&](std::size_t i, value_type& x) {
          if (c.op == combine_op::assign) {
            std::memcpy(&x.second, vs + i * sizeof(V), sizeof(V));
          } else {
            c(&x.second, vs + i * sizeof(V));
          }
        });
    if (inserted != 0) note_key_change();
    return inserted;
  }

  map_type map_;
};

template <class K>
std::unique_ptr<dict_base> make_dict_for_key(const layout& l, std::int64_t n_keys) {
  std::unique_ptr<dict_base> d;
  with_element_where<value_blobs>(of_size(l.value_class), [&]<class V>(std::type_identity<V>) {
    d = std::make_unique<dict_impl<K, V>>(l, n_keys);
  });
  return d;
}

}  // namespace pardict::capi
