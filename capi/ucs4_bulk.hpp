// Bulk combination of a NumPy fixed-width unicode array into a str-keyed dictionary. Internal.
//
// Why a separate path: a str key holds a numba string (a MemInfo reference), which the C ABI
// cannot create, so str keys cannot take the byte-blob bulk path. What the C ABI *can* do is look
// a word up through a borrowed view of the NumPy element (pardict_combine_present) and combine
// into a stored value. Doing that once per row costs one shared-table operation per token; text
// is heavily skewed (a few words make most tokens), so every worker first aggregates its rows
// in a private table keyed by the words' code points (no locks, no sharing, the hot words stay
// in L1/L2), then applies one atomic combine per distinct word it saw. Words the dictionary
// does not hold yet are handed back (first row, aggregated value) for the caller to insert,
// which it does with pardict_combine: each row's contribution lands exactly once, either
// combined here or in the caller's insert.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "blob.hpp"
#include "combine_fields.hpp"
#include "dict_impl.hpp"

namespace pardict::capi {

// A NumPy `U<w>` element: w UCS4 code points, trailing NULs are padding (NumPy strips them).
inline std::int64_t ucs4_length(const std::uint32_t* p, std::int64_t width) noexcept {
  while (width > 0 && p[width - 1] == 0) --width;
  return width;
}

// Per-worker aggregation: open addressing with linear probing over (tag, entry) slots; entries,
// their values and their code points live in dense arrays so the probe array stays small.
class ucs4_aggregator {
 public:
  explicit ucs4_aggregator(std::size_t value_size) : vsize_(value_size) { rehash(1024); }

  // Combines row `row` (value bytes at `v`) into its word's entry.
  void add(std::int64_t row, const std::uint32_t* word, std::int64_t len, std::uint64_t h,
           const unsigned char* v, const field_combine& c) {
    const std::uint32_t tag = static_cast<std::uint32_t>(h >> 32) | 1u;  // never 0: 0 is empty
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const std::uint64_t s = slots_[i];
      if (s == 0) {
        if (entries_.size() >= 0xfffffffeu) throw std::length_error("pardict: too many words");
        slots_[i] = (std::uint64_t{tag} << 32) | static_cast<std::uint32_t>(entries_.size() + 1);
        entries_.push_back({row, len, points_.size()});
        points_.insert(points_.end(), word, word + len);
        values_.insert(values_.end(), v, v + vsize_);
        if (2 * entries_.size() > slots_.size()) rehash(2 * slots_.size());
        return;
      }
      if (static_cast<std::uint32_t>(s >> 32) != tag) continue;
      const entry& e = entries_[static_cast<std::uint32_t>(s) - 1];
      if (e.len == len && std::memcmp(points_.data() + e.first_point, word,
                                      static_cast<std::size_t>(len) * sizeof(std::uint32_t)) == 0) {
        c.partial(values_.data() + (static_cast<std::uint32_t>(s) - 1) * vsize_, v);
        return;
      }
    }
  }

  void prefetch(std::uint64_t h) const noexcept { detail::prefetch_read(&slots_[h & mask_]); }

  std::size_t size() const noexcept { return entries_.size(); }
  std::int64_t row(std::size_t i) const noexcept { return entries_[i].row; }
  const std::uint32_t* word(std::size_t i) const noexcept {
    return points_.data() + entries_[i].first_point;
  }
  std::int64_t length(std::size_t i) const noexcept { return entries_[i].len; }
  const unsigned char* value(std::size_t i) const noexcept { return values_.data() + i * vsize_; }

 private:
  struct entry {
    std::int64_t row;  // the first row with this word
    std::int64_t len;
    std::size_t first_point;
  };

  void rehash(std::size_t cap) {
    std::vector<std::uint64_t> old(cap, 0);
    old.swap(slots_);
    mask_ = cap - 1;
    for (const std::uint64_t s : old) {
      if (s == 0) continue;
      const entry& e = entries_[static_cast<std::uint32_t>(s) - 1];
      const std::uint64_t h = hash_str({points_.data() + e.first_point, e.len, ucs4_kind});
      std::size_t i = h & mask_;
      while (slots_[i] != 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  std::size_t vsize_;
  std::size_t mask_ = 0;
  std::vector<std::uint64_t> slots_;
  std::vector<entry> entries_;
  std::vector<std::uint32_t> points_;
  std::vector<unsigned char> values_;
};

}  // namespace pardict::capi
