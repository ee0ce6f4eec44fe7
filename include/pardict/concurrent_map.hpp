// pardict::concurrent_map — a concurrent hash map that grows under load without losing anything.
//
// A thin facade over detail::concurrent_table (read its opening essay for the design). Like
// boost::concurrent_flat_map there are no iterators: an iterator into a table that other threads
// resize is a dangling pointer waiting to happen. Elements are reached by visitation — a callback
// that runs while the element is protected — or copied out. docs/concurrency.md states what each
// operation guarantees to concurrent callers.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <tuple>
#include <type_traits>
#include <utility>

#include "pardict/combine.hpp"
#include "pardict/detail/concurrent_table.hpp"
#include "pardict/hash.hpp"

namespace pardict {

template <class K, class V, class Hash = pardict::hash<K>, class KeyEqual = std::equal_to<K>,
          class Allocator = std::allocator<std::pair<const K, V>>>
class concurrent_map {
  using table_type = detail::concurrent_table<K, V, Hash, KeyEqual, Allocator>;
  using no_visit = detail::no_visit;
  using mutating = detail::mutating_tag;
  using const_access = detail::const_tag;

  static_assert(std::is_nothrow_move_constructible_v<V> || std::is_copy_constructible_v<V>,
                "pardict::concurrent_map: V must be nothrow-movable or copyable (growth moves it)");

 public:
  using key_type = K;
  using mapped_type = V;
  using value_type = std::pair<const K, V>;
  using size_type = std::size_t;
  using hasher = Hash;
  using key_equal = KeyEqual;
  using allocator_type = Allocator;

  // True when lookups copy elements out without writing shared memory.
  static constexpr bool optimistic_reads = table_type::optimistic;

  concurrent_map() : concurrent_map(0) {}
  explicit concurrent_map(size_type bucket_hint, const Hash& h = Hash(),
                          const KeyEqual& eq = KeyEqual(), const Allocator& a = Allocator())
      : table_(bucket_hint, h, eq, a) {}

  // Copying reads `other` with visitation, so it is safe while other threads modify it; the copy
  // then holds each element as it was when its group was visited.
  concurrent_map(const concurrent_map& other)
      : table_(other.size(), other.hash_function(), other.key_eq(), other.get_allocator()) {
    other.cvisit_all([this](const value_type& x) { insert(x); });
  }
  concurrent_map(concurrent_map&& other) noexcept : table_(std::move(other.table_)) {}

  concurrent_map& operator=(const concurrent_map& other) {
    if (this != &other) {
      concurrent_map tmp(other);
      swap(tmp);
    }
    return *this;
  }
  concurrent_map& operator=(concurrent_map&& other) noexcept {
    if (this != &other) {
      concurrent_map tmp(std::move(other));
      swap(tmp);
    }
    return *this;
  }
  ~concurrent_map() = default;

  // ---- insertion ----------------------------------------------------------------------------
  bool insert(const value_type& x) { return emplace_visit(const_access{}, x.first, no_visit{}, x); }
  bool insert(value_type&& x) {
    return emplace_visit(const_access{}, x.first, no_visit{}, std::move(x));
  }

  template <class... Args>
  bool emplace(Args&&... args) {
    // The key must exist before the probe: build the element once, then move it in.
    value_type x(std::forward<Args>(args)...);
    return insert(std::move(x));
  }

  template <class... Args>
  bool try_emplace(const K& k, Args&&... args) {
    return table_.upsert(
        const_access{}, k,
        [&](void* where) {
          ::new (where) value_type(std::piecewise_construct, std::forward_as_tuple(k),
                                   std::forward_as_tuple(std::forward<Args>(args)...));
        },
        no_visit{});
  }

  template <class M>
  bool insert_or_assign(const K& k, M&& v) {
    return table_.upsert(
        mutating{}, k, [&](void* where) { ::new (where) value_type(k, std::forward<M>(v)); },
        [&](value_type& x) { x.second = std::forward<M>(v); });
  }

  template <class F>
  bool insert_or_visit(const value_type& x, F f) {
    return emplace_visit(mutating{}, x.first, f, x);
  }
  template <class F>
  bool insert_or_cvisit(const value_type& x, F f) {
    return emplace_visit(const_access{}, x.first, f, x);
  }

  // Boost's argument order: try_emplace_or_visit(k, args..., f).
  template <class... Args>
  PARDICT_ALWAYS_INLINE bool try_emplace_or_visit(const K& k, Args&&... args_then_f) {
    return try_emplace_or_visit_impl(mutating{}, k,
                                     std::forward_as_tuple(std::forward<Args>(args_then_f)...),
                                     std::make_index_sequence<sizeof...(Args) - 1>{});
  }
  template <class... Args>
  bool try_emplace_or_cvisit(const K& k, Args&&... args_then_f) {
    return try_emplace_or_visit_impl(const_access{}, k,
                                     std::forward_as_tuple(std::forward<Args>(args_then_f)...),
                                     std::make_index_sequence<sizeof...(Args) - 1>{});
  }

  // ---- lookup -------------------------------------------------------------------------------
  std::optional<V> find(const K& k) const {
    std::optional<V> out;
    table_.read(k, [&](const value_type& x) { out.emplace(x.second); });
    return out;
  }
  bool contains(const K& k) const {
    return table_.read(k, [](const value_type&) {});
  }
  size_type count(const K& k) const { return contains(k) ? 1 : 0; }

  template <class F>
  size_type visit(const K& k, F f) {
    return table_.visit(k, f) ? 1 : 0;
  }
  template <class F>
  size_type visit(const K& k, F f) const {
    return cvisit(k, f);
  }
  template <class F>
  PARDICT_ALWAYS_INLINE size_type cvisit(const K& k, F f) const {
    if constexpr (detail::is_leaf_fn<F>) {
      return table_.read(k, f) ? 1 : 0;
    } else {
      return table_.read(k, [&](const value_type& x) { f(x); }) ? 1 : 0;
    }
  }

  // Internal, for the C ABI's numba fast path (capi/jit.hpp): see
  // detail::concurrent_table::read_detached.
  template <bool KnownUnlocked = false, class F>
  PARDICT_ALWAYS_INLINE int read_detached(detail::epoch_domain& domain,
                                          const detail::epoch_domain::detached_thread& me,
                                          const K& k, F&& f) const {
    return table_.template read_detached<KnownUnlocked>(domain, me, k, f);
  }
  // insert_or_assign's counterpart there: k -> v, the element's old value passed to on_found
  // (a leaf_fn) before it is replaced. See detail::concurrent_table::upsert_detached.
  template <class F>
  PARDICT_ALWAYS_INLINE int insert_or_assign_detached(
      detail::epoch_domain& domain, const detail::epoch_domain::detached_thread& me,
      void (*wake)(detail::group_meta&) noexcept, const K& k, const V& v, F&& on_found) {
    detail::leaf_fn make{[&](void* where) { ::new (where) value_type(k, v); }};
    return table_.upsert_detached(domain, me, wake, k, make, on_found);
  }
  // After insert_or_assign_detached returned 2 (see upsert_detached).
  void grow_after_detached_insert(const K& k) { table_.grow_after_detached_insert(k); }

  // ---- erasure ------------------------------------------------------------------------------
  size_type erase(const K& k) {
    return table_.erase_if_key(k, [](const value_type&) { return true; });
  }
  template <class F>
  size_type erase_if(const K& k, F pred) {
    return table_.erase_if_key(k, pred);
  }

  // ---- whole table --------------------------------------------------------------------------
  template <class F>
  size_type visit_all(F f) {
    return table_.visit_all(mutating{}, f);
  }
  template <class F>
  size_type visit_all(F f) const {
    return cvisit_all(f);
  }
  template <class F>
  size_type cvisit_all(F f) const {
    return const_cast<table_type&>(table_).visit_all(const_access{}, f);
  }
  template <class F>
  size_type erase_if(F pred) {
    return table_.erase_if_all(pred);
  }

  // Removes some element, calling f(value_type&) on it first; false when empty. Not an ordered
  // pop: which element comes out is unspecified (typed.Dict's popitem is LIFO; ours cannot be).
  template <class F>
  bool extract_any(F f) {
    return table_.extract_any(f);
  }

  // For trivially copyable elements that carry references (refcounted handles): make readers lock
  // the element's group instead of copying optimistically, so a reader can acquire the reference
  // before a writer can replace and release it. Call before other threads use the map.
  void set_locked_reads(bool on) noexcept { table_.set_locked_reads(on); }
  bool locked_reads() const noexcept { return table_.locked_reads(); }

  size_type size() const noexcept { return table_.size(); }
  bool empty() const noexcept { return size() == 0; }
  size_type bucket_count() const noexcept { return table_.bucket_count(); }
  double load_factor() const noexcept {
    const size_type b = bucket_count();
    return b == 0 ? 0.0 : static_cast<double>(size()) / static_cast<double>(b);
  }
  // How many groups (of 8 slots) lookups of the present elements walk: the longest walk and the
  // total (see pardict::probe_stats). A diagnostic; it reads every element as cvisit_all does.
  probe_stats probe_statistics() const {
    return const_cast<table_type&>(table_).probe_statistics();
  }
  // The load factor past which a table grows (fixed).
  static constexpr double max_load_factor() noexcept { return detail::max_load; }
  void reserve(size_type n) { table_.reserve(n); }
  void rehash(size_type n) { table_.reserve(std::max(n, size()), /*exact=*/true); }
  void clear() { table_.clear(); }

  // Moves the elements of `other` whose keys are absent here; returns how many moved. Elements are
  // moved one at a time (each is in exactly one of the two maps at every instant). Must not run
  // concurrently with other.merge(*this).
  template <class H2, class E2>
  size_type merge(concurrent_map<K, V, H2, E2, Allocator>& other) {
    if (static_cast<const void*>(&other) == static_cast<const void*>(this)) return 0;
    return other.erase_if(
        [this](value_type& x) { return try_emplace(x.first, std::move(x.second)); });
  }
  template <class H2, class E2>
  size_type merge(concurrent_map<K, V, H2, E2, Allocator>&& other) {
    return merge(other);
  }

  void swap(concurrent_map& other) noexcept { table_.swap(other.table_); }

  // ---- bulk ---------------------------------------------------------------------------------
  size_type find_many(std::span<const K> keys, std::span<V> values_out,
                      std::span<bool> found_out) const {
    check_bulk(keys.size(), values_out.size());
    check_bulk(keys.size(), found_out.size());
    for (auto& f : found_out.first(keys.size())) f = false;
    return table_.read_many(keys.data(), keys.size(), [&](std::size_t i, const value_type& x) {
      values_out[i] = x.second;
      found_out[i] = true;
    });
  }
  size_type contains_many(std::span<const K> keys, std::span<bool> found_out) const {
    check_bulk(keys.size(), found_out.size());
    for (auto& f : found_out.first(keys.size())) f = false;
    return table_.read_many(keys.data(), keys.size(),
                            [&](std::size_t i, const value_type&) { found_out[i] = true; });
  }
  size_type insert_or_assign_many(std::span<const K> keys, std::span<const V> values) {
    return upsert_many(keys, values, combine_op::assign);
  }
  size_type upsert_many(std::span<const K> keys, std::span<const V> values, combine_op op) {
    check_bulk(keys.size(), values.size());
    return table_.upsert_many(
        keys.data(), keys.size(),
        [&](std::size_t i, void* where) { ::new (where) value_type(keys[i], values[i]); },
        [&](std::size_t i, value_type& x) { detail::combine(x.second, values[i], op); });
  }

  // Building a map before it is shared, one shard at a time (threads may load different shards
  // at once; nothing else may use a shard while it loads). Input grouped by shard_index, as
  // another map's iteration yields it, loads with one probe and one slot store per element.
  // load_shard returns how many keys it added, or npos having changed nothing when the shard is
  // not empty or a key belongs to another shard (see detail::concurrent_table::load_shard).
  static constexpr size_type shard_count = table_type::shard_count;
  size_type shard_index(const K& k) const { return table_.shard_index(k); }
  template <class Make, class OnAgain>
  size_type load_shard(size_type shard, std::span<const K> keys, size_type min_groups,
                       std::uint32_t seed, Make make, OnAgain on_again) {
    return table_.load_shard(shard, keys.data(), keys.size(), min_groups, seed, make, on_again);
  }
  // Fetches a shard's table into cache (a batch of its keys is about to arrive); its bytes.
  size_type warm_shard(size_type shard) const { return table_.warm_shard(shard); }
  // The seed and group count of a shard's table ({0, 0} without one), for an exporter.
  std::pair<std::uint32_t, size_type> shard_geometry(size_type shard) const {
    return table_.shard_geometry(shard);
  }

  // Generic bulk forms (prefetching pipeline): for each i, f(i, element) on the element of
  // keys[i] under its protection (cvisit_many: read-only, returns how many were found); or, when
  // keys[i] is absent, make(i, where) placement-constructs the element (emplace_or_visit_many,
  // returns how many were inserted).
  template <class F>
  size_type cvisit_many(std::span<const K> keys, F f) const {
    return table_.read_many(keys.data(), keys.size(), f);
  }
  template <class Make, class F>
  size_type emplace_or_visit_many(std::span<const K> keys, Make make, F f) {
    return table_.upsert_many(keys.data(), keys.size(), make, f);
  }

  hasher hash_function() const { return table_.hash_function(); }
  key_equal key_eq() const { return table_.key_eq(); }
  allocator_type get_allocator() const { return table_.get_allocator(); }

 private:
  // Inserts value_type(args...) if k is absent, else visits k's element with f as Access allows.
  template <class Access, class F, class... Args>
  bool emplace_visit(Access, const K& k, F&& f, Args&&... args) {
    return table_.upsert(
        Access{}, k, [&](void* where) { ::new (where) value_type(std::forward<Args>(args)...); },
        f);
  }

  template <class Access, class Tuple, std::size_t... I>
  PARDICT_ALWAYS_INLINE bool try_emplace_or_visit_impl(Access, const K& k, Tuple&& t,
                                                       std::index_sequence<I...>) {
    auto make = [&](void* where) {
      ::new (where) value_type(std::piecewise_construct, std::forward_as_tuple(k),
                               std::forward_as_tuple(std::get<I>(std::move(t))...));
    };
    // Copying a trivially copyable key and value from a V calls no user code, so cannot call
    // back into the map (detail::leaf_fn).
    if constexpr (sizeof...(I) == 1 && std::is_trivially_copyable_v<K> &&
                  std::is_trivially_copyable_v<V> &&
                  (std::is_same_v<std::remove_cvref_t<std::tuple_element_t<I, Tuple>>, V> && ...)) {
      return table_.upsert(Access{}, k, detail::leaf_fn{make}, std::get<sizeof...(I)>(t));
    } else {
      return table_.upsert(Access{}, k, make, std::get<sizeof...(I)>(t));
    }
  }

  static void check_bulk(std::size_t keys, std::size_t out) {
    if (out < keys) throw std::length_error("pardict: bulk output/value span shorter than keys");
  }

  table_type table_;
};

template <class K, class V, class H, class E, class A>
bool operator==(const concurrent_map<K, V, H, E, A>& a, const concurrent_map<K, V, H, E, A>& b) {
  if (a.size() != b.size()) return false;
  bool same = true;
  a.cvisit_all([&](const typename concurrent_map<K, V, H, E, A>::value_type& x) {
    if (!same) return;
    bool hit = false;
    b.cvisit(x.first, [&](const auto& y) { hit = (y.second == x.second); });
    if (!hit) same = false;
  });
  return same;
}

template <class K, class V, class H, class E, class A>
void swap(concurrent_map<K, V, H, E, A>& a, concurrent_map<K, V, H, E, A>& b) noexcept {
  a.swap(b);
}

}  // namespace pardict
