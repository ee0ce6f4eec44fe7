// Bulk operations of a str-keyed dictionary over a NumPy fixed-width unicode array
// (pardict_combine_many_ucs4, pardict_get_many_ucs4): one worker's share of rows. Internal.
//
// Why a separate path: a str key holds a numba string (a MemInfo reference), which the C ABI
// cannot create, so str keys cannot take the byte-blob bulk path. What the C ABI *can* do is look
// a word up through a borrowed view of the NumPy element and combine into a stored value. Doing
// that once per row costs one shared-table operation per token; text is heavily skewed (a few
// words make most tokens), so every worker first aggregates its rows in a private table
// (preaggregate.hpp, all_keys: every distinct word, named by a row holding it), then applies one
// atomic combine per distinct word it saw. Words the dictionary does not hold yet are handed back
// (a row holding the word, its aggregated value) for the caller to insert, which it does with
// pardict_combine: each row's contribution lands exactly once, either combined here or in the
// caller's insert.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "blob.hpp"
#include "combine_fields.hpp"
#include "dict_impl.hpp"
#include "pardict_capi.h"
#include "preaggregate.hpp"

namespace pardict::capi {

// A NumPy `U<w>` element: w UCS4 code points, trailing NULs are padding (NumPy strips them).
inline std::int64_t ucs4_length(const std::uint32_t* p, std::int64_t width) noexcept {
  while (width > 0 && p[width - 1] == 0) --width;
  return width;
}

// A NumPy `U<width>` array: row r holds `width` code points at chars + r * width.
struct ucs4_array {
  const std::uint32_t* chars;
  std::int64_t width;
  const std::uint32_t* row(std::size_t r) const noexcept {
    return chars + r * static_cast<std::size_t>(width);
  }
};

// Words as pre-aggregation keys (preaggregate.hpp). A probing key points into the NumPy array;
// a kept one into this policy's own blocks, which never move, so the entries of a worker's words
// are compared against dense private memory rather than rows scattered over the input.
class ucs4_words {
 public:
  struct key_type {
    const std::uint32_t* points;
    std::int64_t length;  // in code points, padding excluded
    std::int64_t row;     // a row holding the word
  };

  static key_type at_row(const ucs4_array& a, std::size_t r) noexcept {
    const std::uint32_t* p = a.row(r);
    return {p, ucs4_length(p, a.width), static_cast<std::int64_t>(r)};
  }
  static std::uint64_t hash(const key_type& k) noexcept {
    return hash_str({k.points, k.length, ucs4_kind});
  }
  static bool equal(const key_type& a, const key_type& b) noexcept {
    return a.length == b.length &&
           std::memcmp(a.points, b.points,
                       static_cast<std::size_t>(a.length) * sizeof(*a.points)) == 0;
  }
  key_type keep(const key_type& k) {
    const auto n = static_cast<std::size_t>(k.length);
    if (n > left_) {
      const std::size_t size = std::max(n, block_points);
      blocks_.push_back(std::make_unique<std::uint32_t[]>(size));
      next_ = blocks_.back().get();
      left_ = size;
    }
    std::uint32_t* p = next_;
    std::copy(k.points, k.points + n, p);
    next_ += n;
    left_ -= n;
    return {p, k.length, k.row};
  }

 private:
  static constexpr std::size_t block_points = 1 << 16;
  std::vector<std::unique_ptr<std::uint32_t[]>> blocks_;
  std::uint32_t* next_ = nullptr;
  std::size_t left_ = 0;
};

// A key blob of the dictionary's key class holding a borrowed view of a word.
class borrowed_word {
 public:
  void point_at(const ucs4_words::key_type& k) noexcept {
    write_borrowed_ucs4(blob_, k.points, k.length);
  }
  const void* blob() const noexcept { return blob_; }

 private:
  std::uint64_t blob_[max_key_class / word_bytes] = {};  // padding past the struct stays zero
};

// What one worker's rows left for the caller to insert: a row holding each word the dictionary
// lacks, and the word's aggregated value (value class bytes each).
struct word_misses {
  std::vector<std::int64_t> rows;
  std::vector<unsigned char> values;
};

// pardict_combine_many_ucs4 for rows [lo, hi): aggregates them per word, then combines each word
// into the dictionary in one atomic step. The value of row r is at values + r * value_stride.
inline word_misses combine_ucs4_rows(dict_base& d, const ucs4_array& rows,
                                     const unsigned char* values, std::size_t value_stride,
                                     std::size_t lo, std::size_t hi, const field_combine& c) {
  preaggregate<ucs4_words, all_keys> agg(ucs4_words{}, d.lay.value_class);
  auto no_spill = [](const ucs4_words::key_type&, const unsigned char*) {};
  // Hash a batch of rows (a sequential read of the NumPy buffer) and prefetch their slots before
  // the probes, so the misses of a batch overlap.
  constexpr std::size_t batch = 16;
  ucs4_words::key_type keys[batch];
  std::uint64_t hs[batch];
  for (std::size_t r0 = lo; r0 < hi; r0 += batch) {
    const std::size_t m = std::min(batch, hi - r0);
    for (std::size_t j = 0; j < m; ++j) {
      keys[j] = ucs4_words::at_row(rows, r0 + j);
      hs[j] = ucs4_words::hash(keys[j]);
      agg.prefetch(hs[j]);
    }
    for (std::size_t j = 0; j < m; ++j)
      agg.add(keys[j], hs[j], values + (r0 + j) * value_stride, c, no_spill);
  }
  word_misses out;
  borrowed_word key;
  agg.for_each([&](const ucs4_words::key_type& k, const unsigned char* v) {
    key.point_at(k);
    if (d.combine_present(key.blob(), v, c, nullptr) == PARDICT_ABSENT) {
      out.rows.push_back(k.row);
      out.values.insert(out.values.end(), v, v + d.lay.value_class);
    }
  });
  return out;
}

// pardict_get_many_ucs4 for rows [lo, hi): batches of borrowed views go through the engine's
// prefetching bulk lookup. Returns how many were found.
inline std::size_t get_ucs4_rows(const dict_base& d, const ucs4_array& rows, std::size_t lo,
                                 std::size_t hi, unsigned char* values_out,
                                 std::uint8_t* found_out) {
  constexpr std::size_t batch = 64;
  const std::size_t kc = d.lay.key_class, vc = d.lay.value_class;
  const std::size_t key_words = kc / word_bytes;
  std::vector<std::uint64_t> keys(batch * key_words, 0);  // padding past each struct stays zero
  std::size_t found = 0;
  for (std::size_t r0 = lo; r0 < hi; r0 += batch) {
    const std::size_t m = std::min(batch, hi - r0);
    for (std::size_t j = 0; j < m; ++j) {
      const std::uint32_t* p = rows.row(r0 + j);
      write_borrowed_ucs4(keys.data() + j * key_words, p, ucs4_length(p, rows.width));
    }
    found += d.get_many(keys.data(), m, values_out != nullptr ? values_out + r0 * vc : nullptr,
                        found_out != nullptr ? found_out + r0 : nullptr);
  }
  return found;
}

}  // namespace pardict::capi
