// Bulk add/min/max of a str-keyed dictionary straight from Arrow strings
// (pardict_combine_many_utf8): one worker's share of rows. Internal.
//
// The same plan as ucs4_bulk.hpp, without converting anything first: a worker aggregates its rows
// per word in a private table (preaggregate.hpp, all_keys) keyed by the UTF-8 bytes in place, and
// only then decodes each distinct word once to code points, to combine it into the dictionary in
// one atomic step through a borrowed view (the dictionary hashes and compares code points, so a
// word matches whatever kind its stored string has). Words the dictionary lacks are handed back
// (a row holding the word, its aggregated value) for the caller to insert.
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
#include "pardict/hash.hpp"
#include "pardict_capi.h"
#include "preaggregate.hpp"
#include "ucs4_bulk.hpp"

namespace pardict::capi {

// An Arrow string array's layout: string r (r < n) is data[offsets[first + r] .. offsets[first +
// r + 1]), the offsets being int32 (string) or int64 (large_string).
template <class Offset>
struct utf8_array {
  const unsigned char* data;
  const Offset* offsets;  // already advanced by `first`
};

// Whether every string's offsets are ordered and inside the data.
template <class Offset>
bool utf8_offsets_ok(const Offset* offsets, std::int64_t n, std::int64_t data_size) noexcept {
  if (offsets[0] < 0) return false;
  for (std::int64_t i = 0; i < n; ++i)
    if (offsets[i + 1] < offsets[i]) return false;
  return static_cast<std::int64_t>(offsets[n]) <= data_size;
}

// Decodes UTF-8 into code points (out has room for `size` points: never more than bytes).
// Malformed UTF-8 (Arrow validates its strings, so only a foreign buffer has it) decodes to U+FFFD
// per bad byte, as pardict.dask's NumPy conversion does. Returns the number of code points.
inline std::int64_t decode_utf8(const unsigned char* p, std::size_t size,
                                std::uint32_t* out) noexcept {
  std::size_t j = 0;
  std::int64_t k = 0;
  while (j < size) {
    const unsigned char b = p[j];
    std::uint32_t c;
    int extra;
    if (b < 0x80) {
      c = b;
      extra = 0;
    } else if ((b & 0xE0) == 0xC0) {
      c = b & 0x1Fu;
      extra = 1;
    } else if ((b & 0xF0) == 0xE0) {
      c = b & 0x0Fu;
      extra = 2;
    } else if ((b & 0xF8) == 0xF0) {
      c = b & 0x07u;
      extra = 3;
    } else {
      c = 0xFFFD;
      extra = 0;
    }
    ++j;
    for (int e = 0; e < extra; ++e, ++j) {
      if (j >= size || (p[j] & 0xC0) != 0x80) {
        c = 0xFFFD;
        break;
      }
      c = (c << 6) | (p[j] & 0x3Fu);
    }
    out[k++] = c;
  }
  return k;
}

// Words as pre-aggregation keys: their UTF-8 bytes, in the Arrow buffer while probing, in this
// policy's own blocks (which never move) once kept.
class utf8_words {
 public:
  struct key_type {
    const unsigned char* bytes;
    std::int64_t size;
    std::int64_t row;  // a row holding the word
  };

  static std::uint64_t hash(const key_type& k) noexcept {
    const auto n = static_cast<std::size_t>(k.size);
    std::uint64_t h = detail::mix64(static_cast<std::uint64_t>(k.size) + 0x2545f4914f6cdd1dULL);
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      std::uint64_t w;
      std::memcpy(&w, k.bytes + i, 8);
      h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
      h ^= h >> 29;
    }
    if (i < n) {
      std::uint64_t w = 0;
      std::memcpy(&w, k.bytes + i, n - i);
      h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    }
    return detail::mix64(h);
  }
  static bool equal(const key_type& a, const key_type& b) noexcept {
    return a.size == b.size &&
           (a.size == 0 || std::memcmp(a.bytes, b.bytes, static_cast<std::size_t>(a.size)) == 0);
  }
  key_type keep(const key_type& k) {
    const auto n = static_cast<std::size_t>(k.size);
    if (n > left_) {
      const std::size_t size = std::max(n, block_bytes);
      blocks_.push_back(std::make_unique<unsigned char[]>(size));
      next_ = blocks_.back().get();
      left_ = size;
    }
    unsigned char* p = next_;
    if (n != 0) std::memcpy(p, k.bytes, n);
    next_ += n;
    left_ -= n;
    return {p, k.size, k.row};
  }

 private:
  static constexpr std::size_t block_bytes = 1 << 18;
  std::vector<std::unique_ptr<unsigned char[]>> blocks_;
  unsigned char* next_ = nullptr;
  std::size_t left_ = 0;
};

// pardict_combine_many_utf8 for rows [lo, hi): aggregates them per word, then combines each word
// into the dictionary in one atomic step. The value of row r is at values + r * value_stride.
template <class Offset>
word_misses combine_utf8_rows(dict_base& d, const utf8_array<Offset>& a,
                              const unsigned char* values, std::size_t value_stride, std::size_t lo,
                              std::size_t hi, const field_combine& c) {
  preaggregate<utf8_words, all_keys> agg(utf8_words{}, d.lay.value_class);
  auto no_spill = [](const utf8_words::key_type&, const unsigned char*) {};
  constexpr std::size_t batch = 16;
  utf8_words::key_type keys[batch];
  std::uint64_t hs[batch];
  for (std::size_t r0 = lo; r0 < hi; r0 += batch) {
    const std::size_t m = std::min(batch, hi - r0);
    for (std::size_t j = 0; j < m; ++j) {
      const std::size_t r = r0 + j;
      const auto b = static_cast<std::size_t>(a.offsets[r]);
      const auto e = static_cast<std::size_t>(a.offsets[r + 1]);
      keys[j] = {a.data + b, static_cast<std::int64_t>(e - b), static_cast<std::int64_t>(r)};
      hs[j] = utf8_words::hash(keys[j]);
      agg.prefetch(hs[j]);
    }
    for (std::size_t j = 0; j < m; ++j)
      agg.add(keys[j], hs[j], values + (r0 + j) * value_stride, c, no_spill);
  }
  word_misses out;
  borrowed_word key;
  std::vector<std::uint32_t> points(64);
  agg.for_each([&](const utf8_words::key_type& k, const unsigned char* v) {
    const auto size = static_cast<std::size_t>(k.size);
    if (points.size() < size + 1) points.resize(size + 1);
    const std::int64_t length = decode_utf8(k.bytes, size, points.data());
    key.point_at({points.data(), length, k.row});
    if (d.combine_present(key.blob(), v, c, nullptr) == PARDICT_ABSENT) {
      out.rows.push_back(k.row);
      out.values.insert(out.values.end(), v, v + d.lay.value_class);
    }
  });
  return out;
}

}  // namespace pardict::capi
