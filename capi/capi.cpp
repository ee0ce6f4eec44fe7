// extern "C" entry points: argument checks, exception barrier, iterator bookkeeping.
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "blob.hpp"
#include "combine_fields.hpp"
#include "dict_impl.hpp"
#define PARDICT_JIT_DEFINING 1  // jit.hpp: the definitions below must not be declared `const`
#include "jit.hpp"
#include "pardict_capi.h"
#include "refs.hpp"
#include "ucs4_bulk.hpp"
#include "unowned_copies.hpp"
#include "utf8_bulk.hpp"
#include "workers.hpp"

namespace pardict::capi {

namespace {
void no_release(void*) noexcept {}

ref_cell g_refs[owned_ref_cells + 1];

}  // namespace

std::atomic<release_fn> g_release{&no_release};
std::atomic<std::int64_t> g_live_dicts{0};

void count_refs(std::int64_t delta) noexcept {
  count_in_own_cell(g_refs, pardict::detail::epoch_domain::thread_index(), delta);
}

std::int64_t live_refs() noexcept {
  std::int64_t n = 0;
  for (auto& c : g_refs) n += c.n.load(std::memory_order_relaxed);
  return n;
}

ref_cell* ref_cells() noexcept { return g_refs; }

std::size_t shared_stripe_of_thread() noexcept {
  static std::atomic<std::size_t> next{0};
  static thread_local const std::size_t mine = next.fetch_add(1, std::memory_order_relaxed);
  return mine;
}

// The dictionary for a layout's key and value classes; null for classes that have no blob type.
std::unique_ptr<dict_base> make_dict(const layout& l, std::int64_t n_keys) {
  std::unique_ptr<dict_base> d;
  with_element_where<key_blobs>(of_size(l.key_class), [&]<class K>(std::type_identity<K>) {
    d = make_dict_for_key<K>(l, n_keys);
  });
  return d;
}

}  // namespace pardict::capi

using namespace pardict::capi;

struct pardict_dict {};  // opaque: a pardict_dict* is a dict_base*
struct pardict_iter {};  // opaque: a pardict_iter* is an iter_state*

namespace {

dict_base* D(pardict_dict* d) noexcept { return reinterpret_cast<dict_base*>(d); }
const dict_base* D(const pardict_dict* d) noexcept { return reinterpret_cast<const dict_base*>(d); }
iter_state* I(pardict_iter* it) noexcept { return reinterpret_cast<iter_state*>(it); }

// A dictionary made before a fork() that found operations in flight: in the child it may be
// half-changed or locked by a thread that is gone, so every call on it reports PARDICT_ERR_FORKED
// and freeing it leaks it (see epoch.hpp).
inline bool spoiled(const dict_base* d) noexcept {
  return d != nullptr && pardict::detail::epoch_domain::fork_spoiled(d->serial);
}
inline bool spoiled(const pardict_dict* d) noexcept {
  return spoiled(reinterpret_cast<const dict_base*>(d));
}

// The result of a call that may insert: one that could not allocate leaves a trace on the
// dictionary (pardict_take_alloc_failures), since callers such as numba's workqueue prange drop
// the status of a failed call.
inline std::int32_t noting_nomem(dict_base* d, std::int32_t r) noexcept {
  if (r == PARDICT_ERR_NOMEM) [[unlikely]]
    d->alloc_failures.fetch_add(1, std::memory_order_relaxed);
  return r;
}

// The exception barrier: every entry point runs its body through this.
template <class F>
std::int32_t guarded(F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return PARDICT_ERR_NOMEM;
  } catch (const std::length_error&) {
    return PARDICT_ERR_NOMEM;
  } catch (const pardict::reentrancy_error&) {
    return PARDICT_ERR_REENTRANT;
  } catch (const callback_failed&) {
    return PARDICT_ERR_CALLBACK;
  } catch (...) {
    return PARDICT_ERR_INTERNAL;
  }
}

std::uint32_t size_class(std::uint32_t size, std::uint32_t max) noexcept {
  if (size > max) return 0;  // before the doubling loop, which would wrap past 2^31
  if (size <= 4) return 4;
  std::uint32_t c = 8;
  while (c < size) c *= 2;
  return c;
}

// Masks may only name words inside the caller's `size` bytes.
bool mask_fits(std::uint32_t mask, std::uint32_t size) noexcept {
  if (mask == 0) return true;
  const auto words = static_cast<std::uint32_t>(size / word_bytes);
  return words >= mask_bits || (mask >> words) == 0;
}

// Every string struct must lie inside the key.
bool strings_fit(std::uint32_t mask, std::uint32_t size) noexcept {
  for (; mask != 0; mask &= mask - 1) {
    const std::uint32_t first = static_cast<std::uint32_t>(std::countr_zero(mask));
    if (word_bytes * first + PARDICT_NB_UNICODE_SIZE > size) return false;
  }
  return true;
}

// Whether a table for n elements of the given classes would be larger than any machine's memory.
// The engine keeps n / max_load slots, each with the key and value blobs and its share of the
// group metadata.
bool too_large(std::int64_t n, std::uint32_t key_class, std::uint32_t value_class) noexcept {
  constexpr double meta_per_slot =
      static_cast<double>(sizeof(pardict::detail::group_meta)) / pardict::detail::group_width;
  constexpr double max_bytes = static_cast<double>(std::size_t{1} << 46);  // 64 TiB
  return static_cast<double>(n) * (key_class + value_class + meta_per_slot) /
             pardict::detail::max_load >
         max_bytes;
}

}  // namespace

namespace {
// Runs body(begin, end) over [0, n) split into up to `threads` contiguous chunks, the first on the
// calling thread. Small inputs stay on one thread: starting a thread costs more than a chunk of
// fewer than 16384 rows takes. No more workers than CPUs: the string path's workers each report
// every word they did not find, which the caller then inserts once per report.
template <class Body>
int32_t parallel_chunks(std::int64_t n, std::int32_t threads, Body&& body) noexcept {
  const auto t = static_cast<std::int64_t>(worker_count(n, threads, 16384));
  std::atomic<int32_t> status{PARDICT_OK};
  on_workers(static_cast<std::size_t>(t), [&](std::size_t i) noexcept {
    const std::int64_t chunk = static_cast<std::int64_t>(i);
    const std::int64_t b = n * chunk / t, e = n * (chunk + 1) / t;
    const int32_t s = guarded([&] {
      body(static_cast<std::size_t>(b), static_cast<std::size_t>(e));
      return PARDICT_OK;
    });
    if (s != PARDICT_OK) status.store(s);
  });
  return status.load();
}

// pardict_combine's arguments: a reference-free value, a combining op (not assign), fields
// inside the value.
bool combine_args_ok(const layout& l, int32_t op, const int32_t* fields,
                     int32_t n_fields) noexcept {
  if (l.value_refs != 0 || op < PARDICT_OP_ADD || op > PARDICT_OP_MAX || n_fields < 0 ||
      (n_fields > 0 && fields == nullptr))
    return false;
  for (int32_t i = 0; i < n_fields; ++i) {
    const int32_t off = fields[2 * i];
    const uint32_t size = kind_size(fields[2 * i + 1]);
    if (size == 0 || off < 0 || static_cast<uint32_t>(off) + size > l.value_size) return false;
  }
  return true;
}

// Keys, and values when the call copies them, must be plain bytes: a byte copy would not count
// their references. A membership test (get_many without values_out) reads no values.
bool bulk_ok(const dict_base* d, std::int64_t n, bool copies_values = true) noexcept {
  const auto& l = d->lay;
  return n >= 0 && (l.key_refs | l.key_strs) == 0 && (!copies_values || l.value_refs == 0);
}

// The NumPy unicode paths need a dictionary whose key is one string.
bool holds_one_str(const layout& l) noexcept {
  return l.key_size == PARDICT_NB_UNICODE_SIZE && l.key_strs == word0_mask;
}
}  // namespace

extern "C" {

uint32_t pardict_key_class(uint32_t size) {
  return size == 0 ? 0 : size_class(size, max_key_class);
}
uint32_t pardict_value_class(uint32_t size) {
  // A 1-d numba array (7 words) with an 8-byte key fills one 64-byte slot instead of straddling
  // two as a 72-byte one would: an insert of an array value then writes one cache line.
  constexpr std::uint32_t array_1d = unowned_copies::array_bytes(1);
  if (size > array_1d - word_bytes && size <= array_1d) return array_1d;
  return size_class(size == 0 ? 1 : size, max_value_class);
}

void pardict_set_release(void (*release)(void*)) {
  g_release.store(release != nullptr ? release : &no_release);
}

pardict_dict* pardict_new(uint32_t key_size, uint32_t value_size, uint32_t key_ref_mask,
                          uint32_t key_str_mask, uint32_t value_ref_mask, int64_t n_keys,
                          int32_t* status) {
  int32_t dummy;
  if (status == nullptr) status = &dummy;
  const uint32_t kc = pardict_key_class(key_size), vc = pardict_value_class(value_size);
  // References and strings live in 8-byte words inside the caller's bytes.
  if (kc == 0 || vc == 0 || n_keys < 0 || !strings_fit(key_str_mask, key_size) ||
      !mask_fits(key_ref_mask, key_size) || !mask_fits(value_ref_mask, value_size)) {
    *status = PARDICT_ERR_INVALID;
    return nullptr;
  }
  if (too_large(n_keys, kc, vc)) {
    *status = PARDICT_ERR_NOMEM;
    return nullptr;
  }
  pardict_dict* out = nullptr;
  *status = guarded([&]() -> int32_t {
    const layout l{key_size, value_size, kc, vc, key_ref_mask, key_str_mask, value_ref_mask};
    auto d = make_dict(l, n_keys);
    if (!d) return PARDICT_ERR_INVALID;
    out = reinterpret_cast<pardict_dict*>(d.release());
    return PARDICT_OK;
  });
  return out;
}

void pardict_free(pardict_dict* d) {
  if (spoiled(d)) return;  // leaked: walking it could hang
  delete D(d);
}

void pardict_meminfo_dtor(void* payload, size_t, void*) {
  pardict_dict* d = *static_cast<pardict_dict**>(payload);
  pardict_free(d);
}

void pardict_array_view_dtor(void* payload, size_t, void*) {
  void* inner = field_at<void*>(payload, PARDICT_NB_ARRAY_MEMINFO);
  if (inner != nullptr) g_release.load(std::memory_order_relaxed)(inner);
}

int64_t pardict_len(const pardict_dict* d) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  return D(d)->size();
}

int32_t pardict_set(pardict_dict* d, const void* key, const void* value, void* old_out) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  return noting_nomem(D(d), guarded([&] { return D(d)->set(key, value, old_out); }));
}

int32_t pardict_get(const pardict_dict* d, const void* key, void* out) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  return guarded([&] { return D(d)->get(key, out); });
}

const pardict_jit_thread* pardict_jit_thread_ctx(void) {
  using pardict::detail::epoch_domain;
  // The thread's own block: every address in it is the thread's (or the process's) for the
  // thread's lifetime, which is what `const` promises the jitted caller.
  static thread_local const pardict_jit_thread block{
      pardict::capi::jit_abi_id(),   &epoch_domain::instance(),       &epoch_domain::this_thread(),
      epoch_domain::spoiled_below(), &pardict::detail::wake_sleepers, g_refs};
  return &block;
}

const pardict_jit_thread* pardict_jit_thread_for(uint64_t abi_id) {
  const pardict_jit_thread* th = pardict_jit_thread_ctx();
  // spoiled_below stays 0 unless a fork gave up waiting (epoch.hpp), after which every
  // dictionary made before it needs the C ABI's check: the whole process then takes the C call.
  return abi_id == th->abi_id && th->spoiled_below->load(std::memory_order_relaxed) == 0 ? th
                                                                                         : nullptr;
}

int32_t pardict_jit_fences(void) {
  return pardict::detail::epoch_domain::instance().asymmetric() ? 1 : 0;
}

void* pardict_jit_slot_for(uint64_t abi_id) {
  using pardict::detail::epoch_domain;
  // The id of code compiled for the other kind of fence differs in its last bit (jit.hpp): a
  // compiler barrier is not enough when the domain's scans do not run membarrier (and a full
  // fence, where they do, is not worth inlining).
  const uint64_t fences = pardict_jit_fences() != 0 ? 0 : pardict::capi::jit_symmetric_fences;
  if (pardict_jit_thread_for(abi_id ^ fences) == nullptr) return nullptr;
  epoch_domain::thread_state& ts = epoch_domain::this_thread();
  // A thread's first operation takes its slot; one that finds none free (more than max_slots
  // threads), or that is exiting, stays without and takes the C call.
  if (ts.my_slot == nullptr) {
    pardict::detail::epoch_guard take_a_slot;
  }
  return ts.my_slot;
}

void* pardict_jit_domain(void) { return &pardict::detail::epoch_domain::instance(); }

void pardict_jit_grow(pardict_dict* d, const void* key) {
  if (spoiled(d)) return;
  // A growth that fails (memory) leaves the table fuller than it should be, as for an ordinary
  // insert; the next insert that finds the budget exhausted tries again.
  (void)guarded([&] {
    D(d)->grow_for(key);
    return PARDICT_OK;
  });
}

int32_t pardict_contains(const pardict_dict* d, const void* key) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  return guarded([&] { return D(d)->contains(key); });
}

int32_t pardict_pop(pardict_dict* d, const void* key, void* out) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  return guarded([&] { return D(d)->pop(key, out); });
}

int32_t pardict_popitem(pardict_dict* d, void* key_out, void* value_out) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  return guarded([&] { return D(d)->popitem(key_out, value_out); });
}

int32_t pardict_setdefault(pardict_dict* d, const void* key, const void* dflt, void* out) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  return noting_nomem(D(d), guarded([&] { return D(d)->setdefault(key, dflt, out); }));
}

int32_t pardict_insert(pardict_dict* d, const void* key, const void* value) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  return noting_nomem(D(d), guarded([&] { return D(d)->insert(key, value); }));
}

int32_t pardict_combine(pardict_dict* d, const void* key, const void* value, int32_t op,
                        const int32_t* fields, int32_t n_fields, void* out) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  if (!combine_args_ok(D(d)->lay, op, fields, n_fields)) return PARDICT_ERR_INVALID;
  const field_combine c{to_combine_op(op), fields, n_fields};
  return noting_nomem(D(d), guarded([&] { return D(d)->combine(key, value, c, out); }));
}

int32_t pardict_combine_present(pardict_dict* d, const void* key, const void* value, int32_t op,
                                const int32_t* fields, int32_t n_fields, void* out) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  if (!combine_args_ok(D(d)->lay, op, fields, n_fields)) return PARDICT_ERR_INVALID;
  const field_combine c{to_combine_op(op), fields, n_fields};
  return guarded([&] { return D(d)->combine_present(key, value, c, out); });
}

int32_t pardict_get_many(const pardict_dict* d, const void* keys, int64_t n, void* values_out,
                         uint8_t* found_out, int32_t threads, int64_t* count_out) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  const dict_base* b = reinterpret_cast<const dict_base*>(d);
  if (!bulk_ok(b, n, values_out != nullptr) || (n > 0 && keys == nullptr))
    return PARDICT_ERR_INVALID;
  if (found_out != nullptr) std::memset(found_out, 0, static_cast<std::size_t>(n));
  const std::size_t kc = b->lay.key_class, vc = b->lay.value_class;
  std::atomic<std::int64_t> found{0};
  const int32_t s = parallel_chunks(n, threads, [&](std::size_t lo, std::size_t hi) {
    const std::size_t f = b->get_many(
        static_cast<const unsigned char*>(keys) + lo * kc, hi - lo,
        values_out != nullptr ? static_cast<unsigned char*>(values_out) + lo * vc : nullptr,
        found_out != nullptr ? found_out + lo : nullptr);
    found.fetch_add(static_cast<std::int64_t>(f));
  });
  if (count_out != nullptr) *count_out = found.load();
  return s;
}

int32_t pardict_combine_many(pardict_dict* d, const void* keys, const void* values, int64_t n,
                             int32_t op, const int32_t* fields, int32_t n_fields, int32_t threads,
                             int64_t* count_out) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  dict_base* b = D(d);
  const auto& l = b->lay;
  if (!bulk_ok(b, n) || (n > 0 && (keys == nullptr || values == nullptr)) ||
      (op != PARDICT_OP_ASSIGN && !combine_args_ok(l, op, fields, n_fields)))
    return PARDICT_ERR_INVALID;
  const std::size_t kc = l.key_class, vc = l.value_class;
  const field_combine c{to_combine_op(op), fields, n_fields};
  std::atomic<std::int64_t> inserted{0};
  const int32_t s = parallel_chunks(n, threads, [&](std::size_t lo, std::size_t hi) {
    const std::size_t k =
        b->combine_many(static_cast<const unsigned char*>(keys) + lo * kc,
                        static_cast<const unsigned char*>(values) + lo * vc, hi - lo, c);
    inserted.fetch_add(static_cast<std::int64_t>(k));
  });
  if (count_out != nullptr) *count_out = inserted.load();
  return noting_nomem(b, s);
}

int32_t pardict_load_many(pardict_dict* d, const void* keys, const void* values, int64_t n,
                          const uint32_t* seeds, const uint64_t* groups, int32_t threads,
                          int64_t* count_out) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  dict_base* b = D(d);
  if (!bulk_ok(b, n) || (n > 0 && (keys == nullptr || values == nullptr)))
    return PARDICT_ERR_INVALID;
  const std::size_t kc = b->lay.key_class, vc = b->lay.value_class;
  const auto* ks = static_cast<const unsigned char*>(keys);
  const auto* vs = static_cast<const unsigned char*>(values);
  const auto rows = static_cast<std::size_t>(n);
  // Where each shard's run starts, found by binary search as if the rows were grouped by shard.
  // Whatever the order, the runs partition the rows, and load_shard refuses a run holding a row
  // of another shard (it then goes to the ordinary path), so every row is stored exactly once.
  std::array<std::size_t, PARDICT_SHARDS + 1> start{};
  start[PARDICT_SHARDS] = rows;
  for (std::size_t s = 1; s < PARDICT_SHARDS; ++s) {
    std::size_t lo = start[s - 1], hi = rows;
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (b->shard_index(ks + mid * kc) < s) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    start[s] = lo;
  }
  // Two phases: a shard being loaded must have no other user, and a run refused by load_shard
  // may hold rows of any shard, so the refused runs go to the ordinary path only after every
  // load has finished.
  std::atomic<std::size_t> next{0};
  std::atomic<std::int64_t> inserted{0};
  std::atomic<int32_t> status{PARDICT_OK};
  std::array<std::atomic<bool>, PARDICT_SHARDS> refused{};
  const std::size_t t = worker_count(n, threads, 16384);
  on_workers(t, [&](std::size_t) noexcept {
    for (std::size_t s; (s = next.fetch_add(1)) < PARDICT_SHARDS;) {
      const std::size_t lo = start[s], m = start[s + 1] - lo;
      if (m == 0) continue;
      const int32_t st = guarded([&] {
        // The exporter's group count is capped at ~3x what m rows need, so that a foreign
        // geometry cannot ask for absurd tables; the order holds at any size (a position scales
        // with the group count).
        const std::size_t min_groups =
            groups != nullptr
                ? static_cast<std::size_t>(std::min<std::uint64_t>(groups[s], m / 2 + 16))
                : 0;
        const std::size_t k = b->load_shard(s, ks + lo * kc, vs + lo * vc, m, min_groups,
                                            seeds != nullptr ? seeds[s] : 0);
        if (k == static_cast<std::size_t>(-1)) {
          refused[s].store(true);
        } else {
          inserted.fetch_add(static_cast<std::int64_t>(k));
        }
        return PARDICT_OK;
      });
      if (st != PARDICT_OK) status.store(st);
    }
  });
  next.store(0);
  on_workers(t, [&](std::size_t) noexcept {
    for (std::size_t s; (s = next.fetch_add(1)) < PARDICT_SHARDS;) {
      if (!refused[s].load()) continue;
      const std::size_t lo = start[s], m = start[s + 1] - lo;
      const int32_t st = guarded([&] {
        inserted.fetch_add(static_cast<std::int64_t>(
            b->combine_many(ks + lo * kc, vs + lo * vc, m,
                            field_combine{to_combine_op(PARDICT_OP_ASSIGN), nullptr, 0})));
        return PARDICT_OK;
      });
      if (st != PARDICT_OK) status.store(st);
    }
  });
  if (count_out != nullptr) *count_out = inserted.load();
  return noting_nomem(b, status.load());
}

namespace {
constexpr std::size_t prefetch_distance = 8;
// Prefetches the code units and the MemInfo of every string struct of a key blob (strs: a mask of
// the words where one starts).
void prefetch_strings(const unsigned char* key, std::uint32_t strs) noexcept {
  for (; strs != 0; strs &= strs - 1) {
    const unsigned char* u = key + std::countr_zero(strs) * word_bytes;
    const void *data, *meminfo;
    std::memcpy(&data, u + PARDICT_NB_UNICODE_DATA, sizeof data);
    std::memcpy(&meminfo, u + PARDICT_NB_UNICODE_MEMINFO, sizeof meminfo);
    pardict::detail::prefetch_read(data);
    if (meminfo != nullptr) pardict::detail::prefetch_write(meminfo);
  }
}
}  // namespace

int32_t pardict_merge(pardict_dict* d, const pardict_dict* src, int32_t op, const int32_t* fields,
                      int32_t n_fields, int32_t threads, int64_t* count_out) {
  if (spoiled(d) || spoiled(src)) return PARDICT_ERR_FORKED;
  dict_base* b = D(d);
  const dict_base* o = D(src);
  const auto &l = b->lay, &m = o->lay;
  if (l.key_size != m.key_size || l.value_size != m.value_size || l.key_refs != m.key_refs ||
      l.key_strs != m.key_strs || l.value_refs != m.value_refs ||
      (op != PARDICT_OP_ASSIGN && !combine_args_ok(l, op, fields, n_fields)))
    return PARDICT_ERR_INVALID;
  // A snapshot first (references acquired): no lock of src is held while d is written, so two
  // merges in opposite directions cannot wait for each other, and merging a dict into itself
  // reads each element once.
  std::vector<unsigned char> buf;
  std::size_t n = 0;
  int32_t s = guarded([&] {
    n = o->snapshot(buf);
    return PARDICT_OK;
  });
  if (s != PARDICT_OK) return s;
  const std::size_t st = o->stride(), vo = o->value_offset();
  const field_combine c{to_combine_op(op), fields, n_fields};
  std::atomic<std::int64_t> inserted{0};
  s = parallel_chunks(static_cast<std::int64_t>(n), threads, [&](std::size_t lo, std::size_t hi) {
    std::int64_t k = 0;
    for (std::size_t i = lo; i < hi; ++i) {
      const unsigned char* e = buf.data() + i * st;
      // A string key's characters and reference count live elsewhere on the heap: fetch those of
      // a later element now, so that hashing and counting references do not wait for each miss
      // in turn (about 3x faster on 100K-word dicts).
      if (l.key_strs != 0 && i + prefetch_distance < hi)
        prefetch_strings(e + prefetch_distance * st, l.key_strs);
      if (op == PARDICT_OP_ASSIGN) {
        k += b->set_releasing(e, e + vo) == PARDICT_INSERTED;
      } else {
        k += b->combine(e, e + vo, c, nullptr) == PARDICT_NEW_KEY;
      }
    }
    inserted.fetch_add(k);
  });
  if (l.key_refs | l.value_refs) {
    for (std::size_t i = 0; i < n; ++i) {
      const unsigned char* e = buf.data() + i * st;
      release_words(e, l.key_refs);
      release_words(e + vo, l.value_refs);
    }
  }
  if (count_out != nullptr) *count_out = inserted.load();
  return noting_nomem(b, s);
}

int32_t pardict_shard_geometry(const pardict_dict* d, uint32_t* seeds_out, uint64_t* groups_out) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  if (seeds_out == nullptr || groups_out == nullptr) return PARDICT_ERR_INVALID;
  return guarded([&] {
    D(d)->shard_geometry(seeds_out, groups_out);
    return PARDICT_OK;
  });
}

int32_t pardict_combine_many_ucs4(pardict_dict* d, const void* chars, int64_t width, int64_t n,
                                  const void* values, int64_t value_stride, int32_t op,
                                  const int32_t* fields, int32_t n_fields, int32_t threads,
                                  int64_t* miss_rows, void* miss_values, int64_t* n_miss) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  dict_base* b = D(d);
  const auto& l = b->lay;
  const std::size_t vc = l.value_class;
  if (!holds_one_str(l) || n < 0 || width < 0 || !combine_args_ok(l, op, fields, n_fields) ||
      (value_stride != 0 && value_stride != static_cast<int64_t>(vc)) ||
      (n > 0 &&
       (chars == nullptr || values == nullptr || miss_rows == nullptr || miss_values == nullptr)) ||
      n_miss == nullptr)
    return PARDICT_ERR_INVALID;
  const ucs4_array rows{static_cast<const std::uint32_t*>(chars), width};
  const field_combine c{to_combine_op(op), fields, n_fields};
  auto* miss_out = static_cast<unsigned char*>(miss_values);
  std::atomic<std::int64_t> n_out{0};
  const int32_t s = parallel_chunks(n, threads, [&](std::size_t lo, std::size_t hi) {
    const word_misses m = combine_ucs4_rows(*b, rows, static_cast<const unsigned char*>(values),
                                            static_cast<std::size_t>(value_stride), lo, hi, c);
    // Each (worker, word) pair is one miss, and every worker saw at least one row per word, so
    // the caller's n slots always suffice.
    const auto count = static_cast<std::int64_t>(m.rows.size());
    const std::int64_t at = n_out.fetch_add(count);
    std::copy(m.rows.begin(), m.rows.end(), miss_rows + at);
    if (count != 0)
      std::memcpy(miss_out + static_cast<std::size_t>(at) * vc, m.values.data(), m.values.size());
  });
  *n_miss = n_out.load();
  return noting_nomem(b, s);
}

int32_t pardict_combine_many_utf8(pardict_dict* d, const void* data, int64_t data_size,
                                  const void* offsets, int32_t offset_bytes, int64_t first,
                                  int64_t n, const void* values, int64_t value_stride, int32_t op,
                                  const int32_t* fields, int32_t n_fields, int32_t threads,
                                  int64_t* miss_rows, void* miss_values, int64_t* n_miss) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  dict_base* b = D(d);
  const auto& l = b->lay;
  const std::size_t vc = l.value_class;
  if (!holds_one_str(l) || n < 0 || first < 0 || data_size < 0 ||
      (offset_bytes != 4 && offset_bytes != 8) || !combine_args_ok(l, op, fields, n_fields) ||
      (value_stride != 0 && value_stride != static_cast<int64_t>(vc)) ||
      (n > 0 && (offsets == nullptr || values == nullptr || miss_rows == nullptr ||
                 miss_values == nullptr || (data == nullptr && data_size != 0))) ||
      n_miss == nullptr || static_cast<std::uint64_t>(n) >= utf8_word_table<std::int64_t>::max_rows)
    return PARDICT_ERR_INVALID;
  *n_miss = 0;
  if (n == 0) return PARDICT_OK;
  const field_combine c{to_combine_op(op), fields, n_fields};
  auto* miss_out = static_cast<unsigned char*>(miss_values);
  std::atomic<std::int64_t> n_out{0};
  auto run = [&](const auto* offs) -> int32_t {
    offs += first;
    if (!utf8_offsets_ok(offs, n, data_size)) return PARDICT_ERR_INVALID;
    using offset_type = std::remove_cv_t<std::remove_pointer_t<decltype(offs)>>;
    using table_type = utf8_word_table<offset_type>;
    const utf8_array<offset_type> rows{static_cast<const unsigned char*>(data), offs};
    const auto* data_end = static_cast<const unsigned char*>(data) + data_size;
    const auto* vals = static_cast<const unsigned char*>(values);
    const bool counting = value_stride == 0;
    // Phase 1: every worker aggregates its share of rows per word in a private table.
    const std::size_t t = worker_count(n, threads, 16384);
    std::vector<std::unique_ptr<table_type>> tables(t);
    std::atomic<int32_t> status{PARDICT_OK};
    auto note = [&](int32_t s) {
      if (s != PARDICT_OK) status.store(s);
    };
    on_workers(t, [&](std::size_t i) noexcept {
      note(guarded([&] {
        tables[i] = std::make_unique<table_type>(rows, data_end, counting, vc);
        aggregate_utf8_rows(*tables[i], vals, static_cast<std::size_t>(value_stride),
                            static_cast<std::size_t>(n) * i / t,
                            static_cast<std::size_t>(n) * (i + 1) / t, c);
        return PARDICT_OK;
      }));
    });
    if (status.load() != PARDICT_OK) return status.load();
    // The workers' tables folded into one, so each distinct word meets the dictionary once and is
    // reported at most once (several reports of a word would each make its string).
    note(guarded([&] {
      for (std::size_t i = 1; i < t; ++i) {
        tables[0]->merge_from(*tables[i], c);
        tables[i].reset();
      }
      return PARDICT_OK;
    }));
    if (status.load() != PARDICT_OK) return status.load();
    // Phase 2: the workers combine the words of their share of the slots into the dictionary.
    const table_type& words = *tables[0];
    const std::size_t cap = words.capacity();
    on_workers(t, [&](std::size_t i) noexcept {
      note(guarded([&] {
        const word_misses m =
            combine_utf8_words(*b, words, vals, cap * i / t, cap * (i + 1) / t, c, counting);
        const auto count = static_cast<std::int64_t>(m.rows.size());
        const std::int64_t at = n_out.fetch_add(count);
        std::copy(m.rows.begin(), m.rows.end(), miss_rows + at);
        if (count != 0)
          std::memcpy(miss_out + static_cast<std::size_t>(at) * vc, m.values.data(),
                      m.values.size());
        return PARDICT_OK;
      }));
    });
    return status.load();
  };
  const int32_t s = offset_bytes == 4 ? run(static_cast<const std::int32_t*>(offsets))
                                      : run(static_cast<const std::int64_t*>(offsets));
  *n_miss = n_out.load();
  return noting_nomem(b, s);
}

int32_t pardict_get_many_ucs4(const pardict_dict* d, const void* chars, int64_t width, int64_t n,
                              void* values_out, uint8_t* found_out, int32_t threads,
                              int64_t* count_out) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  const dict_base* b = reinterpret_cast<const dict_base*>(d);
  const auto& l = b->lay;
  if (!holds_one_str(l) || n < 0 || width < 0 || (values_out != nullptr && l.value_refs != 0) ||
      (n > 0 && chars == nullptr))
    return PARDICT_ERR_INVALID;
  if (found_out != nullptr) std::memset(found_out, 0, static_cast<std::size_t>(n));
  const ucs4_array rows{static_cast<const std::uint32_t*>(chars), width};
  std::atomic<std::int64_t> found{0};
  const int32_t s = parallel_chunks(n, threads, [&](std::size_t lo, std::size_t hi) {
    const std::size_t f =
        get_ucs4_rows(*b, rows, lo, hi, static_cast<unsigned char*>(values_out), found_out);
    found.fetch_add(static_cast<std::int64_t>(f));
  });
  if (count_out != nullptr) *count_out = found.load();
  return s;
}

int32_t pardict_export_many(const pardict_dict* d, void* keys_out, void* values_out,
                            int64_t capacity, int64_t* count_out) {
  const dict_base* b = reinterpret_cast<const dict_base*>(d);
  if (!bulk_ok(b, capacity) || count_out == nullptr ||
      (capacity > 0 && (keys_out == nullptr || values_out == nullptr)))
    return PARDICT_ERR_INVALID;
  return guarded([&] {
    *count_out = static_cast<int64_t>(
        b->export_many(keys_out, values_out, static_cast<std::size_t>(capacity)));
    return PARDICT_OK;
  });
}

int32_t pardict_update(pardict_dict* d, const void* key, const void* dflt, pardict_update_fn cb,
                       void* ctx, void* out) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  if (D(d)->lay.value_refs != 0 || cb == nullptr) return PARDICT_ERR_INVALID;
  return noting_nomem(D(d), guarded([&] { return D(d)->update(key, dflt, cb, ctx, out); }));
}

int32_t pardict_visit(pardict_dict* d, const void* key, pardict_update_fn cb, void* ctx) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  if (cb == nullptr) return PARDICT_ERR_INVALID;
  return guarded([&] { return D(d)->visit(key, cb, ctx); });
}

int32_t pardict_clear(pardict_dict* d) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  return guarded([&] {
    D(d)->clear();
    D(d)->copies.release_all();
    return PARDICT_OK;
  });
}

namespace {
// The dictionary's value must be one numba array of ndim dimensions: its whole struct, holding
// one reference, or (1-D) the one-word form (unowned_copies::stores_one_word).
bool holds_arrays(const pardict_dict* d, int32_t ndim) noexcept {
  if (d == nullptr || ndim < 0 || static_cast<std::size_t>(ndim) > unowned_copies::max_ndim)
    return false;
  const auto& l = D(d)->lay;
  if (unowned_copies::stores_one_word(l.value_size, l.value_refs)) return ndim == 1;
  return l.value_size == unowned_copies::array_bytes(static_cast<std::size_t>(ndim)) &&
         l.value_refs == unowned_copies::meminfo_mask;
}
// The dictionary's value must be a 1-D array in the one-word form (views are only made there).
bool holds_views(const pardict_dict* d) noexcept {
  return d != nullptr &&
         unowned_copies::stores_one_word(D(d)->lay.value_size, D(d)->lay.value_refs);
}
}  // namespace

int32_t pardict_unowned_find(pardict_dict* d, const void* array, int32_t ndim, void* out) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  if (!holds_arrays(d, ndim) || array == nullptr || out == nullptr) return PARDICT_ERR_INVALID;
  return D(d)->copies.find(array, out) ? PARDICT_FOUND : PARDICT_ABSENT;
}

int32_t pardict_set_array(pardict_dict* d, const void* key, const void* array, int32_t ndim) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  if (!holds_arrays(d, ndim) || key == nullptr || array == nullptr) return PARDICT_ERR_INVALID;
  dict_base* db = D(d);
  return noting_nomem(
      db, guarded([&] {
        if (field_at<void*>(array, PARDICT_NB_ARRAY_MEMINFO) != nullptr)
          return db->set_releasing(key, array);
        // The stripe holding the copy stays locked while it is stored; its own reference keeps the
        // copy alive meanwhile, so the store takes the dictionary's reference and nothing else.
        return db->copies.with_copy(array, int32_t{PARDICT_NEED_COPY}, [&](const void* copy) {
          // The value blob is the class's bytes; a struct that fills its class is one already.
          const std::size_t size = db->lay.value_size, cls = db->lay.value_class;
          if (size == cls) return db->set_releasing(key, copy);
          alignas(word_bytes) unsigned char value[max_value_class];
          std::memcpy(value, copy, size);
          std::memset(value + size, 0, cls - size);
          return db->set_releasing(key, value);
        });
      }));
}

int32_t pardict_set_view(pardict_dict* d, const void* key, const void* array) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  if (!holds_views(d) || key == nullptr || array == nullptr) return PARDICT_ERR_INVALID;
  dict_base* db = D(d);
  return noting_nomem(db, guarded([&] {
                        return db->copies.with_view(array, int32_t{PARDICT_NEED_COPY},
                                                    [&](const std::uint64_t* view) {
                                                      return db->set_releasing(key, view);
                                                    });
                      }));
}

int32_t pardict_view_find(pardict_dict* d, const void* array, void** out) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  if (!holds_views(d) || array == nullptr || out == nullptr) return PARDICT_ERR_INVALID;
  return D(d)->copies.find_view(array, out) ? PARDICT_FOUND : PARDICT_ABSENT;
}

int32_t pardict_view_remember(pardict_dict* d, const void* array, void* view) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  if (!holds_views(d) || array == nullptr || view == nullptr) return PARDICT_ERR_INVALID;
  D(d)->copies.remember_view(array, view);
  return PARDICT_OK;
}

int32_t pardict_unowned_remember(pardict_dict* d, const void* array, int32_t ndim,
                                 const void* copy) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  if (!holds_arrays(d, ndim) || array == nullptr || copy == nullptr) return PARDICT_ERR_INVALID;
  D(d)->copies.remember(array, copy);
  return PARDICT_OK;
}

int32_t pardict_reserve(pardict_dict* d, int64_t n) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  if (n < 0) return PARDICT_ERR_INVALID;
  const auto& l = D(d)->lay;
  if (too_large(n, l.key_class, l.value_class)) return PARDICT_ERR_NOMEM;
  return guarded([&] {
    D(d)->reserve(n);
    return PARDICT_OK;
  });
}

pardict_dict* pardict_copy(const pardict_dict* d, int32_t* status) {
  pardict_dict* out = nullptr;
  const int32_t s = spoiled(d) ? PARDICT_ERR_FORKED : guarded([&] {
    out = reinterpret_cast<pardict_dict*>(D(d)->clone().release());
    return PARDICT_OK;
  });
  if (status != nullptr) *status = s;
  return out;
}

namespace {
// Unregisters the iterator and releases everything it holds (snapshot references, then the
// dictionary); idempotent. Afterwards only the iter_state's own memory remains.
void drain(iter_state* s) noexcept {
  dict_base* d = s->dict;
  if (d == nullptr) return;
  d->changes.close();
  const auto& l = d->lay;
  if (l.key_refs | l.value_refs) {
    const std::size_t st = d->stride(), vo = d->value_offset();
    for (std::size_t i = 0; i < s->count; ++i) {
      const unsigned char* e = s->buf.data() + i * st;
      release_words(e, l.key_refs);
      release_words(e + vo, l.value_refs);
    }
  }
  s->buf.clear();
  s->buf.shrink_to_fit();
  s->count = s->pos = 0;
  s->dict = nullptr;
  void* mi = s->dict_meminfo;
  s->dict_meminfo = nullptr;
  release_words(&mi, word0_mask);  // last: it may destroy the dictionary
}

pardict_iter* open_iter(pardict_dict* d, void* dict_meminfo, bool snapshot, int32_t* status) {
  iter_state* out = nullptr;
  const int32_t s = spoiled(d) ? PARDICT_ERR_FORKED : guarded([&] {
    auto it = std::make_unique<iter_state>();
    it->dict = D(d);
    if (dict_meminfo != nullptr) {
      incref_words(&dict_meminfo, word0_mask);
      it->dict_meminfo = dict_meminfo;
    }
    // The stamp before the snapshot: a key change after this point must be seen.
    it->stamp = D(d)->changes.open();
    try {
      if (snapshot) it->count = D(d)->snapshot(it->buf);
    } catch (...) {
      pardict_iter_free(reinterpret_cast<pardict_iter*>(it.release()));
      throw;
    }
    out = it.release();
    return PARDICT_OK;
  });
  if (status != nullptr) *status = s;
  return reinterpret_cast<pardict_iter*>(out);
}
}  // namespace

pardict_iter* pardict_iter_new(pardict_dict* d, void* dict_meminfo, int32_t* status) {
  return open_iter(d, dict_meminfo, true, status);
}

pardict_iter* pardict_watch_new(pardict_dict* d, void* dict_meminfo, int32_t* status) {
  return open_iter(d, dict_meminfo, false, status);
}

int32_t pardict_iter_next(pardict_iter* it, void** key, void** value) {
  iter_state* s = I(it);
  if (s->mutated || (s->dict != nullptr && s->dict->changes.changed_since(s->stamp))) {
    s->mutated = true;
    // The caller is about to raise. Jitted code does not unwind its live variables when a callee
    // raises, so this iterator object may never be freed: let go of the snapshot and the
    // dictionary now, so at most the small iterator itself is lost.
    drain(s);
    return PARDICT_ERR_MUTATED;
  }
  if (s->pos >= s->count) return PARDICT_ABSENT;
  unsigned char* e = s->buf.data() + s->pos * s->dict->stride();
  *key = e;
  *value = e + s->dict->value_offset();
  ++s->pos;
  return PARDICT_FOUND;
}

int64_t pardict_iter_len(const pardict_iter* it) {
  const iter_state* s = reinterpret_cast<const iter_state*>(it);
  return static_cast<int64_t>(s->count - s->pos);
}

void pardict_iter_free(pardict_iter* it) {
  iter_state* s = I(it);
  if (s == nullptr) return;
  drain(s);
  delete s;
}

void pardict_iter_meminfo_dtor(void* payload, size_t, void*) {
  pardict_iter_free(*static_cast<pardict_iter**>(payload));
}

int64_t pardict_take_alloc_failures(pardict_dict* d) {
  if (spoiled(d)) return PARDICT_ERR_FORKED;
  // A load first: the interpreter asks before every operation, and an exchange would write the
  // dictionary's line from every thread that does.
  auto& failures = D(d)->alloc_failures;
  if (failures.load(std::memory_order_relaxed) == 0) return 0;
  return failures.exchange(0, std::memory_order_relaxed);
}

int64_t pardict_live_dicts(void) { return g_live_dicts.load(); }
int64_t pardict_live_refs(void) { return live_refs(); }

}  // extern "C"
