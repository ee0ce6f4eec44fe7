// Key and value representations behind the C ABI: fixed-size byte blobs in size classes, with
// hashing and equality that understand numba unicode strings embedded in keys. Internal.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include "pardict/hash.hpp"
#include "pardict_capi.h"

namespace pardict::capi {

// The unit of the C ABI's masks: bit i of a reference or string mask names the word at byte
// offset word_bytes * i.
inline constexpr std::size_t word_bytes = sizeof(std::uint64_t);

// The T whose bytes start at p, which need not be aligned for T (a blob, a caller's buffer).
template <class T>
inline T load_as(const void* p) noexcept {
  T t;
  std::memcpy(&t, p, sizeof(T));
  return t;
}
// Masks are 32 bits wide: they can name words 0 to 31.
inline constexpr unsigned mask_bits = 32;
// The mask naming word 0 alone (a blob that is one reference; a key that is one string).
inline constexpr std::uint32_t word0_mask = 1;

// W 64-bit words. Trivially copyable, so the engine can read it optimistically when the blob
// carries no references.
template <std::size_t W>
struct words {
  std::uint64_t w[W];
  friend bool operator==(const words& a, const words& b) noexcept {
    return std::memcmp(a.w, b.w, sizeof a.w) == 0;
  }
};

// The stored blob of each key class and value class (pardict_key_class, pardict_value_class):
// the type of that size.
using key_blobs = std::tuple<std::uint32_t, std::uint64_t, words<2>, words<4>, words<8>, words<16>>;
using value_blobs = std::tuple<std::uint32_t, std::uint64_t, words<2>, words<4>, words<7>, words<8>,
                               words<16>, words<32>>;
inline constexpr std::uint32_t max_key_class = sizeof(words<16>);
inline constexpr std::uint32_t max_value_class = sizeof(words<32>);

// Calls fn(std::type_identity<T>{}) for the first element T of the std::tuple List, at index I,
// for which pick(I, std::type_identity<T>{}) holds. Returns whether there was one.
template <class List, class Pick, class Fn>
bool with_element_where(Pick&& pick, Fn&& fn) {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return ((pick(I, std::type_identity<std::tuple_element_t<I, List>>{}) &&
             (fn(std::type_identity<std::tuple_element_t<I, List>>{}), true)) ||
            ...);
  }
  (std::make_index_sequence<std::tuple_size_v<List>>{});
}

// A `pick` for with_element_where: the type of `size` bytes.
inline auto of_size(std::size_t size) noexcept {
  return [size]<class T>(std::size_t, std::type_identity<T>) { return sizeof(T) == size; };
}

// ---- numba unicode strings inside key blobs -----------------------------------------------------

// numba's unicode struct (numba/core/datamodel/models.py UnicodeModel; byte offsets in
// pardict_capi.h's pardict_numba_layout), in words.
inline constexpr unsigned unicode_words = PARDICT_NB_UNICODE_SIZE / word_bytes;
// The `kind` of a string of UCS4 code points (numba's PY_UNICODE_4BYTE_KIND: bytes per point).
inline constexpr std::int32_t ucs4_kind = sizeof(std::uint32_t);

struct str_view {
  const void* data;
  std::int64_t length;
  std::uint32_t kind;  // bytes per code point: 1, 2 or 4
};

template <class T>
T field_at(const void* record, std::size_t offset) noexcept {
  T t;
  std::memcpy(&t, static_cast<const unsigned char*>(record) + offset, sizeof t);
  return t;
}

inline str_view str_at(const std::uint64_t* w) noexcept {
  return {field_at<const void*>(w, PARDICT_NB_UNICODE_DATA),
          field_at<std::int64_t>(w, PARDICT_NB_UNICODE_LENGTH),
          field_at<std::uint32_t>(w, PARDICT_NB_UNICODE_KIND)};
}

// Writes at `at` (PARDICT_NB_UNICODE_SIZE bytes) a numba unicode struct of `length` code units
// of `kind` bytes at `data`, owned by `meminfo` (null: borrowed), with no parent and its hash not
// computed yet (-1), as numba's own strings start.
inline void write_unicode_struct(void* at, const void* data, std::int64_t length, std::int32_t kind,
                                 std::int32_t is_ascii, void* meminfo) noexcept {
  auto* b = static_cast<unsigned char*>(at);
  const std::int64_t no_hash = -1;
  std::memset(b, 0, PARDICT_NB_UNICODE_SIZE);
  std::memcpy(b + PARDICT_NB_UNICODE_DATA, &data, sizeof data);
  std::memcpy(b + PARDICT_NB_UNICODE_LENGTH, &length, sizeof length);
  std::memcpy(b + PARDICT_NB_UNICODE_KIND, &kind, sizeof kind);
  std::memcpy(b + PARDICT_NB_UNICODE_IS_ASCII, &is_ascii, sizeof is_ascii);
  std::memcpy(b + PARDICT_NB_UNICODE_HASH, &no_hash, sizeof no_hash);
  std::memcpy(b + PARDICT_NB_UNICODE_MEMINFO, &meminfo, sizeof meminfo);
}

// A struct that borrows `length` UCS4 code points from `points`: no MemInfo (nothing owns the
// memory). Such a key is only hashed and compared, never stored.
inline void write_borrowed_ucs4(void* at, const std::uint32_t* points,
                                std::int64_t length) noexcept {
  write_unicode_struct(at, points, length, ucs4_kind, 0, nullptr);
}

// fn(units): the string's code units as an array of their type (a kind is the bytes of a unit).
template <class Fn>
auto with_code_units(const str_view& s, Fn&& fn) {
  switch (s.kind) {
    case sizeof(std::uint8_t):
      return fn(static_cast<const std::uint8_t*>(s.data));
    case sizeof(std::uint16_t):
      return fn(static_cast<const std::uint16_t*>(s.data));
    default:
      return fn(static_cast<const std::uint32_t*>(s.data));
  }
}

inline std::uint32_t code_point(const str_view& s, std::int64_t i) noexcept {
  return with_code_units(s, [i](const auto* p) -> std::uint32_t { return p[i]; });
}

// Hash by code points, not bytes: numba does not promise the narrowest kind (a slice of a wide
// string stays wide), and equal strings must hash alike whatever their kind.
template <class Unit>
std::uint64_t hash_code_points(const Unit* p, std::int64_t n, std::uint64_t h) noexcept {
  std::int64_t i = 0;
  for (; i + 2 <= n; i += 2) {
    const std::uint64_t pair = std::uint64_t{p[i]} | (std::uint64_t{p[i + 1]} << 32);
    h = (h ^ pair) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
  }
  if (i < n) h = (h ^ std::uint64_t{p[i]}) * 0x9e3779b97f4a7c15ULL;
  return h;
}

inline std::uint64_t hash_str(const str_view& s) noexcept {
  const std::uint64_t seed = detail::mix64(static_cast<std::uint64_t>(s.length) + 0x51ed27u);
  return detail::mix64(with_code_units(
      s, [&](const auto* p) -> std::uint64_t { return hash_code_points(p, s.length, seed); }));
}

inline bool equal_str(const str_view& a, const str_view& b) noexcept {
  if (a.length != b.length) return false;
  if (a.kind == b.kind) {
    return a.length == 0 ||
           std::memcmp(a.data, b.data, static_cast<std::size_t>(a.length) * a.kind) == 0;
  }
  for (std::int64_t i = 0; i < a.length; ++i)
    if (code_point(a, i) != code_point(b, i)) return false;
  return true;
}

// Which words of a key blob are plain bytes and which start a string (bit i: word i).
struct key_layout {
  std::uint32_t str_mask = 0;
  std::uint32_t plain_mask = ~0u;

  static key_layout make(std::uint32_t str_mask, unsigned nwords) noexcept {
    key_layout l;
    l.str_mask = str_mask;
    l.plain_mask = nwords >= mask_bits ? ~0u : ((1u << nwords) - 1);
    for (std::uint32_t m = str_mask; m != 0; m &= m - 1) {
      const unsigned i = static_cast<unsigned>(std::countr_zero(m));
      for (unsigned j = i; j < i + unicode_words && j < mask_bits; ++j) l.plain_mask &= ~(1u << j);
    }
    return l;
  }
};

struct blob_hash {
  key_layout layout;
  template <std::size_t W>
  std::uint64_t operator()(const words<W>& k) const noexcept {
    std::uint64_t h = 0x2545f4914f6cdd1dULL;
    if (layout.str_mask == 0) {
      for (std::size_t i = 0; i < W; ++i) h = detail::hash_combine(h, k.w[i]);
      return h;
    }
    for (std::size_t i = 0; i < W; ++i) {
      if (layout.plain_mask >> i & 1u) {
        h = detail::hash_combine(h, k.w[i]);
      } else if constexpr (W >= unicode_words) {  // room for a string
        if (layout.str_mask >> i & 1u) h = detail::hash_combine(h, hash_str(str_at(&k.w[i])));
      }
    }
    return h;
  }
};

struct blob_equal {
  key_layout layout;
  template <std::size_t W>
  bool operator()(const words<W>& a, const words<W>& b) const noexcept {
    if (layout.str_mask == 0) return a == b;
    for (std::size_t i = 0; i < W; ++i) {
      if (layout.plain_mask >> i & 1u) {
        if (a.w[i] != b.w[i]) return false;
      } else if constexpr (W >= unicode_words) {
        if ((layout.str_mask >> i & 1u) && !equal_str(str_at(&a.w[i]), str_at(&b.w[i])))
          return false;
      }
    }
    return true;
  }
};

}  // namespace pardict::capi
