// Pre-aggregation for the bulk adds (add, min, max): rows are combined per key in a table private
// to one worker before they reach the shared dictionary. Internal.
//
// Every row of a bulk add pays one shared-table operation, and skewed keys (a few keys carry most
// rows) also make the workers fight over the hot elements' locks. Combining the rows of a key
// privately first, with no locks and no sharing, turns most of those operations into a combine in
// L1/L2. One table serves both bulk paths; a policy says what a key that finds no room does:
//
// * hot_keys (pardict_combine_many, fixed-size keys): a fixed, direct-mapped table, L2-sized,
//   that keeps only the frequent keys. A key holds its slot while it is hit more often than the
//   slot is contested (a counter in the Misra-Gries style); the rows of keys that do not stay,
//   and an occupant that loses its slot, are handed back (`spill`) to go to the dictionary
//   through its prefetching bulk path. The caller stops using the table when the first rows show
//   it does not pay (near-uniform keys).
// * all_keys (pardict_combine_many_ucs4, words): a table that grows, so every distinct key gets
//   an entry. Text is skewed enough that a worker's distinct words fit in cache, and words cannot
//   take the dictionary's bulk path anyway (see ucs4_bulk.hpp).
//
// Entries are combined with field_combine::partial, so a NaN that arrives first does not hide the
// rows after it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "blob.hpp"
#include "combine_fields.hpp"
#include "pardict/detail/group.hpp"
#include "pardict/hash.hpp"

namespace pardict::capi {

struct hot_keys {
  static constexpr bool bounded = true;
  static constexpr std::size_t max_entry_bytes = 32;  // larger keys and values skip the table
  static constexpr std::size_t slots = 16384;         // 384 KiB for 8-byte keys and values: fits L2
  static constexpr std::size_t min_rows = 16384;      // fewer rows go straight to the dictionary
  static constexpr std::size_t probe_rows = 32768;    // rows judged before deciding
  static constexpr std::size_t batch = 2048;          // rows spilled to the dictionary at a time
  // Whether the table pays: at least one row in 8 combined into an entry.
  static constexpr bool pays(std::size_t hits, std::size_t rows) noexcept {
    return hits * 8 >= rows;
  }
};

struct all_keys {
  static constexpr bool bounded = false;
  static constexpr std::size_t slots = 1024;  // to start with; doubles at half full
};

// Keys of fixed size (the C ABI's key blobs), compared by their bytes.
template <class K>
struct blob_keys {
  using key_type = K;
  static std::uint64_t hash(const K& k) noexcept {
    std::uint64_t w[(sizeof(K) + word_bytes - 1) / word_bytes] = {};
    std::memcpy(w, &k, sizeof(K));
    std::uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (const std::uint64_t x : w) h = detail::mix64(h ^ x);
    return h;
  }
  static bool equal(const K& a, const K& b) noexcept { return std::memcmp(&a, &b, sizeof(K)) == 0; }
  static const K& keep(const K& k) noexcept { return k; }
};

// Keys: a key policy: key_type, hash(key), equal(key, key), and keep(key), the key an entry
// stores for a probing one (a copy that lives as long as the policy). Policy: hot_keys or
// all_keys.
template <class Keys, class Policy>
class preaggregate {
 public:
  using key_type = typename Keys::key_type;

  preaggregate(Keys keys, std::size_t value_size)
      : keys_(std::move(keys)),
        vsize_(value_size),
        mask_(Policy::slots - 1),
        slots_(Policy::slots),
        values_(Policy::slots * value_size) {
    static_assert((Policy::slots & (Policy::slots - 1)) == 0, "a power of two");
  }

  // Combines a row (value bytes v) into key k's entry, h being keys.hash(k). With hot_keys, a
  // row that gets no entry, or the entry it displaces, goes to spill(key, value bytes) instead.
  template <class Spill>
  void add(const key_type& k, std::uint64_t h, const unsigned char* v, const field_combine& c,
           Spill&& spill) {
    const auto tag = static_cast<std::uint32_t>(h >> 32);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      slot& s = slots_[i];
      if (s.score == 0) {
        occupy(i, k, tag, v);
        if constexpr (!Policy::bounded) {
          if (2 * ++entries_ > slots_.size()) rehash(2 * slots_.size());
        }
        return;
      }
      if (s.tag == tag && keys_.equal(s.key, k)) {
        c.partial(value(i), v);
        if (Policy::bounded && s.score < max_score) ++s.score;
        ++hits_;
        return;
      }
      if constexpr (Policy::bounded) {  // direct-mapped: the row contests the slot
        if (--s.score == 0) {           // contested more often than hit: the occupant goes
          spill(s.key, static_cast<const unsigned char*>(value(i)));
          occupy(i, k, tag, v);
        } else {
          spill(k, v);
        }
        return;
      }
    }
  }

  void prefetch(std::uint64_t h) const noexcept {
    detail::prefetch_read(&slots_[h & mask_]);
    detail::prefetch_read(values_.data() + (h & mask_) * vsize_);
  }

  // Rows combined into an entry that already existed.
  std::size_t hits() const noexcept { return hits_; }

  // fn(key, value bytes) for every entry.
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (slots_[i].score != 0) fn(slots_[i].key, values_.data() + i * vsize_);
  }

 private:
  static constexpr std::int32_t max_score = 1 << 30;

  struct slot {
    key_type key;
    std::uint32_t tag;   // hash bits 32..63
    std::int32_t score;  // 0: empty; hot_keys: hits minus contests, plus one
  };

  void* value(std::size_t i) noexcept { return values_.data() + i * vsize_; }

  void occupy(std::size_t i, const key_type& k, std::uint32_t tag, const unsigned char* v) {
    slots_[i] = {keys_.keep(k), tag, 1};
    std::memcpy(value(i), v, vsize_);
  }

  void rehash(std::size_t cap) {
    std::vector<slot> old_slots(cap);
    std::vector<unsigned char> old_values(cap * vsize_);
    old_slots.swap(slots_);
    old_values.swap(values_);
    mask_ = cap - 1;
    for (std::size_t j = 0; j < old_slots.size(); ++j) {
      if (old_slots[j].score == 0) continue;
      std::size_t i = keys_.hash(old_slots[j].key) & mask_;
      while (slots_[i].score != 0) i = (i + 1) & mask_;
      slots_[i] = old_slots[j];
      std::memcpy(value(i), old_values.data() + j * vsize_, vsize_);
    }
  }

  Keys keys_;
  std::size_t vsize_;
  std::size_t mask_;
  std::vector<slot> slots_;
  std::vector<unsigned char> values_;
  std::size_t entries_ = 0;
  std::size_t hits_ = 0;
};

}  // namespace pardict::capi
