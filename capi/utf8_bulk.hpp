// Bulk add/min/max of a str-keyed dictionary straight from Arrow strings
// (pardict_combine_many_utf8): one worker's share of rows. Internal.
//
// The same plan as ucs4_bulk.hpp, without converting anything first: a worker aggregates its rows
// per word in a private table keyed by the UTF-8 bytes in place (utf8_word_table), and only then
// combines each distinct word into the dictionary in one atomic step through a borrowed view (the
// dictionary hashes and compares code points, so a word matches whatever kind its stored string
// has: ASCII words are viewed as 1-byte strings, others decoded to UCS4). Words the dictionary
// lacks are handed back (a row holding the word, its aggregated value) for the caller to insert;
// when several workers ran, their reports of one word are merged first (merge_utf8_misses).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "blob.hpp"
#include "combine_fields.hpp"
#include "dict_impl.hpp"
#include "pardict/hash.hpp"
#include "pardict_capi.h"
#include "ucs4_bulk.hpp"
#include "utf8.hpp"

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

// A worker's private table of words for pardict_combine_many_utf8: one entry per distinct word,
// keyed by the word's UTF-8 bytes where they lie in the Arrow buffer.
//
// Why not preaggregate<…, all_keys> as the UCS4 path: that table keeps its own copy of every word
// and compares through a pointer to it, so a probe touches the slot, the copy and the value, and
// its hash walks the bytes one word at a time through a general mixer. Here the Arrow buffer
// outlives the call, so a slot needs no copy: it holds the word's first 16 bytes (zero-padded),
// its size and a row holding it. Words of at most 16 bytes (most words of most languages in
// UTF-8) are hashed, compared and later looked up in the dictionary from the slot alone, without
// reading the buffer again (a random row's bytes are a cache and TLB miss: measured at ~20% of a
// call that read them once per distinct word); longer ones compare their tail against the stored
// row's. In counting mode (every row carries the same value, as count_many) a slot counts its rows
// itself, so a probe touches one 32-byte slot and nothing else (a separate count array cost a
// second cache miss per row); the value of a count is made once per word at the end
// (value_times). Otherwise values live in a parallel array, prefetched with the slot. Slots are
// probed linearly from the hash's top bits; the table doubles at half full.
template <class Offset>
class utf8_word_table {
 public:
  // Rows and sizes share a word: rows below 2^48 (pardict_combine_many_utf8 refuses more), and a
  // size of 2^16 - 1 or more is stored as 2^16 - 1 and compared through the offsets.
  static constexpr std::uint64_t max_rows = std::uint64_t{1} << 47;
  static constexpr std::uint64_t size_cap = 0xffff;

  struct slot {
    std::uint64_t head[2];  // the first 16 bytes of the word, zero-padded
    std::uint64_t ref;      // 0: empty; else (row + 1) | min(size, size_cap) << 48
    std::uint64_t count;    // counting mode: rows of this word
    std::int64_t row() const noexcept {
      return static_cast<std::int64_t>(ref & ((std::uint64_t{1} << 48) - 1)) - 1;
    }
  };

  // A word as probed: where it is, and its key fields.
  struct word {
    const unsigned char* bytes;
    std::uint64_t head[2];
    std::uint64_t size;
    std::uint64_t hash;
  };

  // counting: every row has the same value, and slots count rows. Otherwise values_ holds each
  // slot's partial aggregate (value_size bytes).
  utf8_word_table(const utf8_array<Offset>& a, const unsigned char* data_end, bool counting,
                  std::size_t value_size)
      : a_(a), end_(data_end), counting_(counting), vsize_(value_size) {
    resize(initial_slots);
  }

  word at_row(std::size_t r) const noexcept {
    const auto b = static_cast<std::size_t>(a_.offsets[r]);
    const auto e = static_cast<std::size_t>(a_.offsets[r + 1]);
    word w;
    w.bytes = a_.data + b;
    w.size = e - b;
    load_head(w.bytes, w.size, w.head);
    w.hash = hash(w);
    return w;
  }

  void prefetch(const word& w) const noexcept {
    const std::size_t i = w.hash >> shift_;
    detail::prefetch_write(&slots_[i]);
    if (!counting_) detail::prefetch_write(values_.data() + i * vsize_);
  }

  // Adds row r (the word w) with value bytes v (ignored when counting).
  void add(const word& w, std::int64_t r, const unsigned char* v, const field_combine& c) {
    for (std::size_t i = w.hash >> shift_;; i = (i + 1) & mask_) {
      slot& s = slots_[i];
      if (s.ref == 0) {
        occupy(s, w, r);
        if (!counting_) std::memcpy(values_.data() + i * vsize_, v, vsize_);
        if (2 * ++entries_ > slots_.size()) resize(2 * slots_.size());
        return;
      }
      if (same(s, w)) {
        if (counting_)
          ++s.count;
        else
          c.partial(values_.data() + i * vsize_, v);
        return;
      }
    }
  }

  std::size_t entries() const noexcept { return entries_; }

  // Folds another worker's table (over the same array) into this one: its counts or values
  // combined into the entries of the same words, its other words added.
  void merge_from(const utf8_word_table& o, const field_combine& c) {
    for (std::size_t j = 0; j < o.slots_.size(); ++j) {
      const slot& e = o.slots_[j];
      if (e.ref == 0) continue;
      std::size_t size = 0;
      const unsigned char* p = o.bytes_of(e, size);
      word w{p, {e.head[0], e.head[1]}, size, 0};
      w.hash = hash(w);
      const unsigned char* v = counting_ ? nullptr : o.values_.data() + j * vsize_;
      for (std::size_t i = w.hash >> shift_;; i = (i + 1) & mask_) {
        slot& s = slots_[i];
        if (s.ref == 0) {
          s = e;
          if (!counting_) std::memcpy(values_.data() + i * vsize_, v, vsize_);
          if (2 * ++entries_ > slots_.size()) resize(2 * slots_.size());
          break;
        }
        if (same(s, w)) {
          if (counting_)
            s.count += e.count;
          else
            c.partial(values_.data() + i * vsize_, v);
          break;
        }
      }
    }
  }

  // fn(slot, value bytes) for the entries in slots [lo, hi) of the slot array (value bytes
  // nullptr when counting: the slot counts).
  template <class Fn>
  void for_each_in(std::size_t lo, std::size_t hi, Fn&& fn) const {
    for (std::size_t i = lo; i < hi && i < slots_.size(); ++i) {
      const slot& s = slots_[i];
      if (s.ref != 0) fn(s, counting_ ? nullptr : values_.data() + i * vsize_);
    }
  }
  std::size_t capacity() const noexcept { return slots_.size(); }

  // The bytes of an entry's word: in the slot (`head`, which the caller provides room for) when
  // they fit, else in the Arrow buffer.
  const unsigned char* bytes_of(const slot& s, std::size_t& size) const noexcept {
    size = static_cast<std::size_t>(s.ref >> 48);
    if (size <= 16) return reinterpret_cast<const unsigned char*>(s.head);
    const auto r = static_cast<std::size_t>(s.row());
    const auto b = static_cast<std::size_t>(a_.offsets[r]);
    size = static_cast<std::size_t>(a_.offsets[r + 1]) - b;
    return a_.data + b;
  }

 private:
  static constexpr std::size_t initial_slots = 4096;  // 128 KiB: most chunks' hot words

  static void occupy(slot& s, const word& w, std::int64_t r) noexcept {
    s = {{w.head[0], w.head[1]},
         static_cast<std::uint64_t>(r + 1) | std::min(w.size, size_cap) << 48,
         1};
  }

  // The word's first 16 bytes, zero-padded. Unless the word lies in the buffer's last 15 bytes,
  // two 8-byte reads and a mask from a table by length: word lengths vary from row to row, so a
  // branch on the length would be mispredicted about every other row (~6 ns of the ~15 a row
  // costs here).
  void load_head(const unsigned char* p, std::uint64_t n, std::uint64_t* head) const noexcept {
    if (std::endian::native == std::endian::little && end_ - p >= 16) [[likely]] {
      std::memcpy(&head[0], p, 8);
      std::memcpy(&head[1], p + 8, 8);
      const auto& m = head_masks[std::min<std::uint64_t>(n, 16)];
      head[0] &= m[0];
      head[1] &= m[1];
      return;
    }
    unsigned char buf[16] = {};
    std::memcpy(buf, p, static_cast<std::size_t>(std::min<std::uint64_t>(n, 16)));
    std::memcpy(&head[0], buf, 8);
    std::memcpy(&head[1], buf + 8, 8);
  }

  // head_masks[n]: the bits of the first n bytes of two little-endian words.
  static constexpr auto head_masks = [] {
    std::array<std::array<std::uint64_t, 2>, 17> m{};
    for (unsigned n = 0; n <= 16; ++n)
      for (unsigned i = 0; i < n; ++i) m[n][i / 8] |= std::uint64_t{0xff} << (8 * (i % 8));
    return m;
  }();

  // Seeded per table, as the engine's tables are (concurrent_table.hpp, "Layout"): the words a
  // call hands back (its misses) come in its table's slot order, sorted by hash, and pardict.dask
  // feeds them to another call (word partials aggregated again). Unseeded, they would all land
  // in the first slots of its table while it is small and grows: runs that every insert walks,
  // quadratic (8 partials of 100K words, 800K rows: 0.23 s instead of 0.04 s).
  std::uint64_t hash(const word& w) const noexcept {
    std::uint64_t h =
        (w.head[0] ^ (w.size * 0xc2b2ae3d27d4eb4fULL) ^ seed_) * 0x9e3779b97f4a7c15ULL;
    h ^= std::rotl(w.head[1] * 0xbf58476d1ce4e5b9ULL, 29);
    for (std::uint64_t i = 16; i < w.size; i += 8) {  // the tail of a long word
      std::uint64_t t = 0;
      std::memcpy(&t, w.bytes + i,
                  static_cast<std::size_t>(std::min<std::uint64_t>(8, w.size - i)));
      h = std::rotl((h ^ t) * 0x9e3779b97f4a7c15ULL, 31);
    }
    return detail::mix64(h);
  }

  bool same(const slot& s, const word& w) const noexcept {
    if (s.head[0] != w.head[0] || s.head[1] != w.head[1] ||
        (s.ref >> 48) != std::min(w.size, size_cap))
      return false;
    if (w.size <= 16) return true;
    const auto r = static_cast<std::size_t>(s.row());
    const auto b = static_cast<std::size_t>(a_.offsets[r]);
    if (static_cast<std::size_t>(a_.offsets[r + 1]) - b != w.size) return false;
    return std::memcmp(a_.data + b + 16, w.bytes + 16, static_cast<std::size_t>(w.size - 16)) == 0;
  }

  void resize(std::size_t cap) {
    std::vector<slot> old_slots(cap);
    std::vector<unsigned char> old_values(counting_ ? 0 : cap * vsize_);
    old_slots.swap(slots_);
    old_values.swap(values_);
    mask_ = cap - 1;
    shift_ = 64 - static_cast<unsigned>(std::countr_zero(cap));
    for (std::size_t j = 0; j < old_slots.size(); ++j) {
      const slot& o = old_slots[j];
      if (o.ref == 0) continue;
      std::size_t size = 0;
      const unsigned char* p = bytes_of(o, size);
      word w{p, {o.head[0], o.head[1]}, size, 0};
      std::size_t i = hash(w) >> shift_;
      while (slots_[i].ref != 0) i = (i + 1) & mask_;
      slots_[i] = o;
      if (!counting_)
        std::memcpy(values_.data() + i * vsize_, old_values.data() + j * vsize_, vsize_);
    }
  }

  std::uint64_t seed_ = detail::mix64(detail::fresh_table_seed());
  utf8_array<Offset> a_;
  const unsigned char* end_;
  bool counting_;
  std::size_t vsize_;
  std::vector<slot> slots_;
  std::vector<unsigned char> values_;
  std::size_t mask_ = 0;
  unsigned shift_ = 64;
  std::size_t entries_ = 0;
};

// v combined with itself `times` times (times >= 1) by c: the aggregate of `times` rows that all
// carry v. add doubles in O(log times) steps (exact for integer counts of 1.0 below 2^53); min and
// max of equal values is v.
inline void value_times(const unsigned char* v, std::uint64_t times, const field_combine& c,
                        std::size_t size, unsigned char* out) {
  std::memcpy(out, v, size);
  if (c.op != combine_op::add || times <= 1) return;
  unsigned char power[max_value_class];
  std::memcpy(power, v, size);
  for (std::uint64_t rest = times - 1; rest != 0; rest >>= 1) {
    if (rest & 1) c.partial(out, power);
    if (rest > 1) c.partial(power, power);
  }
}

// A word as a borrowed numba string for hashing and comparing against the dictionary's keys (see
// borrowed_word): ASCII words point at their bytes as a 1-byte kind, others are decoded to UCS4.
class borrowed_utf8 {
 public:
  const void* view(const unsigned char* p, std::size_t size) {
    bool ascii = true;
    for (std::size_t i = 0; i < size; ++i) ascii &= p[i] < 0x80;
    if (ascii) {
      write_unicode_struct(blob_, p, static_cast<std::int64_t>(size), 1, 1, nullptr);
    } else {
      if (points_.size() < size + 1) points_.resize(size + 1);
      const auto length = static_cast<std::int64_t>(
          utf8_decode(p, 0, static_cast<std::int64_t>(size), points_.data(), size));
      write_unicode_struct(blob_, points_.data(), length, ucs4_kind, 0, nullptr);
    }
    return blob_;
  }

 private:
  std::uint64_t blob_[max_key_class / word_bytes] = {};  // padding past the struct stays zero
  std::vector<std::uint32_t> points_ = std::vector<std::uint32_t>(64);
};

// Phase 1 of pardict_combine_many_utf8 for rows [lo, hi) (one worker): aggregates them per word
// into `table`. The value of row r is at values + r * value_stride (ignored when counting).
template <class Offset>
void aggregate_utf8_rows(utf8_word_table<Offset>& table, const unsigned char* values,
                         std::size_t value_stride, std::size_t lo, std::size_t hi,
                         const field_combine& c) {
  // Hash a batch of rows (a sequential read of the offsets and bytes) and prefetch their slots
  // before the probes, so the cache misses of a batch overlap.
  constexpr std::size_t batch = 16;
  typename utf8_word_table<Offset>::word words[batch];
  for (std::size_t r0 = lo; r0 < hi; r0 += batch) {
    const std::size_t m = std::min(batch, hi - r0);
    for (std::size_t j = 0; j < m; ++j) {
      words[j] = table.at_row(r0 + j);
      table.prefetch(words[j]);
    }
    for (std::size_t j = 0; j < m; ++j)
      table.add(words[j], static_cast<std::int64_t>(r0 + j), values + (r0 + j) * value_stride, c);
  }
}

// Phase 2 (one worker): combines the words in slots [lo, hi) of the (merged) table into the
// dictionary, one atomic step per word; returns those the dictionary lacks. When counting, a
// word's value is `value` combined with itself once per row it had.
template <class Offset>
word_misses combine_utf8_words(dict_base& d, const utf8_word_table<Offset>& table,
                               const unsigned char* value, std::size_t lo, std::size_t hi,
                               const field_combine& c, bool counting) {
  const std::size_t vc = d.lay.value_class;
  word_misses out;
  borrowed_utf8 key;
  unsigned char made[max_value_class];
  using slot = typename utf8_word_table<Offset>::slot;
  table.for_each_in(lo, hi, [&](const slot& e, const unsigned char* v) {
    if (counting) {
      value_times(value, e.count, c, vc, made);
      v = made;
    }
    std::size_t size = 0;
    const unsigned char* p = table.bytes_of(e, size);
    if (d.combine_present(key.view(p, size), v, c, nullptr) == PARDICT_ABSENT) {
      out.rows.push_back(e.row());
      out.values.insert(out.values.end(), v, v + vc);
    }
  });
  return out;
}

}  // namespace pardict::capi
