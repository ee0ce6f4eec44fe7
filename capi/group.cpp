// pardict_group_indices: the rows of an array grouped by key, in CSR form. Needs no dictionary.
//
// The scheme, for t workers over t contiguous chunks of rows (more when a chunk would reach 2^32
// rows; worker i then takes chunks i, i + t, ...):
//  1. Each worker groups its chunk in a private open-addressing table: every row gets a local
//     group id (local ids in order of first occurrence in the chunk), and every local group its
//     first row and its row count. No locks, nothing shared.
//  2. The calling thread merges the local groups into global ids, chunk by chunk: chunk 0's ids
//     are global ids already; a later chunk's groups are looked up in that table and the new ones
//     numbered in the order the chunk first saw them. All rows of chunk c precede those of chunk
//     c + 1, so group g's first row is below group g + 1's, whatever t is.
//  3. Group sizes give the offsets; a running cursor per group, taken chunk by chunk, gives every
//     (chunk, local group) the position where its rows go.
//  4. Each worker scatters its chunk's rows to those positions in row order, so the rows of a
//     group come out ascending. The whole result is independent of t.
// Probe slots are prefetched a few rows ahead, so that the cache misses of consecutive rows
// overlap (the tables outgrow the cache when there are many groups). Large arrays, the caller's
// outputs included, are advised to use transparent huge pages before they are first touched (as
// NumPy does for its arrays): a page fault costs microseconds in a VM, and 4 KiB pages would mean
// tens of thousands of them per call at 10M rows.
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define PARDICT_GROUP_MMAP 1  // large zeroed arrays straight from the kernel
#endif

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "blob.hpp"
#include "pardict/detail/group.hpp"
#include "pardict_capi.h"
#include "ucs4_bulk.hpp"
#include "workers.hpp"

namespace pardict::capi {
namespace {

// ---- what makes two rows one group --------------------------------------------------------------

// Numeric and bool keys: canonical bits (floats: -0.0 as 0.0, one NaN) through mix64, a
// bijection, so equal hashes are equal keys and rows are never compared.
template <class T>
struct scalar_rows {
  static constexpr bool exact_hash = true;
  const T* keys;

  std::uint64_t hash(std::size_t r) const noexcept {
    if constexpr (std::is_floating_point_v<T>) {
      return detail::mix64(detail::float_bits(keys[r]));
    } else {
      return detail::mix64(static_cast<std::uint64_t>(keys[r]));
    }
  }
  bool same(std::size_t, std::size_t) const noexcept { return true; }
};

// A NumPy unicode array, read in place: `width` UCS4 code points per row, trailing NULs are
// padding. Two rows hold the same string exactly when their `width` code points are equal.
struct ucs4_rows {
  static constexpr bool exact_hash = false;
  const std::uint32_t* chars;
  std::size_t width;

  const std::uint32_t* at(std::size_t r) const noexcept { return chars + r * width; }
  std::uint64_t hash(std::size_t r) const noexcept {
    return hash_str({at(r), ucs4_length(at(r), static_cast<std::int64_t>(width)), 4});
  }
  bool same(std::size_t a, std::size_t b) const noexcept {
    return width == 0 || std::memcmp(at(a), at(b), width * sizeof(std::uint32_t)) == 0;
  }
};

// ---- memory -------------------------------------------------------------------------------------

constexpr std::size_t huge_page = std::size_t{2} << 20;

// Asks for transparent huge pages for the whole 2 MiB pages of [p, p + bytes) (a hint: the
// kernel may not have them).
void advise_huge(void* p, std::size_t bytes) noexcept {
  const auto b = (reinterpret_cast<std::uintptr_t>(p) + huge_page - 1) & ~(huge_page - 1);
  const auto e = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(huge_page - 1);
#if defined(MADV_HUGEPAGE)
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
#else
  (void)b;
  (void)e;
#endif
}

// n zeroed T: calloc'ed when small; when large, fresh pages from the kernel (zero already),
// advised to be huge.
template <class T>
class zeroed_array {
 public:
  zeroed_array() = default;
  explicit zeroed_array(std::size_t n) : bytes_(std::max<std::size_t>(n * sizeof(T), 1)) {
    static_assert(std::is_trivial_v<T>);
    if (!mapped()) {
      p_ = static_cast<T*>(std::calloc(bytes_, 1));
    } else {
#if defined(PARDICT_GROUP_MMAP)
      void* m = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m != MAP_FAILED) {
        advise_huge(m, bytes_);
        p_ = static_cast<T*>(m);
      }
#endif
    }
    if (p_ == nullptr) throw std::bad_alloc();
  }
  zeroed_array(zeroed_array&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  zeroed_array& operator=(zeroed_array&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  ~zeroed_array() {
    if (p_ == nullptr) return;
    if (!mapped()) {
      std::free(p_);
    } else {
#if defined(PARDICT_GROUP_MMAP)
      munmap(p_, bytes_);
#endif
    }
  }
  T& operator[](std::size_t i) const noexcept { return p_[i]; }

 private:
  // Large arrays come from mmap where there is one (calloc elsewhere).
  bool mapped() const noexcept {
#if defined(PARDICT_GROUP_MMAP)
    return bytes_ >= huge_page;
#else
    return false;
#endif
  }

  T* p_ = nullptr;
  std::size_t bytes_ = 0;
};

// ---- the groups of a run of rows ----------------------------------------------------------------

// Linear probing over slots (hash, id + 1, rows; id + 1 == 0 marks an empty slot), at most half
// full. Per group, by id: its hash and its first row; its row count is kept in its slot (the line
// the probe has just read) until counts() collects it. A table holds under 2^32 rows.
template <class Rows>
class group_table {
 public:
  explicit group_table(const Rows& rows) : rows_(rows) { rehash(1024); }

  // The group of a row with hash h, added (with first row `row`) if none matches; counts the row.
  std::uint32_t add_row(std::uint64_t h, std::int64_t row) {
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      slot& s = slots_[i];
      if (s.id1 == 0) return add(i, h, row);
      if (s.hash == h && (Rows::exact_hash || rows_.same(static_cast<std::size_t>(first[s.id1 - 1]),
                                                         static_cast<std::size_t>(row)))) {
        ++s.rows;
        return s.id1 - 1;
      }
    }
  }
  void prefetch(std::uint64_t h) const noexcept {
    pardict::detail::prefetch_read(&slots_[h & mask_]);
  }
  std::size_t size() const noexcept { return first.size(); }

  // The row count of every group, by id.
  std::vector<std::int64_t> counts() const {
    std::vector<std::int64_t> out(size());
    for (std::size_t i = 0; i < cap_; ++i)
      if (slots_[i].id1 != 0) out[slots_[i].id1 - 1] = slots_[i].rows;
    return out;
  }

  std::vector<std::uint64_t> hash;
  std::vector<std::int64_t> first;

 private:
  struct slot {
    std::uint64_t hash;
    std::uint32_t id1;
    std::uint32_t rows;
  };

  std::uint32_t add(std::size_t i, std::uint64_t h, std::int64_t row) {
    const std::size_t id = first.size();
    slots_[i] = {h, static_cast<std::uint32_t>(id + 1), 1};
    hash.push_back(h);
    first.push_back(row);
    if (2 * first.size() > cap_) rehash(2 * cap_);
    return static_cast<std::uint32_t>(id);
  }

  void rehash(std::size_t cap) {
    zeroed_array<slot> old(cap);
    std::swap(old, slots_);
    std::swap(cap, cap_);  // cap: the old capacity (0 at first)
    mask_ = cap_ - 1;
    for (std::size_t j = 0; j < cap; ++j) {
      const slot& s = old[j];
      if (s.id1 == 0) continue;
      std::size_t i = s.hash & mask_;
      while (slots_[i].id1 != 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  Rows rows_;
  std::size_t cap_ = 0, mask_ = 0;
  zeroed_array<slot> slots_;
};

// For j in [0, m): id = table.add_row(hash_of(j), row_of(j)), then done(j, id). The probe slot of
// item j + 16 is prefetched before item j is probed, so that the cache misses overlap.
template <class Table, class Hash, class Row, class Done>
void add_all(Table& table, std::size_t m, Hash&& hash_of, Row&& row_of, Done&& done) {
  constexpr std::size_t ahead = 16;
  std::uint64_t hs[ahead];
  for (std::size_t j = 0; j < std::min(ahead, m); ++j) {
    hs[j] = hash_of(j);
    table.prefetch(hs[j]);
  }
  for (std::size_t j = 0; j < m; ++j) {
    const std::uint64_t h = hs[j % ahead];
    if (j + ahead < m) {
      hs[j % ahead] = hash_of(j + ahead);
      table.prefetch(hs[j % ahead]);
    }
    done(j, table.add_row(h, row_of(j)));
  }
}

// ---- workers ------------------------------------------------------------------------------------

std::int32_t status_of_current_exception() noexcept {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return PARDICT_ERR_NOMEM;
  } catch (const std::length_error&) {
    return PARDICT_ERR_NOMEM;
  } catch (...) {
    return PARDICT_ERR_INTERNAL;
  }
}

// Runs work(i) for every i < t (see on_workers); rethrows a worker's failure as bad_alloc (out of
// memory) or runtime_error.
template <class Work>
void run_workers(std::size_t t, Work&& work) {
  std::atomic<std::int32_t> status{PARDICT_OK};
  on_workers(t, [&](std::size_t i) noexcept {
    try {
      work(i);
    } catch (...) {
      status.store(status_of_current_exception());
    }
  });
  if (status.load() == PARDICT_ERR_NOMEM) throw std::bad_alloc();
  if (status.load() != PARDICT_OK) throw std::runtime_error("pardict_group_indices: worker failed");
}

// ---- the four steps -----------------------------------------------------------------------------

// A chunk's groups: its table, then each group's row count (after step 3: where its next row goes)
// and, for chunks after the first, the group's global id.
template <class Rows>
struct chunk_groups {
  group_table<Rows> table;
  std::vector<std::int64_t> next;
  std::vector<std::uint32_t> global;
};

template <class Rows>
std::int64_t group_rows(const Rows& rows, std::int64_t n, std::int32_t threads,
                        std::int64_t* first_rows, std::int64_t* offsets, std::int64_t* indices) {
  // At least one chunk per worker, and under 2^32 rows per chunk (row counts and local ids are
  // 32-bit); worker i takes chunks i, i + t, ... At least 32768 rows per worker: every extra
  // chunk adds its groups to the merge.
  const std::size_t rows_n = static_cast<std::size_t>(n), t = worker_count(n, threads, 32768);
  const std::size_t k = std::max<std::size_t>(t, rows_n / 0xffffffffu + 1);
  auto lo = [&](std::size_t c) { return rows_n / k * c + std::min(c, rows_n % k); };
  zeroed_array<std::uint32_t> local(rows_n);  // each row's local id
  std::vector<chunk_groups<Rows>> parts;
  parts.reserve(k);
  for (std::size_t c = 0; c < k; ++c) parts.push_back({group_table<Rows>(rows), {}, {}});

  // 1. Local groups per chunk.
  run_workers(t, [&](std::size_t i) {
    for (std::size_t c = i; c < k; c += t) {
      const std::size_t b = lo(c);
      add_all(
          parts[c].table, lo(c + 1) - b, [&](std::size_t j) { return rows.hash(b + j); },
          [&](std::size_t j) { return static_cast<std::int64_t>(b + j); },
          [&](std::size_t j, std::uint32_t id) { local[b + j] = id; });
      parts[c].next = parts[c].table.counts();
    }
  });

  // 2. Global ids: chunk 0's table absorbs the other chunks' groups, in chunk order.
  group_table<Rows>& all = parts[0].table;
  for (std::size_t c = 1; c < k; ++c) {
    const group_table<Rows>& p = parts[c].table;
    parts[c].global.resize(p.size());
    add_all(
        all, p.size(), [&](std::size_t l) { return p.hash[l]; },
        [&](std::size_t l) { return p.first[l]; },
        [&](std::size_t l, std::uint32_t g) { parts[c].global[l] = g; });
  }
  const std::size_t groups = all.size();
  auto global_id = [&](std::size_t c, std::size_t l) -> std::size_t {
    return c == 0 ? l : parts[c].global[l];
  };

  // 3. Offsets, and where each chunk's rows of each group start.
  std::vector<std::int64_t> cursor(groups, 0);
  advise_huge(offsets, (groups + 1) * sizeof *offsets);
  advise_huge(first_rows, groups * sizeof *first_rows);
  for (std::size_t c = 0; c < k; ++c)
    for (std::size_t l = 0; l < parts[c].next.size(); ++l)
      cursor[global_id(c, l)] += parts[c].next[l];
  offsets[0] = 0;
  for (std::size_t g = 0; g < groups; ++g) {
    offsets[g + 1] = offsets[g] + cursor[g];
    cursor[g] = offsets[g];
  }
  for (std::size_t c = 0; c < k; ++c) {
    for (std::size_t l = 0; l < parts[c].next.size(); ++l) {
      std::int64_t& at = cursor[global_id(c, l)];
      const std::int64_t rows_here = parts[c].next[l];
      parts[c].next[l] = at;
      at += rows_here;
    }
  }
  std::copy(all.first.begin(), all.first.end(), first_rows);
  advise_huge(indices, rows_n * sizeof *indices);

  // 4. Every row to its place, in row order. The cursor of row r + 32's group and the line row
  // r + 16 will be written to are prefetched, so that the scattered writes overlap.
  run_workers(t, [&](std::size_t i) {
    for (std::size_t c = i; c < k; c += t) {
      std::int64_t* next = parts[c].next.data();
      const std::size_t b = lo(c), e = lo(c + 1);
      for (std::size_t r = b; r < e; ++r) {
        if (r + 32 < e) pardict::detail::prefetch_read(&next[local[r + 32]]);
        if (r + 16 < e) pardict::detail::prefetch_write(&indices[next[local[r + 16]]]);
        indices[next[local[r]]++] = static_cast<std::int64_t>(r);
      }
    }
  });
  return static_cast<std::int64_t>(groups);
}

// The C entry points' common part: argument checks and the exception barrier.
template <class Rows>
std::int32_t group_call(const Rows& rows, std::int64_t n, std::int32_t threads,
                        std::int64_t* first_rows, std::int64_t* offsets, std::int64_t* indices,
                        std::int64_t* n_groups) noexcept {
  if (n < 0 || offsets == nullptr || n_groups == nullptr ||
      (n > 0 && (first_rows == nullptr || indices == nullptr)))
    return PARDICT_ERR_INVALID;
  try {
    *n_groups = group_rows(rows, n, threads, first_rows, offsets, indices);
    return PARDICT_OK;
  } catch (...) {
    return status_of_current_exception();
  }
}

template <class T>
std::int32_t group_scalars(const void* keys, std::int64_t n, std::int32_t threads,
                           std::int64_t* first_rows, std::int64_t* offsets, std::int64_t* indices,
                           std::int64_t* n_groups) noexcept {
  if (n > 0 && keys == nullptr) return PARDICT_ERR_INVALID;
  return group_call(scalar_rows<T>{static_cast<const T*>(keys)}, n, threads, first_rows, offsets,
                    indices, n_groups);
}

}  // namespace
}  // namespace pardict::capi

using namespace pardict::capi;

extern "C" {

int32_t pardict_group_indices(const void* keys, int64_t n, int32_t kind, int32_t threads,
                              int64_t* first_rows, int64_t* offsets, int64_t* indices,
                              int64_t* n_groups) {
  using fn = std::int32_t (*)(const void*, std::int64_t, std::int32_t, std::int64_t*, std::int64_t*,
                              std::int64_t*, std::int64_t*) noexcept;
  // By pardict_kind: I8 ... I64, U8 ... U64, F32, F64.
  static constexpr fn by_kind[] = {
      nullptr,
      group_scalars<std::int8_t>,
      group_scalars<std::int16_t>,
      group_scalars<std::int32_t>,
      group_scalars<std::int64_t>,
      group_scalars<std::uint8_t>,
      group_scalars<std::uint16_t>,
      group_scalars<std::uint32_t>,
      group_scalars<std::uint64_t>,
      group_scalars<float>,
      group_scalars<double>,
  };
  static_assert(PARDICT_KIND_I8 == 1 && PARDICT_KIND_U8 == 5 && PARDICT_KIND_F64 == 10);
  if (kind < PARDICT_KIND_I8 || kind > PARDICT_KIND_F64) return PARDICT_ERR_INVALID;
  return by_kind[kind](keys, n, threads, first_rows, offsets, indices, n_groups);
}

int32_t pardict_group_indices_ucs4(const void* chars, int64_t width, int64_t n, int32_t threads,
                                   int64_t* first_rows, int64_t* offsets, int64_t* indices,
                                   int64_t* n_groups) {
  if (width < 0 || (n > 0 && width > 0 && chars == nullptr)) return PARDICT_ERR_INVALID;
  return group_call(
      ucs4_rows{static_cast<const std::uint32_t*>(chars), static_cast<std::size_t>(width)}, n,
      threads, first_rows, offsets, indices, n_groups);
}

}  // extern "C"
